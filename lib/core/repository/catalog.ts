import pLimit from 'p-limit';
import { StorageError } from '../errors';
import { backupsPrefix, MANIFEST_NAME } from './layout';
import { openManifest, type BackupManifest } from './manifest';
import type { ObjectStore } from './storage';

/** A backup folder whose manifest cannot be used: damaged, or from a newer Tidemark. */
export interface CatalogProblem {
  readonly id: string;
  readonly reason: string;
}

export interface Catalog {
  /** Committed backups, oldest restore point first. */
  readonly backups: readonly BackupManifest[];
  /** Folders without a manifest: backups that never finished (garbage for collection). */
  readonly incomplete: readonly string[];
  readonly problems: readonly CatalogProblem[];
}

/** The restorable window: from the oldest to the newest point a restore can reach. */
export interface RestorableWindow {
  readonly from: string;
  readonly to: string;
}

const PARALLEL_READS = 16;

/** The catalog is the listing of manifests: there is no other index to drift out of date. */
export async function readCatalog(store: ObjectStore, source: string): Promise<Catalog> {
  const prefix = backupsPrefix(source);
  const { prefixes } = await store.list(prefix, { delimiter: '/' });
  const limit = pLimit(PARALLEL_READS);
  const backups: BackupManifest[] = [];
  const incomplete: string[] = [];
  const problems: CatalogProblem[] = [];
  await Promise.all(
    prefixes.map((p) =>
      limit(async () => {
        const id = p.slice(prefix.length).replace(/\/$/, '');
        try {
          const bytes = await store.getBytes(`${p}${MANIFEST_NAME}`);
          backups.push(openManifest(bytes, `backup ${id}`).manifest);
        } catch (e) {
          if (e instanceof StorageError && e.code === 'NoSuchKey') incomplete.push(id);
          else problems.push({ id, reason: (e as Error).message });
        }
      }),
    ),
  );
  backups.sort((a, b) => a.restorePoint.time.localeCompare(b.restorePoint.time) || a.id.localeCompare(b.id));
  return { backups, incomplete: incomplete.sort(), problems };
}

/** Without continuous archiving, the restorable points are exactly the backups' own. */
export function restorableWindow(backups: readonly BackupManifest[]): RestorableWindow | null {
  if (backups.length === 0) return null;
  return { from: backups[0].restorePoint.time, to: backups[backups.length - 1].restorePoint.time };
}
