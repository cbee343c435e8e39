/**
 * A running backup's lease: `<source>/backups/<id>/lease.json`, written before its first object.
 * Retention collects the parts of a backup that never finished (no manifest), but never before its
 * lease has ended (plus a grace period), so a backup still running keeps its parts. The lease is
 * immutable like every object (append-only, Object Lock): it is sized for the longest backup, not
 * renewed. A folder without one (written before leases existed) counts from the id's start time.
 */
export const LEASE_NAME = 'lease.json';

/** Longer than any backup is allowed to run (the worker's timeout defaults to 6 h). */
export const BACKUP_LEASE_MS = 24 * 3_600_000;

export interface BackupLease {
  readonly format: 'tidemark.lease';
  readonly version: 1;
  readonly backup: string;
  readonly startedAt: string;
  readonly expiresAt: string;
}

export function leaseBytes(backup: string, startedAt: string, ms = BACKUP_LEASE_MS): Buffer {
  const lease: BackupLease = {
    format: 'tidemark.lease',
    version: 1,
    backup,
    startedAt,
    expiresAt: new Date(Date.parse(startedAt) + ms).toISOString(),
  };
  return Buffer.from(`${JSON.stringify(lease)}\n`);
}

/** The lease's end, or undefined when the bytes are not a lease of this backup (then it counts as absent). */
export function leaseEnd(bytes: Buffer, backup: string): string | undefined {
  try {
    const lease = JSON.parse(bytes.toString('utf8')) as Partial<BackupLease>;
    if (lease.format !== 'tidemark.lease' || lease.backup !== backup || typeof lease.expiresAt !== 'string') return undefined;
    return Number.isNaN(Date.parse(lease.expiresAt)) ? undefined : new Date(lease.expiresAt).toISOString();
  } catch {
    return undefined;
  }
}
