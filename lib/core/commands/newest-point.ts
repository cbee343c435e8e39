import { ARCHIVES, newestWindowEnd } from '../engines/continuous-archive';
import { restorableWindow } from '../engines/window';
import { StorageError, TidemarkError } from '../errors';
import { isBackupId } from '../repository/backup-id';
import { readManifestAt, type CatalogProblem } from '../repository/catalog';
import { backupsPrefix } from '../repository/layout';
import type { BackupManifest, RestorePoint } from '../repository/manifest';
import { Repository } from '../repository/repository';
import type { ObjectStore } from '../repository/storage';

/**
 * The newest point a restore can reach, found cheaply: one listing of the source's backup folders
 * (ids sort by time) and, usually, one manifest read — the newest. Unlike `readCatalog` it does not
 * read every manifest, so it can run every minute for every source (rpo-check).
 *
 * No key is needed: a manifest's sha256 seal is checked without one; its HMAC (which needs the data
 * key) guards restores, not freshness.
 */
export interface NewestRestorablePoint {
  /** ISO time of the newest restorable point. */
  readonly time: string;
  /** The backup a restore to `time` starts from. */
  readonly backupId: string;
  /** That backup's manifest (sizes, type, restore point). */
  readonly backup: BackupManifest;
  /** Newer folders passed over on the way: without a manifest (running or failed), or unusable. */
  readonly passedOver: {
    readonly incomplete: readonly string[];
    readonly problems: readonly CatalogProblem[];
  };
}

export interface NewestBackupOptions {
  /** Only backups this accepts count (e.g. one type); others are passed over like incomplete ones. */
  readonly accept?: (manifest: BackupManifest) => boolean;
}

export async function newestRestorablePoint(from: Repository | ObjectStore, source: string): Promise<NewestRestorablePoint | null> {
  const found = await newestCommittedBackup(from, source);
  if (found === null) return null;
  // The same window as list and restore: a continuous archive (WAL, binlog) extends it to its
  // newest durable point when that continues unbroken from a backup it replays onto.
  return { time: restorableWindow([found.backup], await archiveEnd(from, source, found.backup))!.to, backupId: found.backup.id, ...found };
}

/**
 * How far a continuous archive reaches from the newest backup, when that backup is one the archive
 * replays onto (a physical base for WAL). Only then is the archive read, so a source of logical
 * dumps costs nothing more; when a newer backup of another kind exists the backup's own point is
 * reported: too old at worst, never too new, like the ordering above.
 */
async function archiveEnd(from: Repository | ObjectStore, source: string, newest: BackupManifest): Promise<RestorePoint | undefined> {
  const store = from instanceof Repository ? from.store : from;
  for (const registration of ARCHIVES) {
    if (!registration.replaysOnto.includes(newest.details.kind)) continue;
    const archive = await registration.load();
    const description = await archive.describe(store, source);
    const end = description && newestWindowEnd(archive.windows(description, [newest]));
    if (end) return end;
  }
  return undefined;
}

/** Whole seconds from `time` to `now`; never negative (a clock a little ahead is not "in the future"). */
export function secondsSince(time: string, now: number = Date.now()): number {
  return Math.max(0, Math.round((now - Date.parse(time)) / 1000));
}

/**
 * The newest committed backup of `source` by id (start time), reading manifests from the newest
 * folder backwards until one is committed and valid.
 *
 * Ordering by start time is a conservative choice: when two backups overlap (a long full still
 * running while a short logical one starts and finishes), the older-id backup can end up with the
 * later restore point, and this reports the earlier one. The age it yields can be too high, never
 * too low, so an RPO alarm may fire early but never stays silent; the next backup settles it.
 */
export async function newestCommittedBackup(
  from: Repository | ObjectStore,
  source: string,
  options: NewestBackupOptions = {},
): Promise<{ readonly backup: BackupManifest; readonly passedOver: NewestRestorablePoint['passedOver'] } | null> {
  const store = from instanceof Repository ? from.store : from;
  const prefix = backupsPrefix(source);
  const { prefixes } = await store.list(prefix, { delimiter: '/' });
  // Folders not named like a backup id would break the "sorts by time" premise; they are not backups.
  const ids = prefixes
    .map((p) => p.slice(prefix.length).replace(/\/$/, ''))
    .filter(isBackupId)
    .sort();
  const incomplete: string[] = [];
  const problems: CatalogProblem[] = [];
  // Sequential on purpose: the newest folder is almost always committed, so reading ahead in
  // parallel would mostly buy requests that are thrown away.
  for (let i = ids.length - 1; i >= 0; i--) {
    const id = ids[i];
    let manifest: BackupManifest;
    try {
      manifest = await readManifestAt(store, source, id);
    } catch (e) {
      if (e instanceof StorageError && e.code === 'NoSuchKey') {
        incomplete.push(id);
        continue;
      }
      // Unreachable or forbidden: the caller must not mistake that for "no backup".
      if (!(e instanceof TidemarkError) || e instanceof StorageError) throw e;
      problems.push({ id, reason: e.message });
      continue;
    }
    if (options.accept && !options.accept(manifest)) continue;
    return { backup: manifest, passedOver: { incomplete, problems } };
  }
  return null;
}
