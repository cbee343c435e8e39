import { hostname } from 'node:os';

/**
 * A running backup's lease: `<source>/backups/<id>/lease.json`, written before its first object.
 * Retention collects the parts of a backup that never finished (no manifest), but never before its
 * lease has ended (plus a grace period), so a backup still running keeps its parts. The lease is
 * immutable like every object (append-only, Object Lock): it is sized for the longest backup.
 *
 * It is also what keeps two backups of one source from running at once. While it runs, a backup
 * renews its claim every minute with a new immutable object, `lease.NNNNNN.json`; a backup
 * without a manifest whose newest lease object is younger than 3 minutes is running, and a new
 * backup of the source refuses to start (source-guard.ts). The claim survives a crash of its
 * holder until it lapses — or at once when the holder was a process on this host that is gone.
 * A folder without a lease (written before leases existed) counts from the id's start time.
 */
export const LEASE_NAME = 'lease.json';

/** Written (best effort) when a backup fails: it no longer claims its source. */
export const ENDED_NAME = 'ended.json';
/** Backups of this process that failed: they claim nothing any more, whatever the store says. */
export const endedHere = new Set<string>();

/** `lease.json`, `lease.000001.json`, …: the first claim and its renewals. */
export const LEASE_OBJECT = /(^|\/)lease(\.\d{6})?\.json$/;
export const renewalName = (generation: number): string => `lease.${String(generation).padStart(6, '0')}.json`;

const seconds = (name: string, fallback: number) => {
  const value = Number(process.env[name]);
  return value > 0 ? value * 1000 : fallback;
};
/** How often a running backup renews its claim: a minute (TIDEMARK_LEASE_RENEW_SECONDS, for tests). */
export const leaseRenewMs = (): number => seconds('TIDEMARK_LEASE_RENEW_SECONDS', 60_000);
/** A claim not renewed for this long has lapsed: 3 minutes (TIDEMARK_LEASE_LIVE_SECONDS, for tests). */
export const leaseLiveMs = (): number => seconds('TIDEMARK_LEASE_LIVE_SECONDS', 3 * 60_000);

/** Who holds a claim: enough to tell, on the same host, that the holder died. */
export interface LeaseHolder {
  readonly host: string;
  readonly pid: number;
}

export function renewalBytes(backup: string, renewedAt: Date): Buffer {
  return Buffer.from(`${JSON.stringify({ format: 'tidemark.lease-renewal', version: 1, backup, renewedAt: renewedAt.toISOString(), host: hostname(), pid: process.pid })}\n`);
}

/** The holder named in a lease or renewal object, if it names one. */
export function leaseHolder(bytes: Buffer): LeaseHolder | undefined {
  try {
    const { host, pid } = JSON.parse(bytes.toString('utf8')) as Partial<LeaseHolder>;
    return typeof host === 'string' && typeof pid === 'number' ? { host, pid } : undefined;
  } catch {
    return undefined;
  }
}

/** Longer than any backup is allowed to run (the worker's timeout defaults to 6 h). */
export const BACKUP_LEASE_MS = 24 * 3_600_000;

export interface BackupLease {
  readonly format: 'tidemark.lease';
  readonly version: 1;
  readonly backup: string;
  readonly startedAt: string;
  readonly expiresAt: string;
  readonly host?: string;
  readonly pid?: number;
}

export function leaseBytes(backup: string, startedAt: string, ms = BACKUP_LEASE_MS): Buffer {
  const lease: BackupLease = {
    format: 'tidemark.lease',
    version: 1,
    backup,
    startedAt,
    expiresAt: new Date(Date.parse(startedAt) + ms).toISOString(),
    host: hostname(),
    pid: process.pid,
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
