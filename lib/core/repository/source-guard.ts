import { hostname } from 'node:os';
import { BackupInProgress } from '../errors';
import { alive } from '../process/pid';
import { idStart, isBackupId } from './backup-id';
import { BACKUP_LEASE_MS, ENDED_NAME, endedHere, leaseLiveMs, LEASE_OBJECT, leaseHolder } from './lease';
import { backupsPrefix, MANIFEST_NAME } from './layout';
import type { ObjectStore } from './storage';

/**
 * One backup of a source at a time (lease.ts). Two backups of one source would race for the same
 * chain parent, and on a small database the second is pointless anyway. A new backup looks for a
 * running one — a folder without a manifest whose lease was renewed within leaseLiveMs() — and
 * refuses while there is one. Two that start at the same moment both write their lease first and
 * then look: the one with the later id gives way (ids sort by start time), so exactly one runs.
 */
export interface RunningBackup {
  readonly id: string;
  /** When its claim was last renewed (the store's time of its newest lease object). */
  readonly renewedAt: string;
}

/** Backups of `source` that hold a live claim, `except` one (our own), oldest first. */
export async function runningBackups(store: ObjectStore, source: string, except?: string, now = Date.now()): Promise<RunningBackup[]> {
  const prefix = backupsPrefix(source);
  // Ids start with their UTC start time: only today's and yesterday's can still be running
  // (BACKUP_LEASE_MS), so two short listings suffice whatever the size of the catalog.
  const days = [...new Set([now, now - BACKUP_LEASE_MS].map((t) => new Date(t).toISOString().slice(0, 10).replace(/-/g, '')))];
  const folders = (await Promise.all(days.map((day) => store.list(`${prefix}${day}`, { delimiter: '/' }))))
    .flatMap((page) => page.prefixes)
    .map((folder) => folder.slice(prefix.length, -1))
    .filter((id) => isBackupId(id) && id !== except && now - Date.parse(idStart(id)) < BACKUP_LEASE_MS);
  const running: RunningBackup[] = [];
  for (const id of folders.sort()) {
    const { objects } = await store.list(`${prefix}${id}/`);
    if (endedHere.has(id) || objects.some((o) => o.key.endsWith(`/${MANIFEST_NAME}`) || o.key.endsWith(`/${ENDED_NAME}`))) continue;
    const leases = objects.filter((o) => LEASE_OBJECT.test(o.key) && o.modifiedAt !== undefined).sort((a, b) => a.modifiedAt!.localeCompare(b.modifiedAt!));
    const newest = leases[leases.length - 1];
    if (!newest || now - Date.parse(newest.modifiedAt!) >= leaseLiveMs()) continue;
    // A holder on this host that no longer exists (a SIGKILLed CLI) has let go, whatever the time.
    const holder = leaseHolder(await store.getBytes(newest.key).catch(() => Buffer.alloc(0)));
    if (holder && holder.host === hostname() && !alive(holder.pid)) continue;
    running.push({ id, renewedAt: newest.modifiedAt! });
  }
  return running;
}

/** Throws BackupInProgress while another backup of the source holds a claim (older than `ours`, if given). */
export async function assertNoBackupRunning(store: ObjectStore, source: string, ours?: string): Promise<void> {
  const others = (await runningBackups(store, source, ours)).filter((b) => ours === undefined || b.id < ours);
  const other = others[0];
  if (!other) return;
  const lapses = new Date(Date.parse(other.renewedAt) + leaseLiveMs()).toISOString();
  throw new BackupInProgress(
    `source '${source}': backup ${other.id} is still running (its lease was renewed at ${other.renewedAt}); one backup of a source runs at a time — wait for it, or if its worker is gone, run again after ${lapses}, when its lease lapses`,
  );
}
