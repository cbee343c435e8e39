import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, appendFile, rename, rm, stat, chmod, type FileHandle } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import pLimit from 'p-limit';
import { throwIfAborted } from '../../../abort';
import { formatBytes } from '../../../format';
import { BackupNotFound, IntegrityError, TargetNotEmpty, UsageError } from '../../../errors';
import type { Progress } from '../../../progress';
import type { StoredObject } from '../../../pipeline/stored-object';
import type { Catalog } from '../../../repository/catalog';
import type { BackupManifest } from '../../../repository/manifest';
import type { OpenedBackup, Repository } from '../../../repository/repository';
import type { EngineRun, RestorePlan, RestoreRequest, RestoredTarget, RestoreTarget } from '../../engine';
import { selectBackup } from '../../select-backup';
import { BlockIndexReader, parseIndexDirectory, ZERO_PACK, type IndexDirectory, type PackRef } from './block-index';
import type { PgPhysicalDetails } from './details';
import { readObjectBytes } from './read-bytes';
import { planReplay, replayTo, type PgReplay } from './pitr';
import { checkServerCanReach, serverBinDir, startRestoredCluster, type StartOptions } from './start-cluster';

/**
 * Restore of a physical backup into a data directory, in three steps that point-in-time recovery
 * reuses: planPgPhysicalRestore (every refusal; a PITR planner can pick the backup itself and call
 * backupChain + openPhysicalBackup), assembleDataDirectory (the chain's blocks into the directory,
 * backup_label and the backup's own WAL included), and startRestoredCluster (start-cluster.ts:
 * recovery settings and recovery.signal, the OS user, waiting for connections).
 */

/** Packs read at once: each is a download, a zstd -d and writes into the data directory. */
const PARALLEL_PACKS = 3;
/** Files created at once (pass 1 of assemble): libuv's four threads; more only spin on the directory's lock. */
const PARALLEL_CREATES = 4;
/** Bytes of consecutive blocks written in one call (restorePack). */
const RUN_BYTES = 1 << 20;
/** …and at most this many buffers in it, well below IOV_MAX (1024). */
const RUN_PIECES = 512;
/** Work lists waiting in memory before they go to their spill files. */
const SPILL_BUFFER_BYTES = 8 << 20;
/** One work item: u32 file, f64 file offset, f64 pack offset, u32 length, 32 bytes SHA-256. */
const WORK_BYTES = 56;
/**
 * The restore's work folder in the target: made first and removed last, so while it is there the
 * directory is an unfinished restore (a killed one, too), and the next restore says so. It also
 * holds back global/pg_control until every other file is whole: PostgreSQL does not start a data
 * directory without it, so a half-written one cannot be started as if it were whole.
 */
const WORK_DIR = '.tidemark-restore';
const CONTROL_FILE = 'global/pg_control';
/** Where pg_control waits in WORK_DIR (pack work lists there are named by number). */
const HELD_CONTROL = 'pg_control';
/** Directories PostgreSQL needs, in case the source had none to send (they are usually in the tar). */
const REQUIRED_DIRS = [
  'pg_wal/archive_status',
  'pg_commit_ts',
  'pg_dynshmem',
  'pg_logical/mappings',
  'pg_logical/snapshots',
  'pg_notify',
  'pg_replslot',
  'pg_serial',
  'pg_snapshots',
  'pg_stat',
  'pg_stat_tmp',
  'pg_subtrans',
  'pg_tblspc',
  'pg_twophase',
];

export type DataDirTarget = Extract<RestoreTarget, { kind: 'data-dir' }>;

/** A pack as a restore reads it: its owner backup (for the key) and its manifest entry. */
interface PackSource {
  readonly owner: OpenedBackup;
  readonly object: StoredObject;
}

/** A restore of a physical backup, decided: every backup of the chain opened, every object present. */
export interface PgPhysicalRestorePlan extends RestorePlan {
  readonly backup: OpenedBackup;
  readonly details: PgPhysicalDetails;
  readonly directory: IndexDirectory;
  /** By position in `directory.packs`. */
  readonly packs: readonly PackSource[];
  readonly dataDir: string;
  /** The target holds an interrupted restore (--force): it is emptied before this one begins. */
  readonly replacesInterrupted?: boolean;
  readonly start?: StartOptions;
  /** The WAL replay after the base backup, for targets between or after backups. */
  readonly pitr?: PgReplay;
}

function dataDirTarget(to: RestoreTarget): DataDirTarget {
  if (to.kind !== 'data-dir') throw new UsageError('a physical backup restores into a data directory: --to /path/to/empty/dir');
  return to;
}

/**
 * The target must be absent or an empty directory; --force does not empty a data directory, except
 * one that holds an interrupted restore (our work folder is still there): that one it replaces.
 * Returns whether the target is such a leftover, to be emptied when the restore begins.
 */
async function checkEmptyTarget(path: string, force: boolean): Promise<boolean> {
  const info = await stat(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  if (!info) return false;
  if (!info.isDirectory()) throw new TargetNotEmpty(`--to ${path} is a file, not a directory`);
  const entries = await readdir(path);
  if (entries.includes(WORK_DIR)) {
    if (force) return true;
    throw new TargetNotEmpty(`--to ${path} holds an interrupted restore (${WORK_DIR} is still there; it cannot start); pass --force to replace it, or restore into an empty or new directory`);
  }
  if (entries.length > 0) {
    throw new TargetNotEmpty(`--to ${path} is not empty (${entries.length} entries, e.g. ${entries[0]}); restore into an empty or new directory`);
  }
  return false;
}

/** Base first, `chosen` last, following `parent`; a missing link is named. */
export function backupChain(catalog: Catalog, chosen: BackupManifest): BackupManifest[] {
  const chain = [chosen];
  for (let m = chosen; m.parent; ) {
    const parent = catalog.backups.find((b) => b.id === m.parent);
    if (!parent) throw new BackupNotFound(`backup ${chosen.id} needs backup ${m.parent} (its chain to the full backup), which is not in the repository`);
    chain.unshift(parent);
    m = parent;
  }
  return chain;
}

/** Refuses unless `object` is stored under its key with its recorded size. */
async function checkStored(repository: Repository, object: StoredObject, what: string): Promise<void> {
  const head = await repository.store.head(object.key);
  if (!head) throw new BackupNotFound(`${what} is missing from the repository (${object.key})`);
  if (head.size !== object.storedBytes) {
    throw new IntegrityError(`${what} has ${head.size} bytes in the repository, the manifest says ${object.storedBytes} (${object.key})`);
  }
}

/**
 * Opens a backup's index and every backup its blocks live in, and checks that every pack it needs
 * and every chunk of its index is stored. Verify uses it too.
 */
export async function openPhysicalBackup(
  repository: Repository,
  source: string,
  backup: OpenedBackup,
): Promise<{ directory: IndexDirectory; packs: PackSource[] }> {
  const id = backup.manifest.id;
  const details = backup.manifest.details;
  if (details.kind !== 'pg-physical') throw new UsageError(`backup ${id} is not a physical backup`);
  const indexObject = backup.manifest.objects.find((o) => o.name === details.index);
  if (!indexObject) throw new IntegrityError(`backup ${id}: its manifest lists no ${details.index}`);
  await checkStored(repository, indexObject, `backup ${id} object ${details.index}`);
  const directory = parseIndexDirectory(await readObjectBytes(backup, details.index), `backup ${id}`);
  for (const chunk of directory.chunks) {
    const object = backup.manifest.objects.find((o) => o.name === chunk);
    if (!object) throw new IntegrityError(`backup ${id}: its manifest lists no index chunk ${chunk}`);
    await checkStored(repository, object, `backup ${id} object ${chunk}`);
  }
  const owners = new Map<string, OpenedBackup>([[id, backup]]);
  const packs: PackSource[] = [];
  for (const ref of directory.packs) {
    let owner = owners.get(ref.backup);
    if (!owner) {
      owner = await repository.openBackup(source, { id: ref.backup }).catch((e: unknown) => {
        if (e instanceof BackupNotFound) throw new BackupNotFound(`backup ${id} needs blocks of backup ${ref.backup}, which is not in the repository`, { cause: e });
        throw e;
      });
      owners.set(ref.backup, owner);
    }
    const object = owner.manifest.objects.find((o) => o.name === ref.name);
    if (!object) throw new IntegrityError(`backup ${id} needs ${ref.name} of backup ${ref.backup}, which its manifest does not list`);
    await checkStored(repository, object, `backup ${id} needs pack ${ref.name} of backup ${ref.backup}, which`);
    packs.push({ owner, object });
  }
  return { directory, packs };
}

/**
 * Every refusal before anything is written: the target (a data directory, absent or empty), the
 * backup (chosen; its manifest and every ancestor's authenticated with their keys), every pack and
 * index chunk present, and the server binaries when --start is asked for.
 */
export async function planPgPhysicalRestore(run: EngineRun, catalog: Catalog, request: RestoreRequest): Promise<PgPhysicalRestorePlan> {
  const { repository, source } = run;
  const to = dataDirTarget(request.to);
  const replacesInterrupted = await checkEmptyTarget(to.path, request.force);
  // A target between backups (or past the newest) is reached by replaying the WAL archive (pitr.ts).
  const replayed = await planReplay(run, catalog, request.at);
  const chosen =
    replayed?.base ?? selectBackup(catalog, request.at, source, { summary: 'physical (pg_basebackup)', accepts: (m) => m.details.kind === 'pg-physical' });
  const chain = backupChain(catalog, chosen);
  const backup = await repository.openBackup(source, { id: chosen.id });
  const details = backup.manifest.details as PgPhysicalDetails;
  if (to.start) {
    serverBinDir(details.serverMajor); // refuses now if the server is not installed
    await checkServerCanReach(to.path, to.start.osUser);
  }
  const { directory, packs } = await openPhysicalBackup(repository, source, backup);
  return {
    method: 'pg-physical',
    chain,
    target: to,
    force: request.force,
    restorePoint: backup.manifest.restorePoint,
    ...(replayed ? { replay: { from: backup.manifest.restorePoint, to: request.at }, pitr: replayed.replay } : {}),
    backup,
    details,
    directory,
    packs,
    dataDir: to.path,
    ...(replacesInterrupted ? { replacesInterrupted } : {}),
    ...(to.start ? { start: { port: to.start.port, ...(to.start.osUser ? { osUser: to.start.osUser } : {}) } } : {}),
  };
}

export async function applyPgPhysicalRestore(run: EngineRun, plan: PgPhysicalRestorePlan): Promise<RestoredTarget> {
  const { progress, signal } = run;
  progress.note(`restoring backup ${plan.backup.manifest.id} (${plan.chain.length} in its chain, consistent at ${plan.restorePoint.lsn}) into ${plan.dataDir}`);
  await assembleDataDirectory(plan, { progress, signal });
  if (plan.pitr) {
    const outcome = await replayTo({ run, dataDir: plan.dataDir, details: plan.details, replay: plan.pitr, base: plan.backup.manifest, ...(plan.start ? { start: plan.start } : {}) }).catch(
      async (e: unknown) => {
        // A replay that failed leaves no half-recovered cluster behind: the directory was empty before.
        for (const entry of await readdir(plan.dataDir).catch(() => [])) await rm(join(plan.dataDir, entry), { recursive: true, force: true });
        throw e;
      },
    );
    const { files, bytes, seconds } = outcome.fetched;
    progress.note(`WAL replayed to ${outcome.stoppedAt.lsn}${outcome.stoppedAt.time ? ` (last transaction ${outcome.stoppedAt.time})` : ''}: ${files} files, ${formatBytes(bytes)} fetched in ${seconds.toFixed(1)} s`);
    const restorePoint = { time: outcome.stoppedAt.time ?? plan.restorePoint.time, lsn: outcome.stoppedAt.lsn };
    return { target: plan.dataDir, restorePoint, created: [`data directory ${plan.dataDir}`] };
  }
  if (plan.start) {
    progress.note(`starting PostgreSQL ${plan.details.serverMajor} on port ${plan.start.port}`);
    await startRestoredCluster(plan.dataDir, plan.details.serverMajor, { ...plan.start, signal });
  }
  return { target: plan.dataDir, restorePoint: plan.restorePoint, created: [`data directory ${plan.dataDir}`] };
}

/**
 * Writes the data directory of a planned restore: every file at its size and mode, every block from
 * the pack that holds it, each checked against its SHA-256 before it is written. Memory stays flat:
 * the index is read a chunk at a time and turned into one work list per pack on disk (in the target,
 * removed at the end); each pack is then streamed once, PARALLEL_PACKS at a time. On failure the
 * directory is emptied again.
 */
export async function assembleDataDirectory(plan: PgPhysicalRestorePlan, options: { progress: Progress; signal: AbortSignal }): Promise<void> {
  const { dataDir } = plan;
  const existed = await stat(dataDir).then(
    () => true,
    () => false,
  );
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await chmod(dataDir, 0o700);
  // What an interrupted restore left (--force; planning checked it is that and nothing else).
  if (plan.replacesInterrupted) await Promise.all((await readdir(dataDir)).map((n) => rm(join(dataDir, n), { recursive: true, force: true })));
  try {
    await assemble(plan, options);
  } catch (e) {
    if (existed) await Promise.all((await readdir(dataDir)).map((n) => rm(join(dataDir, n), { recursive: true, force: true })));
    else await rm(dataDir, { recursive: true, force: true });
    throw e;
  }
}

/** A path from the index inside the data directory; anything that would leave it is damage. */
function inside(dataDir: string, path: string, backup: string): string {
  if (path === '' || isAbsolute(path) || path.split('/').some((part) => part === '..' || part === '')) {
    throw new IntegrityError(`backup ${backup}: the block index names a path outside the data directory: ${JSON.stringify(path)}`);
  }
  return join(dataDir, path);
}

async function assemble(plan: PgPhysicalRestorePlan, { progress, signal }: { progress: Progress; signal: AbortSignal }): Promise<void> {
  const { dataDir, directory, backup } = plan;
  const id = backup.manifest.id;
  const work = join(dataDir, WORK_DIR);
  await mkdir(work);
  for (const [path, mode] of directory.directories) {
    const dir = inside(dataDir, path, id);
    await mkdir(dir, { recursive: true });
    await chmod(dir, mode & 0o7777);
  }

  // Pass 1: the index, a chunk at a time → empty files of the right size + a work list per pack.
  const packIds = new Map<PackRef, number>(directory.packs.map((p, i) => [p, i]));
  const paths: string[] = [];
  const spill = new Map<number, Buffer[]>();
  let spilled = 0;
  let blocks = 0;
  const flush = async () => {
    for (const [pack, parts] of spill) await appendFile(join(work, String(pack)), Buffer.concat(parts));
    spill.clear();
    spilled = 0;
  };
  const reader = new BlockIndexReader(directory, (name) => readObjectBytes(backup, name), `backup ${backup.manifest.id}`);
  const made = new Set<string>();
  let heldControl = false;
  // Files are created PARALLEL_CREATES at a time: a cluster has a thousand files before it has any
  // data (the catalogs of every database), and four awaited fs calls each, one file after another,
  // were a fixed quarter-second or more of every restore.
  const creating = new Set<Promise<void>>();
  let createFailed: { error: unknown } | undefined;
  const create = async (path: string, size: number, mode: number) => {
    const done: Promise<void> = createFile(path, size, mode)
      .catch((error: unknown) => void (createFailed ??= { error }))
      .finally(() => creating.delete(done));
    creating.add(done);
    if (creating.size >= PARALLEL_CREATES) await Promise.race(creating);
    if (createFailed) throw createFailed.error;
  };
  try {
    for await (const file of reader.files()) {
      throwIfAborted(signal);
      const held = file.path === CONTROL_FILE;
      if (held) heldControl = true;
      const path = held ? join(work, HELD_CONTROL) : inside(dataDir, file.path, id);
      const parent = dirname(path);
      if (!made.has(parent)) {
        await mkdir(parent, { recursive: true });
        made.add(parent);
      }
      await create(path, file.size, file.mode & 0o7777);
      const fileNo = paths.push(path) - 1;
      let fileOffset = 0;
      for (const b of file.blocks) {
        if (b.pack === ZERO_PACK) {
          fileOffset += b.length; // createFile's truncate made the hole: zeros
          continue;
        }
        const item = Buffer.allocUnsafe(WORK_BYTES);
        item.writeUInt32LE(fileNo, 0);
        item.writeDoubleLE(fileOffset, 4);
        item.writeDoubleLE(b.offset, 12);
        item.writeUInt32LE(b.length, 20);
        b.sha256.copy(item, 24);
        const pack = packIds.get(b.pack)!;
        const list = spill.get(pack);
        if (list) list.push(item);
        else spill.set(pack, [item]);
        spilled += WORK_BYTES;
        fileOffset += b.length;
        blocks++;
      }
      if (spilled >= SPILL_BUFFER_BYTES) await flush();
    }
  } finally {
    await Promise.all(creating); // nothing is created behind a failure's clean-up
  }
  if (createFailed) throw createFailed.error;
  await flush();

  // Pass 2: each pack streamed once; its blocks checked and written where they belong.
  const packFiles = (await readdir(work))
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .sort((a, b) => a - b);
  const total = packFiles.reduce((n, p) => n + plan.packs[p].object.storedBytes, 0);
  progress.start('restore', total);
  let written = 0;
  try {
    const limit = pLimit(PARALLEL_PACKS);
    await Promise.all(
      packFiles.map((p) =>
        limit(async () => {
          throwIfAborted(signal);
          const n = await restorePack(plan.packs[p], directory.packs[p], await readFile(join(work, String(p))), paths, backup.manifest.id, progress);
          written += n;
        }),
      ),
    );
  } finally {
    progress.stop();
  }
  if (written !== blocks) throw new IntegrityError(`backup ${backup.manifest.id}: ${blocks - written} block(s) of the index were not found in their packs`);
  for (const p of packFiles) await rm(join(work, String(p)), { force: true });
  for (const dir of REQUIRED_DIRS) await mkdir(join(dataDir, dir), { recursive: true, mode: 0o700 });
  // Last: pg_control into place (the directory can start from now on), then the marker goes.
  if (heldControl) await rename(join(work, HELD_CONTROL), join(dataDir, CONTROL_FILE));
  await rm(work, { recursive: true, force: true });
}

/** An empty file of `size` bytes (a hole: blocks are written into it later) with exactly `mode`. */
async function createFile(path: string, size: number, mode: number): Promise<void> {
  const handle = await open(path, 'w', mode);
  try {
    if (size > 0) await handle.truncate(size);
    await handle.chmod(mode); // open's mode went through the umask
  } finally {
    await handle.close();
  }
}

interface WorkItem {
  readonly file: number;
  readonly fileOffset: number;
  readonly packOffset: number;
  readonly length: number;
  readonly sha256: Buffer;
}

/** A run of blocks for one file, consecutive in the pack and in the file: written in one writev. */
interface WriteRun {
  readonly file: number;
  readonly fileOffset: number;
  readonly pieces: Buffer[];
  bytes: number;
}

/**
 * Streams one pack, writing the blocks its work list names; returns how many it wrote. A pack holds
 * a file's changed blocks in file order, so runs of blocks go to one file one after another: they
 * are written together (up to RUN_BYTES, one writev of the stream's own chunks, nothing copied),
 * while the next run is being read. One `fs` call per 64 KiB block cost more in thread-pool hops,
 * promises and garbage than the bytes themselves.
 */
async function restorePack(source: PackSource, ref: PackRef, list: Buffer, paths: readonly string[], target: string, progress: Progress): Promise<number> {
  const items: WorkItem[] = [];
  for (let at = 0; at < list.length; at += WORK_BYTES) {
    items.push({
      file: list.readUInt32LE(at),
      fileOffset: list.readDoubleLE(at + 4),
      packOffset: list.readDoubleLE(at + 12),
      length: list.readUInt32LE(at + 20),
      sha256: list.subarray(at + 24, at + 56),
    });
  }
  items.sort((a, b) => a.packOffset - b.packOffset);
  const where = `backup ${target}: pack ${ref.name} of backup ${ref.backup}`;
  const handles = new Map<number, FileHandle>();
  const handleFor = async (file: number): Promise<FileHandle> => {
    let h = handles.get(file);
    if (h) return h;
    if (handles.size >= 16) {
      const [oldest, oh] = handles.entries().next().value!;
      handles.delete(oldest);
      await oh.close();
    }
    h = await open(paths[file], 'r+');
    handles.set(file, h);
    return h;
  };
  const writeRun = async (run: WriteRun): Promise<void> => {
    const handle = await handleFor(run.file);
    const { bytesWritten } = await handle.writev(run.pieces, run.fileOffset);
    // A regular file takes a writev whole; should it not, the rest goes after it.
    for (let done = bytesWritten; done < run.bytes; ) {
      const rest = Buffer.concat(run.pieces).subarray(done);
      done += (await handle.write(rest, 0, rest.length, run.fileOffset + done)).bytesWritten;
    }
  };
  // One run is collected while the one before it is written: writes stay in order, one at a time
  // (a handle is never closed under a write), and at most two runs of chunks are held.
  let run: WriteRun | undefined;
  let writing: Promise<void> = Promise.resolve();
  const flush = async () => {
    if (!run) return;
    const ready = run;
    run = undefined;
    await writing;
    writing = writeRun(ready);
    writing.catch(() => undefined); // handled: the next flush (or the end) awaits it and throws
  };
  const add = async (item: WorkItem, pieces: readonly Buffer[]) => {
    const hash = createHash('sha256');
    for (const p of pieces) hash.update(p);
    if (!hash.digest().equals(item.sha256)) {
      throw new IntegrityError(`${where}: the block at ${item.packOffset} does not match its checksum (for ${paths[item.file]})`);
    }
    if (run && (run.file !== item.file || run.fileOffset + run.bytes !== item.fileOffset || run.bytes + item.length > RUN_BYTES || run.pieces.length + pieces.length > RUN_PIECES)) {
      await flush();
    }
    if (run) {
      run.pieces.push(...pieces);
      run.bytes += item.length;
    } else {
      run = { file: item.file, fileOffset: item.fileOffset, pieces: [...pieces], bytes: item.length };
    }
  };

  let done = 0;
  try {
    const stream = await source.owner.read(source.object, (n) => progress.advance(n));
    let position = 0; // pack plaintext offset of the chunk's first byte
    let parts: Buffer[] = [];
    let collected = 0;
    let last: { offset: number; pieces: Buffer[] } | undefined;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let off = 0;
      while (done < items.length && off < chunk.length) {
        const item = items[done];
        if (last && item.packOffset === last.offset) {
          await add(item, last.pieces); // the same block named twice
          done++;
          continue;
        }
        const here = position + off;
        if (collected === 0 && here < item.packOffset) {
          off += Math.min(item.packOffset - here, chunk.length - off);
          continue;
        }
        if (collected === 0 && here > item.packOffset) throw new IntegrityError(`${where}: blocks overlap at ${item.packOffset}`);
        const take = Math.min(item.length - collected, chunk.length - off);
        parts.push(take === chunk.length ? chunk : chunk.subarray(off, off + take));
        collected += take;
        off += take;
        if (collected === item.length) {
          await add(item, parts);
          last = { offset: item.packOffset, pieces: parts };
          parts = [];
          collected = 0;
          done++;
        }
      }
      position += chunk.length;
    }
    while (done < items.length && last && items[done].packOffset === last.offset) await add(items[done++], last.pieces);
    if (done < items.length) throw new IntegrityError(`${where} ends before the block at ${items[done].packOffset}`);
    await flush();
    await writing;
  } finally {
    await writing.catch(() => undefined);
    await Promise.all([...handles.values()].map((h) => h.close()));
  }
  return done;
}
