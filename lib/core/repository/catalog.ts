import pLimit from 'p-limit';
import { IntegrityError, StorageError } from '../errors';
import { backupsPrefix, manifestKey } from './layout';
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

export type { RestorableWindow } from '../engines/recovery-target';

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
          backups.push(await readManifestAt(store, source, id));
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

/**
 * One committed manifest, checked the same way wherever manifests are read (catalog, newest point):
 * its seal's checksum, its schema, and that it belongs where it was found. Throws StorageError
 * NoSuchKey when the folder has no manifest (the backup never finished), IntegrityError otherwise.
 */
export async function readManifestAt(store: ObjectStore, source: string, id: string): Promise<BackupManifest> {
  const manifest = openManifest(await store.getBytes(manifestKey(source, id)), `backup ${id}`).manifest;
  if (manifest.id !== id || manifest.source !== source) {
    throw new IntegrityError(`backup ${id}: manifest belongs to ${manifest.source}/${manifest.id}, not here`);
  }
  return manifest;
}
