import pLimit from 'p-limit';
import { tierOfStorageClass } from '../config/tiers';
import { StorageError } from '../errors';
import { readManifestAt } from '../repository/catalog';
import { isBackupId } from '../repository/backup-id';
import { backupsPrefix, manifestKey } from '../repository/layout';
import { LEASE_NAME, leaseEnd } from '../repository/lease';
import { listPages, type ObjectStore, type StoredObjectInfo } from '../repository/storage';
import { BinlogArchive } from '../engines/mysql/binlog/binlog-archive';
import { factsOf, inventoryOf } from '../engines/mysql/binlog/inventory';
import { binlogFileName, parseArchiveName, parseBinlogFile, partialName as binlogPartialName } from '../engines/mysql/binlog/names';
import { DEFAULT_WAL_SEGMENT_BYTES, replayOf } from './archive-use';
import { ArchiveStreamBuilder, type ArchiveStream, type PieceNaming } from './archive-stream';
import { streamId, type CatalogBackup, type CatalogObject, type RetentionCatalog, type UnfinishedBackup } from './catalog-model';

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

  const wal = await walArchive(store, source, options.lockDays);
  const binlog = await binlogArchive(store, source, options.lockDays);

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
          const replay = replayOf(m, undefined, binlog.streamOf);
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
  return { source, backups, archive: [...wal, ...binlog.streams], unfinished, untouchable: untouchable.sort() };
}

/**
 * The WAL archive (`<source>/wal/<timeline>/<segment>[.partial.<generation>]`), one compact stream
 * per timeline: a segment's end time is when it was stored, which is when its last change had been
 * written at the latest. History files and key epochs are not pieces and are never deleted.
 */
async function walArchive(store: ObjectStore, source: string, lockDays: number | undefined): Promise<ArchiveStream[]> {
  const prefix = `${source}/wal/`;
  const streams = new Map<string, ArchiveStreamBuilder>();
  const lockMs = lockDays ? lockDays * DAY : undefined;
  // Millions of keys: one regex and no allocation beyond the piece's columns per key.
  for await (const page of listPages(store, prefix)) {
    for (const o of page.objects) {
      const m = WAL_NAME.exec(o.key);
      // Exactly `<prefix><timeline>/<segment>`, nothing nested, and the timeline the name carries.
      if (!m || m.index !== prefix.length - 5 || !o.modifiedAt || !o.key.startsWith(prefix) || m[1] !== m[2]) continue;
      const low = parseInt(m[4], 16);
      // Only canonical names (what walNaming rebuilds exactly) are pieces; others are never deleted.
      if (low >= WAL_SEGMENTS_PER_LOG || (m[5] !== undefined && (Number(m[5]) === 0 || (m[5].length > 6 && m[5][0] === '0')))) continue;
      const segment = parseInt(m[3], 16) * WAL_SEGMENTS_PER_LOG + low;
      let builder = streams.get(m[1]);
      if (!builder) streams.set(m[1], (builder = new ArchiveStreamBuilder('wal', m[1], walNaming(prefix, m[1]))));
      const stored = Date.parse(o.modifiedAt);
      builder.add({
        start: segment,
        end: segment + 1,
        endTime: stored,
        bytes: o.size,
        tier: tierOfStorageClass(o.storageClass),
        lockedUntil: lockMs === undefined ? undefined : stored + lockMs,
        partial: m[5] === undefined ? 0 : Number(m[5]),
      });
    }
  }
  return [...streams.values()].map((b) => b.build());
}

/** `…/wal/<timeline>/<timeline><log><segment>[.partial.<generation>]`. */
const WAL_NAME = /\/wal\/([0-9A-F]{8})\/([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(?:\.partial\.(\d{6,}))?$/;
const WAL_SEGMENTS_PER_LOG = Math.floor(0x1_0000_0000 / DEFAULT_WAL_SEGMENT_BYTES);

/** `<source>/wal/<timeline>/<timeline><log><seg>[.partial.NNNNNN]` from the segment number. */
function walNaming(prefix: string, timeline: string): PieceNaming {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
  return (start, partial) =>
    `${prefix}${timeline}/${timeline}${hex(Math.floor(start / WAL_SEGMENTS_PER_LOG))}${hex(start % WAL_SEGMENTS_PER_LOG)}${partial > 0 ? `.partial.${String(partial).padStart(6, '0')}` : ''}`;
}

/**
 * The binlog archive (`<source>/binlog/<base>.<NNNNNN>[.partial.<generation>]`). Positions are
 * file numbers doubled: a completed file covers [2n, 2n + 2), a file archived only in partials
 * [2n, 2n + 1), so a file whose tail never arrived is a gap before the next one (as the inventory
 * says). Files written by another server (server_id/uuid in the object headers) form a stream of
 * their own: replay never crosses a change of identity. A logical backup's coordinates name the
 * file it replays from; `streamOf` says which stream that file is in.
 */
async function binlogArchive(
  store: ObjectStore,
  source: string,
  lockDays: number | undefined,
): Promise<{ streams: ArchiveStream[]; streamOf: (file: string) => string | undefined }> {
  const prefix = `${source}/binlog/`;
  const listed = new Map<string, StoredObjectInfo>();
  const namesOfFile = new Map<string, string[]>();
  for await (const page of listPages(store, prefix)) {
    for (const o of page.objects) {
      const name = o.key.slice(prefix.length);
      const parsed = parseArchiveName(name);
      if (!o.modifiedAt || !parsed) continue;
      listed.set(name, o);
      namesOfFile.set(parsed.file, [...(namesOfFile.get(parsed.file) ?? []), name]);
    }
  }
  if (listed.size === 0) return { streams: [], streamOf: () => undefined };
  // The identity of each file, from the header of the object a replay would read (cold ones: unknown).
  const first = inventoryOf([...listed.keys()]);
  const archive = BinlogArchive.keyless(store, source).objects;
  const servers = new Map<string, string>();
  const limit = pLimit(PARALLEL_READS);
  await Promise.all(
    first.files.map((f) =>
      limit(async () => {
        const header = await archive.readHeader(f.object).catch(() => undefined);
        const facts = header && factsOf(header);
        if (facts) servers.set(f.object, facts.server);
      }),
    ),
  );
  // A new stream where the identity changes, or the base name does; an unknown identity continues the last.
  const streamOfFile = new Map<string, string>();
  const builders = new Map<string, ArchiveStreamBuilder>();
  let current: { base: string; server?: string; timeline: string } | undefined;
  let count = 0;
  for (const f of first.files) {
    const base = parseBinlogFile(f.file)!.base;
    const server = servers.get(f.object);
    if (!current || current.base !== base || (server !== undefined && current.server !== undefined && server !== current.server)) {
      current = { base, server, timeline: count === 0 ? base : `${base}~${count}` };
      count++;
    } else if (server !== undefined) current.server = server;
    streamOfFile.set(f.file, streamId('binlog', current.timeline));
    let builder = builders.get(current.timeline);
    if (!builder) builders.set(current.timeline, (builder = new ArchiveStreamBuilder('binlog', current.timeline, binlogNaming(prefix, base))));
    for (const name of namesOfFile.get(f.file) ?? []) {
      const o = listed.get(name)!;
      const parsed = parseArchiveName(name)!;
      const stored = Date.parse(o.modifiedAt!);
      builder.add(
        {
          start: 2 * f.index,
          end: 2 * f.index + (parsed.kind === 'partial' ? 1 : 2),
          endTime: stored,
          bytes: o.size,
          tier: tierOfStorageClass(o.storageClass),
          ...(lockDays ? { lockedUntil: stored + lockDays * DAY } : {}),
          ...(parsed.kind === 'partial' ? { partial: parsed.generation } : {}),
        },
        o.key,
      );
    }
  }
  return {
    streams: [...builders.values()].map((b) => b.build()),
    streamOf: (file) => {
      const known = streamOfFile.get(file);
      if (known) return known;
      // A file the archive does not hold: the stream of its base name, where replay finds nothing.
      const base = parseBinlogFile(file)?.base;
      return base === undefined ? undefined : streamId('binlog', base);
    },
  };
}

function binlogNaming(prefix: string, base: string): PieceNaming {
  return (start, partial) => {
    const file = binlogFileName(base, Math.floor(start / 2));
    return `${prefix}${partial > 0 ? binlogPartialName(file, partial) : file}`;
  };
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

