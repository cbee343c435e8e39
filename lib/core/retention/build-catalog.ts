import pLimit from 'p-limit';
import { tierOfStorageClass } from '../config/tiers';
import { StorageError } from '../errors';
import { readManifestAt } from '../repository/catalog';
import { isBackupId } from '../repository/backup-id';
import { backupsPrefix, manifestKey } from '../repository/layout';
import { LEASE_NAME, leaseEnd } from '../repository/lease';
import { listPages, type ObjectStore, type StoredObjectInfo } from '../repository/storage';
import { parseSegmentName, replayOf } from './archive-use';
import { streamId, type ArchivePiece, type ArchiveStream, type CatalogBackup, type CatalogObject, type RetentionCatalog, type UnfinishedBackup } from './catalog-model';

export interface BuildCatalogOptions {
  /**
   * Default Object Lock retention of the bucket in days (aws.objectLock.days): an object is locked
   * until it was stored + this. Undefined: no lock is known (a folder, a bucket without Object Lock).
   */
  readonly lockDays?: number;
}

const PARALLEL_READS = 16;
const DAY = 86_400_000;

/**
 * The retention catalog of one source, from the repository: one listing of the backups' folders
 * (every object, manifests read in parallel) and one of each archive (WAL; binlog when it lands),
 * read a page at a time: nothing but the model itself is held.
 * Folders whose manifest cannot be read are untouchable: retention never deletes what it cannot read.
 */
export async function buildRetentionCatalog(store: ObjectStore, source: string, options: BuildCatalogOptions = {}): Promise<RetentionCatalog> {
  const toObject = (o: StoredObjectInfo): CatalogObject => ({
    key: o.key,
    bytes: o.size,
    tier: tierOfStorageClass(o.storageClass),
    ...(o.modifiedAt ? { storedAt: o.modifiedAt } : {}),
    ...(o.modifiedAt && options.lockDays ? { lockedUntil: new Date(Date.parse(o.modifiedAt) + options.lockDays * DAY).toISOString() } : {}),
  });

  const prefix = backupsPrefix(source);
  const folders = new Map<string, CatalogObject[]>();
  for await (const page of listPages(store, prefix)) {
    for (const o of page.objects) {
      const id = o.key.slice(prefix.length).split('/')[0];
      const folder = folders.get(id);
      if (folder) folder.push(toObject(o));
      else folders.set(id, [toObject(o)]);
    }
  }

  const backups: CatalogBackup[] = [];
  const unfinished: UnfinishedBackup[] = [];
  const untouchable: string[] = [];
  const limit = pLimit(PARALLEL_READS);
  await Promise.all(
    [...folders].map(([id, objects]) =>
      limit(async () => {
        if (!isBackupId(id)) return void untouchable.push(id); // not ours to judge
        const manifestAt = manifestKey(source, id);
        if (!objects.some((o) => o.key === manifestAt)) {
          const lease = objects.find((o) => o.key.endsWith(`/${LEASE_NAME}`));
          const leaseUntil = lease ? await readLease(store, lease.key, id) : undefined;
          unfinished.push({ id, startedAt: idStart(id), ...(leaseUntil ? { leaseUntil } : {}), objects });
          return;
        }
        try {
          const m = await readManifestAt(store, source, id);
          const replay = replayOf(m);
          backups.push({
            id,
            type: m.type,
            method: m.details.kind,
            startedAt: m.startedAt,
            finishedAt: m.finishedAt,
            ...(m.parent ? { parent: m.parent } : {}),
            ...(m.chain ? { chain: m.chain } : {}),
            restorePoint: { time: m.restorePoint.time, ...(m.restorePoint.lsn ? { lsn: m.restorePoint.lsn } : {}) },
            ...(replay ? { replay } : {}),
            objects,
            manifestKey: manifestAt,
          });
        } catch (e) {
          if (e instanceof StorageError && e.code !== 'NoSuchKey') throw e; // the store failed, not the backup
          untouchable.push(id);
        }
      }),
    ),
  );
  backups.sort((a, b) => a.restorePoint.time.localeCompare(b.restorePoint.time) || a.id.localeCompare(b.id));
  unfinished.sort((a, b) => a.id.localeCompare(b.id));
  return { source, backups, archive: await walArchive(store, source, toObject), unfinished, untouchable: untouchable.sort() };
}

/**
 * The WAL archive (`<source>/wal/<timeline>/<segment>[.partial.<generation>]`): a segment's end
 * time is when it was stored, which is when its last change had been written at the latest.
 * History files and key epochs are not pieces and are never deleted by retention.
 */
async function walArchive(store: ObjectStore, source: string, toObject: (o: StoredObjectInfo) => CatalogObject): Promise<ArchiveStream[]> {
  const prefix = `${source}/wal/`;
  const streams = new Map<string, ArchivePiece[]>();
  for await (const page of listPages(store, prefix)) {
    for (const o of page.objects) {
      const m = /^([0-9A-F]{8})\/([0-9A-F]{24})(?:\.partial\.(\d{6}))?$/.exec(o.key.slice(prefix.length));
      const segment = m && parseSegmentName(m[2]);
      if (!m || !segment || segment.timeline !== m[1] || !o.modifiedAt) continue;
      const piece: ArchivePiece = {
        ...toObject(o),
        start: segment.segment,
        end: segment.segment + 1,
        endTime: o.modifiedAt,
        ...(m[3] !== undefined ? { partial: Number(m[3]) } : {}),
      };
      const pieces = streams.get(m[1]);
      if (pieces) pieces.push(piece);
      else streams.set(m[1], [piece]);
    }
  }
  return [...streams].map(([timeline, pieces]) => ({
    kind: 'wal' as const,
    timeline,
    id: streamId('wal', timeline),
    pieces: pieces.sort((a, b) => a.start - b.start || (a.partial ?? Infinity) - (b.partial ?? Infinity)),
  }));
}

async function readLease(store: ObjectStore, key: string, id: string): Promise<string | undefined> {
  try {
    return leaseEnd(await store.getBytes(key), id);
  } catch (e) {
    if (e instanceof StorageError && e.code === 'NoSuchKey') return undefined; // collected meanwhile
    throw e;
  }
}

/** `20261124T075740.123Z-3f9a1c` → 2026-11-24T07:57:40.123Z. */
function idStart(id: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})\.(\d{3})Z/.exec(id)!;
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z`;
}

