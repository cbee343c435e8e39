import { closeSync, constants as fsConstants, fchmodSync, ftruncateSync, mkdirSync, openSync } from 'node:fs';
import { mkdir, open, readdir, readFile, appendFile, rename, rm, stat, chmod, type FileHandle } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import pLimit from 'p-limit';
import { abortReason, throwIfAborted } from '../../../abort';
import { formatBytes } from '../../../format';
import { BackupNotFound, IntegrityError, TargetNotEmpty, UsageError } from '../../../errors';
import type { Progress } from '../../../progress';
import { startZstdIntoFile, type FileOutput } from '../../../pipeline/decompress-to-file';
import { eachChunk } from '../../../pipeline/each-chunk';
import { IN_PROCESS_ZSTD } from '../../../pipeline/zstd';
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
import { checkServerCanReach, makeThrowaway, serverBinDir, startRestoredCluster, type StartOptions } from './start-cluster';
import { stopPostmaster } from '../postmaster';

/**
 * Restore of a physical backup into a data directory, in three steps that point-in-time recovery
 * reuses: planPgPhysicalRestore (every refusal; a PITR planner can pick the backup itself and call
 * backupChain + openPhysicalBackup), assembleDataDirectory (the chain's blocks into the directory,
 * backup_label and the backup's own WAL included), and startRestoredCluster (start-cluster.ts:
 * recovery settings and recovery.signal, the OS user, waiting for connections).
 */

/**
 * Packs restored at once: each is a download, decrypted and decompressed, its blocks written into
 * place as they come (Node 22: streamPack) or, where node has no zstd, through a zstd -d into a
 * scratch file in the target first (up to a pack's plaintext, PACK_BYTES, on disk for a moment).
 */
const PARALLEL_PACKS = 3;
/** Bytes of consecutive blocks copied with one read and one write (restorePack). */
const RUN_BYTES = 1 << 20;
/** Work lists waiting in memory before they go to their spill files. */
const SPILL_BUFFER_BYTES = 8 << 20;
/** One work item: u32 file, f64 file offset, f64 pack offset, u32 length. */
const WORK_BYTES = 24;
/**
 * The restore's work folder in the target: made first and removed last, so while it is there the
 * directory is an unfinished restore (a killed one, too), and the next restore says so. It also
 * holds back global/pg_control until every other file is whole: PostgreSQL does not start a data
 * directory without it, so a half-written one cannot be started as if it were whole. A restore to a
 * point in time keeps it (empty) through the WAL replay and removes it once the target is reached:
 * a restore killed while replaying is an interrupted one too (its server stops by itself: see
 * wal-prefetch.ts), and `--force` replaces it.
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
    throw new TargetNotEmpty(`--to ${path} holds an interrupted restore (${WORK_DIR} is still there); pass --force to replace it, or restore into an empty or new directory`);
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
    ...(to.start ? { start: { port: to.start.port, ...(to.start.osUser ? { osUser: to.start.osUser } : {}), ...(to.start.throwaway ? { throwaway: true } : {}) } } : {}),
  };
}

export async function applyPgPhysicalRestore(run: EngineRun, plan: PgPhysicalRestorePlan): Promise<RestoredTarget> {
  const { progress, signal } = run;
  progress.note(`restoring backup ${plan.backup.manifest.id} (${plan.chain.length} in its chain, consistent at ${plan.restorePoint.lsn}) into ${plan.dataDir}`);
  await assembleDataDirectory(plan, { progress, signal });
  if (plan.start?.throwaway) await makeThrowaway(plan.dataDir);
  if (plan.pitr) {
    const outcome = await replayTo({ run, dataDir: plan.dataDir, details: plan.details, replay: plan.pitr, base: plan.backup.manifest, ...(plan.start ? { start: plan.start } : {}) }).catch(
      async (e: unknown) => {
        // A replay that failed leaves no half-recovered cluster behind: the directory was empty before.
        await emptyMarkerLast(plan.dataDir).catch(() => undefined);
        throw e;
      },
    );
    // The target is reached: from here on the directory is a restored cluster.
    await rm(join(plan.dataDir, WORK_DIR), { recursive: true, force: true });
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
 * the pack that holds it. Memory stays flat: the index is read a chunk at a time and turned into one
 * work list per pack on disk (in the target, removed at the end); each pack is then decompressed once,
 * PARALLEL_PACKS at a time. On failure the directory is emptied again.
 *
 * A block is not hashed again on its way out: every byte of a pack reaches us through its GCM tags
 * (segment by segment, before it is released), and the pack fails the restore at its end unless
 * its stored SHA-256 and zstd's content checksum match; the index that places the blocks is itself
 * an authenticated object. The blocks' SHA-256 in the index is what the next backup compares with.
 * Hashing all of them again here was a quarter of a restore's CPU for a check that the checks above
 * already make (verify reads packs the same way).
 */
export async function assembleDataDirectory(plan: PgPhysicalRestorePlan, options: { progress: Progress; signal: AbortSignal }): Promise<void> {
  const { dataDir } = plan;
  const existed = await stat(dataDir).then(
    () => true,
    () => false,
  );
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await chmod(dataDir, 0o700);
  // What an interrupted restore left (--force; planning checked it is that and nothing else),
  // the server of one killed while it replayed WAL included.
  if (plan.replacesInterrupted) {
    await stopLeftoverServer(dataDir);
    await emptyMarkerLast(dataDir);
  }
  try {
    await assemble(plan, options);
  } catch (e) {
    await emptyMarkerLast(dataDir);
    if (!existed) await rm(dataDir, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Empties a data directory so that a kill at any moment leaves it either empty or marked as an
 * interrupted restore (WORK_DIR, which `--force` may replace): the marker is made first if missing
 * and removed last, after everything else.
 */
async function emptyMarkerLast(dataDir: string): Promise<void> {
  await mkdir(join(dataDir, WORK_DIR)).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw e;
  });
  const others = (await readdir(dataDir)).filter((n) => n !== WORK_DIR);
  await Promise.all(others.map((n) => rm(join(dataDir, n), { recursive: true, force: true })));
  await rm(join(dataDir, WORK_DIR), { recursive: true, force: true });
}

/**
 * Stops the server an interrupted restore left running in its data directory (one killed during
 * WAL replay: its server ends by itself at its next restore_command, but may first replay what was
 * already fetched). Only a process whose working directory is that data directory counts: a pid in
 * a stale postmaster.pid may belong to anything by now. SIGQUIT (immediate shutdown: nothing of it
 * is kept), SIGKILL after 10 s.
 */
async function stopLeftoverServer(dataDir: string): Promise<void> {
  try {
    await stopPostmaster(dataDir, 'immediate', { timeoutSeconds: 10 });
  } catch {
    await stopPostmaster(dataDir, 'kill', { timeoutSeconds: 10 }).catch((cause: unknown) => {
      throw new TargetNotEmpty(`--to ${dataDir}: the server of the interrupted restore does not stop`, { cause });
    });
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
  // The marker first: killed from here on, the directory says it holds an interrupted restore.
  // What the process's umask takes from a mode: a file's mode is then set by open alone, unless the
  // umask takes a bit of it (a group-readable cluster under umask 077), and only then by fchmod too.
  await mkdir(work, { mode: 0o777 });
  const umask = 0o777 & ~(await stat(work)).mode;
  for (const [path, mode] of directory.directories) {
    const dir = inside(dataDir, path, id);
    await mkdir(dir, { recursive: true });
    await chmod(dir, mode & 0o7777);
  }

  // Pass 1: the index, a chunk at a time → a work list per pack on disk, and every file created
  // (createFile says why here, and why one at a time); the packs only open them.
  const packIds = new Map<PackRef, number>(directory.packs.map((p, i) => [p, i]));
  const files: TargetFile[] = [];
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
  for await (const file of reader.files()) {
    throwIfAborted(signal);
    const held = file.path === CONTROL_FILE;
    if (held) heldControl = true;
    const path = held ? join(work, HELD_CONTROL) : inside(dataDir, file.path, id);
    const parent = dirname(path);
    if (!made.has(parent)) {
      mkdirSync(parent, { recursive: true });
      made.add(parent);
    }
    const fileNo = files.length;
    let fileOffset = 0;
    let written = 0; // where the last block from a pack ends
    for (const b of file.blocks) {
      if (b.pack !== ZERO_PACK) {
        const item = Buffer.allocUnsafe(WORK_BYTES);
        item.writeUInt32LE(fileNo, 0);
        item.writeDoubleLE(fileOffset, 4);
        item.writeDoubleLE(b.offset, 12);
        item.writeUInt32LE(b.length, 20);
        const pack = packIds.get(b.pack)!;
        const list = spill.get(pack);
        if (list) list.push(item);
        else spill.set(pack, [item]);
        spilled += WORK_BYTES;
        written = fileOffset + b.length;
        blocks++;
      }
      fileOffset += b.length; // a zero block is left to the hole that the file's size makes
    }
    const target: TargetFile = { path, size: file.size, mode: file.mode & 0o7777 };
    files.push(target);
    createFile(target, written < file.size, umask);
    if (spilled >= SPILL_BUFFER_BYTES) await flush();
  }
  await flush();

  // Pass 2: each pack decompressed once, checked whole, its blocks copied where they belong. The
  // first failure stops the others, and nothing returns before they have: the clean-up that
  // follows must not race a pack still writing files.
  const packFiles = (await readdir(work))
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .sort((a, b) => a - b);
  const total = packFiles.reduce((n, p) => n + plan.packs[p].object.storedBytes, 0);
  progress.start('restore', total);
  let written = 0;
  const stop = new AbortController();
  const stopped = AbortSignal.any([signal, stop.signal]);
  let failure: { error: unknown } | undefined;
  // Where node has zstd itself, packs stream straight into place; elsewhere each goes through a zstd
  // process into a scratch file first (restorePack and streamPack say why).
  const outputs = IN_PROCESS_ZSTD ? undefined : new PackOutputs(work, packFiles, (p) => plan.packs[p].object.compression === 'zstd');
  try {
    const limit = pLimit(PARALLEL_PACKS);
    await Promise.all(
      spread(packFiles, PARALLEL_PACKS).map((p) =>
        limit(async () => {
          if (failure) return;
          try {
            throwIfAborted(signal);
            const list = await readFile(join(work, String(p)));
            const into = { files, backup: backup.manifest.id };
            const n = outputs
              ? await restorePack(plan.packs[p], directory.packs[p], list, { ...into, output: await outputs.take(p) }, progress, stopped)
              : await streamPack(plan.packs[p], directory.packs[p], list, into, progress, stopped);
            written += n; // not `written += await …`: that adds to the value read before the wait
          } catch (error) {
            failure ??= { error: signal.aborted ? abortReason(signal) : error };
            stop.abort();
          }
        }),
      ),
    );
  } finally {
    await outputs?.close();
    progress.stop();
  }
  if (failure) throw failure.error;
  if (written !== blocks) throw new IntegrityError(`backup ${backup.manifest.id}: ${blocks - written} block(s) of the index were not found in their packs`);
  for (const p of packFiles) await rm(join(work, String(p)), { force: true });
  for (const dir of REQUIRED_DIRS) await mkdir(join(dataDir, dir), { recursive: true, mode: 0o700 });
  // Last: pg_control into place (the directory can start from now on), then the marker goes.
  if (heldControl) await rename(join(work, HELD_CONTROL), join(dataDir, CONTROL_FILE));
  // A replay to come keeps the (now empty) marker until it reaches its target.
  if (!plan.pitr) await rm(work, { recursive: true, force: true });
}

/**
 * `items` reordered for `lanes` workers taking them in turn: the workers start at `lanes` evenly
 * spaced places and each goes on from its own. Packs are cut from the backup's stream in file
 * order, so neighbouring packs hold the same 1 GiB relation segment; restored together they wrote
 * into one file from libuv's threads at once, and ext4 takes a file's lock for every buffered
 * write (perf, scale-200 restore on Node 22: 9% of all CPU spinning on it).
 */
export function spread<T>(items: readonly T[], lanes: number): T[] {
  const per = Math.ceil(items.length / lanes);
  const out: T[] = [];
  for (let i = 0; i < per; i++) for (let lane = 0; lane < lanes; lane++) if (lane * per + i < items.length) out.push(items[lane * per + i]);
  return out;
}

/** Packs whose outputs are made together, ahead of their turn. */
const OUTPUT_BATCH = 16;

/**
 * Each pack's scratch file (unlinked at once: nothing is left behind a crash) and, for a compressed
 * pack, its zstd -d, made OUTPUT_BATCH at a time ahead of the packs' turns: node forks a zstd per
 * pack, and each fork made once the restore's buffers have churned costs node a round of
 * copy-on-write faults (BENCHMARKS.md, "What a process start costs"); a batch costs one.
 */
class PackOutputs {
  private readonly ready = new Map<number, FileOutput>();
  private next = 0;
  private making: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly work: string,
    /** Packs in the order they will be taken. */
    private readonly packs: readonly number[],
    private readonly compressed: (pack: number) => boolean,
  ) {}

  /** Pack `p`'s output, made with its batch. */
  async take(p: number): Promise<FileOutput> {
    while (!this.ready.has(p)) {
      this.making = this.making.then(() => (this.ready.has(p) ? undefined : this.makeBatch()));
      await this.making;
    }
    const output = this.ready.get(p)!;
    this.ready.delete(p);
    return output;
  }

  private async makeBatch(): Promise<void> {
    const batch = this.packs.slice(this.next, this.next + OUTPUT_BATCH);
    this.next += batch.length;
    if (batch.length === 0) throw new Error('PackOutputs: a pack was taken twice');
    // Scratch files first, then the forks one after the other, before any data flows.
    const files = await Promise.all(batch.map((p) => this.scratch(p)));
    batch.forEach((p, i) => this.ready.set(p, { file: files[i], ...(this.compressed(p) && !this.closed ? { zstd: startZstdIntoFile(files[i]) } : {}) }));
  }

  private async scratch(p: number): Promise<FileHandle> {
    const path = join(this.work, `plain-${p}`);
    const file = await open(path, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
    await rm(path).catch(async (e: unknown) => {
      await file.close();
      throw e;
    });
    return file;
  }

  /** Ends what was made and not taken (a failed restore, or the last batch's spares). */
  async close(): Promise<void> {
    this.closed = true;
    await this.making.catch(() => undefined);
    const left = [...this.ready.values()];
    this.ready.clear();
    for (const { zstd } of left) zstd?.kill();
    await Promise.all(left.map(({ file, zstd }) => Promise.all([zstd?.exited, file.close()])));
  }
}

/** A file of the data directory: where, its size and mode. */
interface TargetFile {
  readonly path: string;
  readonly size: number;
  readonly mode: number;
}

/** The mode `open` gives a file is `mode` less the umask: fchmod only when that took something. */
const chmodNeeded = (mode: number, umask: number): boolean => (mode & umask) !== 0 || mode > 0o777;

const CREATE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL;

/**
 * Creates a file of the data directory with exactly its mode, sized when it ends in zeros that no
 * block writes (a hole; every block lies below the size, so sizing first is safe). Pass 1 creates
 * every file so, one after another with synchronous calls on node's own thread; the packs then
 * only open them. Creating a file takes its directory's lock, and a cluster's thousand-odd files
 * lie in a handful of directories: created from libuv's threads at once (four in pass 1, then the
 * packs' own as they first wrote to them), the creators spun on that lock, and each awaited call was
 * a round trip through the event loop. By hand, Node 22, scale 50, interleaved with the build before
 * and pgBackRest (2026-12-03): the restore's CPU 3.50 → 2.71 s and 3.71 → 3.04 s (6 rounds each),
 * its time within the noise (2.29 → 2.15 s, 2.42 → 2.42 s). Creating the 1,435 files of a scale-200
 * cluster alone: 64–528 ms and 78–527 CPU-ms this way, 144–624 ms and 217–939 CPU-ms four at a time.
 * (The spread is the host's: on this ext4, without a journal, each create skips every inode freed
 * in the last minute or so, so a directory restored just after another was removed creates slowly.)
 */
function createFile(file: TargetFile, endsInHole: boolean, umask: number): void {
  const fd = openSync(file.path, CREATE_FLAGS, file.mode);
  try {
    if (endsInHole) ftruncateSync(fd, file.size);
    if (chmodNeeded(file.mode, umask)) fchmodSync(fd, file.mode);
  } finally {
    closeSync(fd);
  }
}

interface WorkItem {
  readonly file: number;
  readonly fileOffset: number;
  readonly packOffset: number;
  readonly length: number;
}

/** A run of blocks for one file, consecutive in the pack and in the file: one read, one write. */
interface CopyRun {
  readonly file: number;
  readonly fileOffset: number;
  readonly packOffset: number;
  bytes: number;
}

/** Blocks consecutive in the pack and in one file, up to RUN_BYTES together (a longer block alone). */
function copyRuns(items: readonly WorkItem[]): CopyRun[] {
  const runs: CopyRun[] = [];
  let run: CopyRun | undefined;
  for (const item of items) {
    if (
      run &&
      run.file === item.file &&
      run.fileOffset + run.bytes === item.fileOffset &&
      run.packOffset + run.bytes === item.packOffset &&
      run.bytes + item.length <= RUN_BYTES
    ) {
      run.bytes += item.length;
    } else {
      run = { file: item.file, fileOffset: item.fileOffset, packOffset: item.packOffset, bytes: item.length };
      runs.push(run);
    }
  }
  return runs;
}

/**
 * Restores the blocks of one pack that its work list names; returns how many. zstd -d writes the
 * pack's plaintext into a scratch file (unlinked at once: nothing is left behind a crash), and only
 * once all of it has passed every check (decompressToFile) are its blocks copied out by offset: a
 * pack holds a file's changed blocks in file order, so a run of them is one read into a reused
 * buffer and one write, the next run read while the last is written. Node never sees the plaintext
 * as a stream: no buffer per 64 KiB, no stream hop per chunk, and nothing of a damaged pack reaches
 * the data directory.
 */
async function restorePack(
  source: PackSource,
  ref: PackRef,
  list: Buffer,
  target: { files: readonly TargetFile[]; output: FileOutput; backup: string },
  progress: Progress,
  signal: AbortSignal,
): Promise<number> {
  const items = workItems(list);
  const where = `backup ${target.backup}: pack ${ref.name} of backup ${ref.backup}`;
  const plainBytes = source.object.plainBytes;
  const handles = new BlockFiles(target.files);
  const writeRun = async (run: CopyRun, bytes: Buffer): Promise<void> => {
    const handle = await handles.get(run.file);
    await writeAll(handle, bytes.subarray(0, run.bytes), run.fileOffset);
    await handles.closeEvicted();
  };

  const plain = target.output.file;
  // Writes stay in order, one at a time (a handle is never closed under a write); a buffer is
  // read into again only once the write that used it is done.
  let writing: Promise<void> = Promise.resolve();
  try {
    await source.owner.decompressToFile(source.object, target.output, { onStoredBytes: (n) => progress.advance(n), signal });
    const buffers = [Buffer.allocUnsafeSlow(RUN_BYTES), Buffer.allocUnsafeSlow(RUN_BYTES)];
    const written: Promise<void>[] = [writing, writing];
    let n = 0;
    for (const run of copyRuns(items)) {
      throwIfAborted(signal);
      if (run.packOffset + run.bytes > plainBytes) throw new IntegrityError(`${where} ends before the block at ${run.packOffset}`);
      const slot = n++ % 2;
      await written[slot];
      const bytes = run.bytes <= RUN_BYTES ? buffers[slot] : Buffer.allocUnsafe(run.bytes);
      for (let done = 0; done < run.bytes; ) {
        const { bytesRead } = await plain.read(bytes, done, run.bytes - done, run.packOffset + done);
        if (bytesRead === 0) throw new IntegrityError(`${where} ends before the block at ${run.packOffset + done}`);
        done += bytesRead;
      }
      writing = writing.then(() => writeRun(run, bytes));
      writing.catch(() => undefined); // handled: the next wait (or the end) awaits it and throws
      written[slot] = writing;
    }
    await writing;
  } finally {
    await writing.catch(() => undefined);
    await Promise.all([handles.close(), plain.close()]);
  }
  return items.length;
}

/** A pack's work list (pass 1's file): its items in pack order. */
function workItems(list: Buffer): WorkItem[] {
  const items: WorkItem[] = [];
  for (let at = 0; at < list.length; at += WORK_BYTES) {
    items.push({
      file: list.readUInt32LE(at),
      fileOffset: list.readDoubleLE(at + 4),
      packOffset: list.readDoubleLE(at + 12),
      length: list.readUInt32LE(at + 20),
    });
  }
  return items.sort((a, b) => a.packOffset - b.packOffset);
}

async function writeAll(handle: FileHandle, bytes: Buffer, position: number): Promise<void> {
  for (let done = 0; done < bytes.length; ) done += (await handle.write(bytes, done, bytes.length - done, position + done)).bytesWritten;
}

/** Files open for a pack's blocks, at most OPEN_FILES; one pushed out is closed by closeEvicted, once no write uses it. */
class BlockFiles {
  private readonly open = new Map<number, Promise<FileHandle>>();
  private evicted: Promise<FileHandle>[] = [];

  constructor(private readonly files: readonly TargetFile[]) {}

  get(file: number): Promise<FileHandle> {
    let handle = this.open.get(file);
    if (!handle) {
      if (this.open.size >= OPEN_FILES) {
        const [oldest, pushedOut] = this.open.entries().next().value!;
        this.open.delete(oldest);
        this.evicted.push(pushedOut);
      }
      handle = open(this.files[file].path, fsConstants.O_WRONLY);
      handle.catch(() => undefined); // awaited by the caller, and by close
      this.open.set(file, handle);
    }
    return handle;
  }

  /** Closes the files pushed out: call when no write is in flight on them. */
  async closeEvicted(): Promise<void> {
    if (this.evicted.length === 0) return; // most calls: one per run written
    const evicted = this.evicted;
    this.evicted = [];
    await closeAll(evicted);
  }

  async close(): Promise<void> {
    const all = [...this.evicted, ...this.open.values()];
    this.evicted = [];
    this.open.clear();
    await closeAll(all);
  }
}

/** Closes every handle that opened; the first failure (of an open or a close) is thrown after all are tried. */
async function closeAll(handles: readonly Promise<FileHandle>[]): Promise<void> {
  const results = await Promise.allSettled(handles.map(async (h) => (await h).close()));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** Files a pack keeps open at once (a chunk's blocks may lie in more: those pushed out close once its writes are done). */
const OPEN_FILES = 16;

/**
 * Restores the blocks of one pack that its work list names, as its plaintext arrives: node
 * decompresses it (zlib's zstd, IN_PROCESS_ZSTD), and each chunk's blocks are written where they
 * belong before the next chunk is taken, so every byte is written once and nothing else is held.
 * What reaches the data directory has passed its GCM tag, segment by segment; the pack's last chunk
 * comes only once the whole pack has passed every check (readObject's VerifiedTail: stored size and
 * SHA-256, zstd's content checksum, the plaintext size). A pack that fails there fails the restore,
 * whose clean-up empties the directory: a damaged pack can put blocks into a target that is then
 * removed, never into one reported restored. (Where node has no zstd, restorePack takes the other
 * way: a scratch file, all checks, then the copies.)
 */
async function streamPack(
  source: PackSource,
  ref: PackRef,
  list: Buffer,
  target: { files: readonly TargetFile[]; backup: string },
  progress: Progress,
  signal: AbortSignal,
): Promise<number> {
  const items = workItems(list);
  const runs = copyRuns(items);
  const where = `backup ${target.backup}: pack ${ref.name} of backup ${ref.backup}`;
  const handles = new BlockFiles(target.files);
  let at = 0; // the pack offset of the chunk in hand
  let next = 0; // the first run not wholly written
  try {
    const plain = await source.owner.read(source.object, (n) => progress.advance(n), { inProcessZstd: true });
    await eachChunk(plain, 'pack', async (chunk) => {
      const end = at + chunk.length;
      const writes: Promise<void>[] = [];
      for (let i = next; i < runs.length && runs[i].packOffset < end; i++) {
        const run = runs[i];
        const from = Math.max(run.packOffset, at);
        const to = Math.min(run.packOffset + run.bytes, end);
        if (to <= from) continue;
        const bytes = chunk.subarray(from - at, to - at);
        const position = run.fileOffset + (from - run.packOffset);
        writes.push(handles.get(run.file).then((h) => writeAll(h, bytes, position)));
      }
      while (next < runs.length && runs[next].packOffset + runs[next].bytes <= end) next++;
      at = end;
      const results = await Promise.allSettled(writes);
      await handles.closeEvicted();
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    }, signal);
  } catch (e) {
    // A file that also failed to close says less than what stopped the pack.
    await handles.close().catch(() => undefined);
    throw e;
  }
  await handles.close();
  if (next < runs.length) throw new IntegrityError(`${where} ends before the block at ${runs[next].packOffset}`);
  return items.length;
}
