import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { DatabaseUnreachable, ToolFailed, UsageError } from '../../../errors';
import { formatBytes } from '../../../format';
import { firstCause } from '../../../pipeline/write-object';
import { IN_PROCESS_ZSTD, startZstdAhead } from '../../../pipeline/zstd';
import { toolOutput } from '../../../process/tool';
import type { BackupChain, BackupManifest } from '../../../repository/manifest';
import { newBackupId } from '../../../repository/backup-id';
import type { BackupWriter } from '../../../repository/repository';
import type { BackupType } from '../../backup-types';
import type { EngineRun } from '../../engine';
import { connectPg, PgToolSession, type PgEndpoint } from '../connection';
import { postgresSource, sourceEndpoint } from '../source';
import { pgBin, toolMajor } from '../tools';
import { parseBackupLabel, parseManifestWalRange } from './backup-label';
import { startBaseBackup, type BaseBackupStream } from './base-backup-stream';
import {
  BlockIndexReader,
  BlockIndexWriter,
  INDEX_DIRECTORY_NAME,
  parseIndexDirectory,
  ZERO_PACK,
  type BlockLocation,
  type IndexedFile,
} from './block-index';
import { MAX_RECORDED_CHECKSUM_FAILURES, type ChecksumFailure, type PgPhysicalDetails } from './details';
import { PACK_BYTES, PackWriter } from './pack-writer';
import { PAGE_SIZE, PAGES_PER_SEGMENT, pageLsn, parseLsn, relationSegment, verifyPage } from './page-checksum';
import { readObjectBytes } from './read-bytes';
import { walSegmentStart, zeroStaleWalPages } from './wal-pages';

/**
 * Files are split into 64 KiB blocks (8 pages): see README "Physical backups" for the choice
 * against pgBackRest's 8–32 KiB and what it costs in index bytes.
 */
export const BLOCK_SIZE = 64 * 1024;
const MANIFEST_TAIL_BYTES = 64 * 1024;
const ZEROS = Buffer.alloc(BLOCK_SIZE);
const sha256Of = (b: Buffer): Buffer => createHash('sha256').update(b).digest();
const ZEROS_SHA256 = sha256Of(ZEROS);

/** The cluster as the replication connection describes it, before anything is written. */
interface ClusterIdentity {
  readonly systemIdentifier: string;
  readonly timeline: number;
  readonly version: string;
  readonly major: number;
  readonly dataChecksums: boolean;
  readonly pageSize: number;
  readonly estimatedBytes: number;
}

async function identifyCluster(ep: PgEndpoint, what: string): Promise<ClusterIdentity> {
  const client = await connectPg(ep, what, { replication: 'database' }).catch((e: unknown) => {
    if (e instanceof DatabaseUnreachable && /replication/i.test(e.message)) {
      throw new DatabaseUnreachable(`${e.message} (a physical backup needs a role with REPLICATION and a "replication" line in pg_hba.conf)`, { cause: e });
    }
    throw e;
  });
  try {
    const id = (await client.query('IDENTIFY_SYSTEM')).rows[0] as { systemid: string; timeline: string | number };
    const { rows } = await client.query(`
      select current_setting('server_version') as version, current_setting('server_version_num')::int / 10000 as major,
             current_setting('data_checksums') = 'on' as checksums, current_setting('block_size')::int as page,
             (select coalesce(sum(pg_database_size(oid)), 0) from pg_database)::text as bytes,
             (select string_agg(spcname, ', ') from pg_tablespace where spcname not in ('pg_default', 'pg_global')) as tablespaces`);
    const r = rows[0];
    if (r.tablespaces) {
      throw new UsageError(`${what} has tablespaces (${r.tablespaces}); physical backups of clusters with tablespaces are not supported yet (use --type logical)`);
    }
    return {
      systemIdentifier: String(id.systemid),
      timeline: Number(id.timeline),
      version: r.version,
      major: Number(r.major),
      dataChecksums: r.checksums === true || r.checksums === 't',
      pageSize: Number(r.page),
      estimatedBytes: Number(r.bytes),
    };
  } catch (e) {
    // A role without REPLICATION gets here only if pg_hba let it in; say what it lacks.
    if (/replication|IDENTIFY_SYSTEM/i.test((e as Error).message) && !(e instanceof UsageError)) {
      throw new DatabaseUnreachable(`${what}: the replication connection failed: ${(e as Error).message}`, { cause: e });
    }
    throw e;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The backup a diff (newest full) or incr (newest physical backup of any type) builds on. */
export function chooseParent(backups: readonly BackupManifest[], type: BackupType): BackupManifest | undefined {
  const physical = backups.filter((b) => b.details.kind === 'pg-physical');
  if (type === 'diff') return physical.filter((b) => b.type === 'full').pop();
  if (type === 'incr') return physical[physical.length - 1];
  return undefined;
}

/** Refuses a parent from another cluster or major version, naming both. */
function checkParent(parent: BackupManifest, cluster: ClusterIdentity, what: string, type: BackupType): void {
  const d = parent.details;
  if (d.kind !== 'pg-physical') throw new Error('parent is not a physical backup');
  if (d.systemIdentifier !== cluster.systemIdentifier) {
    throw new UsageError(
      `${type} backup of ${what} refused: the server is another cluster (system identifier ${cluster.systemIdentifier}) than the one backup ${parent.id} was taken of (${d.systemIdentifier}); take a full backup`,
    );
  }
  if (d.serverMajor !== cluster.major) {
    throw new UsageError(
      `${type} backup of ${what} refused: the server runs PostgreSQL ${cluster.major}, backup ${parent.id} was taken of PostgreSQL ${d.serverMajor}; take a full backup`,
    );
  }
}

/** Tar member names from pg_basebackup, normalized to data-directory-relative paths. */
function memberPath(name: string): string {
  return name.replace(/^\.\//, '').replace(/\/+$/, '');
}

/** Running totals and findings of one base backup. */
class BackupScan {
  storedBlocks = 0;
  reusedBlocks = 0;
  zeroBlocks = 0;
  files = 0;
  checksumFailures: ChecksumFailure[] = [];
  checksumFailureCount = 0;
  backupLabel = '';
  /** From backup_label, the first member; until then every page counts as newer (not checked). */
  startLsn = 0;
  manifestTail = '';
  stopTime?: Date;
}

export async function backupPostgresPhysical(run: EngineRun, requested: BackupType): Promise<BackupManifest> {
  const { repository, source, compression, progress, signal } = run;
  if (requested === 'logical') throw new UsageError('pg-physical takes full, diff and incr backups');
  const ep = await sourceEndpoint(source, postgresSource(run.config));
  const what = `source '${source}'`;

  // Everything that can refuse runs before the first object is written. The key check's slow part
  // (scrypt, or a KMS call) starts first and runs while the source is reached.
  const keyCheck = repository.prepareKeyCheck();
  keyCheck.catch(() => undefined); // awaited below, once the source has passed its checks
  const [cluster, catalog] = await Promise.all([identifyCluster(ep, what), repository.catalog(source)]);
  // PostgreSQL ≥ 15 speaks the base backup protocol node reads itself (base-backup-stream.ts): no
  // pg_basebackup needed. Older servers, and TIDEMARK_BASEBACKUP_TOOL=1 (the tests' way to keep
  // that path covered), get pg_basebackup, which must be at least the server's version.
  const viaProtocol = cluster.major >= 15 && process.env.TIDEMARK_BASEBACKUP_TOOL !== '1';
  const basebackup = viaProtocol ? undefined : pgBin('pg_basebackup');
  const toolVersion = basebackup ? await toolMajor(basebackup) : undefined;
  if (toolVersion !== undefined && toolVersion < cluster.major) {
    throw new ToolFailed(`pg_basebackup ${toolVersion} cannot back up ${what} (PostgreSQL ${cluster.major}): install the PostgreSQL ${cluster.major} client tools`);
  }
  let parent = chooseParent(catalog.backups, requested);
  let type: BackupType = requested;
  if (requested !== 'full' && !parent) {
    progress.note(`no ${requested === 'diff' ? 'full' : 'physical'} backup of ${what} to build on: taking a full backup instead`);
    type = 'full';
  }
  if (parent) {
    checkParent(parent, cluster, what, requested);
    const { blockSize } = parent.details as PgPhysicalDetails;
    if (blockSize !== BLOCK_SIZE) {
      progress.note(`backup ${parent.id} used ${blockSize}-byte blocks: taking a full backup instead`);
      type = 'full';
      parent = undefined;
    }
  }

  // The server's side starts now, while the key check (scrypt, a KMS call) and the repository's
  // begin (its listing and lease) still run: the server's fast checkpoint, seconds on a busy server,
  // comes meanwhile. (On a quiet throwaway cluster: BASE_BACKUP goes out 0.18 s sooner; the data,
  // gated by scrypt, ~0.05 s.) Nothing is read from it before the key is confirmed and the backup
  // begun; a refusal closes the connection, and the server abandons the backup.
  const id = newBackupId();
  const backupLabel = `tidemark ${id}`;
  const stream: BaseBackupStream | undefined = viaProtocol ? startBaseBackup(await connectPg(ep, what, { replication: 'database' }), backupLabel, what) : undefined;
  let writer: BackupWriter;
  let parentIndex: BlockIndexReader | undefined;
  /** A page unchanged since a parent that found no bad page, and older than its start, passed there. */
  let verifiedBelow: number | undefined;
  try {
    await (await keyCheck).confirm();
    if (parent) {
      const opened = await repository.openBackup(source, { id: parent.id });
      parent = opened.manifest;
      const details = parent.details as PgPhysicalDetails;
      const directory = parseIndexDirectory(await readObjectBytes(opened, details.index), `backup ${parent.id}`);
      parentIndex = new BlockIndexReader(directory, (name) => readObjectBytes(opened, name), `backup ${parent.id}`);
      if (details.dataChecksums && details.checksumFailureCount === 0) verifiedBelow = parseLsn(details.startLsn);
    }
    const chain: BackupChain | undefined = parent ? { base: parent.chain?.base ?? parent.id, depth: (parent.chain?.depth ?? 0) + 1 } : undefined;
    writer = await repository.beginBackup(source, 'postgres', type, parent?.id, chain, id);
  } catch (e) {
    stream?.close();
    throw e;
  }
  progress.note(
    `backup ${writer.id}: ${type}${parent ? ` on ${parent.id}` : ''} of ${what}, PostgreSQL ${cluster.version}, about ${formatBytes(cluster.estimatedBytes)}` +
      (cluster.dataChecksums ? ', validating page checksums' : ''),
  );
  // pg_basebackup's password goes through a private passfile; node's connection keeps it in memory.
  const session = basebackup ? await PgToolSession.open(ep) : undefined;
  const packs = new PackWriter(writer, compression, signal);
  const scan = new BackupScan();
  // Where node has no zstd of its own: the zstd of each pack and of the index's two objects, started
  // with pg_basebackup: later, from a node whose buffers are in full churn, each start would cost a
  // round of page faults. A full stores about the cluster; an incr's or diff's few packs are a
  // guess (more come in batches).
  const endSpares = IN_PROCESS_ZSTD
    ? () => Promise.resolve()
    : startZstdAhead(compression, (type === 'full' ? Math.ceil(cluster.estimatedBytes / PACK_BYTES) : 1) + 2);
  try {
    const index = new BlockIndexWriter(BLOCK_SIZE, async (name, bytes) => {
      await writer.writeObject(name, Readable.from([bytes]), { compression, inProcessZstd: true, signal });
    });
    // The server's own checksum check fails the whole backup on the first bad page; we check pages
    // ourselves, record the bad ones and complete (page-checksum.ts).
    let output: Readable;
    if (stream) {
      output = stream.archive;
    } else {
      const args = ['-D', '-', '-Ft', '-X', 'fetch', '--checkpoint=fast', '--no-verify-checksums', '--no-password', `--label=${backupLabel}`];
      output = toolOutput(basebackup!, args, { env: session!.env, label: 'pg_basebackup' });
    }
    progress.start('base backup', cluster.estimatedBytes);
    try {
      const onEntry = async (header: tar.Header, entry: Readable): Promise<void> => {
        const path = memberPath(header.name);
        if (header.type === 'directory') {
          if (path) index.addDirectory(path, header.mode);
          entry.resume();
          return;
        }
        if (header.type !== 'file' && header.type !== 'contiguous-file') {
          progress.note(`skipping ${header.type} ${path} (only files and directories are backed up)`);
          entry.resume();
          return;
        }
        if (path.startsWith('pg_wal/') && !path.startsWith('pg_wal/archive_status')) scan.stopTime ??= new Date();
        const file = await storeFile(entry, path, header, { parent: await parentIndex?.lookup(path), verifiedBelow, packs, scan, cluster });
        if (path === 'backup_label') scan.startLsn = parseLsn(parseBackupLabel(scan.backupLabel).startLsn);
        progress.advance(header.size);
        scan.files++;
        await index.addFile(file);
      };
      await readBaseBackup(output, onEntry);
      if (stream) {
        // pg_basebackup -Ft -D - puts the manifest into the tar as its last member; so do we.
        const manifest = await stream.end;
        const header = { name: 'backup_manifest', type: 'file', size: manifest.length, mode: 0o600, mtime: new Date() } as tar.Header;
        await onEntry(header, Readable.from([manifest]));
      }
    } finally {
      progress.stop();
    }
    await packs.finish();
    const directory = await index.finish();
    await writer.writeObject(INDEX_DIRECTORY_NAME, Readable.from([Buffer.from(JSON.stringify(directory))]), { compression, inProcessZstd: true, signal });

    const label = parseBackupLabel(scan.backupLabel);
    const range = parseManifestWalRange(scan.manifestTail);
    if (scan.checksumFailureCount > 0) {
      progress.note(`warning: ${scan.checksumFailureCount} page(s) failed their data checksum (recorded in the manifest; the backup completes)`);
    }
    const details: PgPhysicalDetails = {
      kind: 'pg-physical',
      serverVersion: cluster.version,
      serverMajor: cluster.major,
      ...(toolVersion !== undefined ? { pgBasebackupMajor: toolVersion } : {}),
      systemIdentifier: cluster.systemIdentifier,
      timeline: range.timeline,
      startLsn: label.startLsn,
      stopLsn: range.stopLsn,
      backupLabel: scan.backupLabel,
      dataChecksums: cluster.dataChecksums,
      blockSize: BLOCK_SIZE,
      index: INDEX_DIRECTORY_NAME,
      files: scan.files,
      storedBlocks: scan.storedBlocks,
      reusedBlocks: scan.reusedBlocks,
      zeroBlocks: scan.zeroBlocks,
      requestedType: requested as 'full' | 'diff' | 'incr',
      checksumFailureCount: scan.checksumFailureCount,
      checksumFailures: scan.checksumFailures,
    };
    return await writer.commit({ time: (scan.stopTime ?? new Date()).toISOString(), lsn: range.stopLsn }, details);
  } catch (e) {
    packs.abort(e as Error);
    // A pack that failed to store (a full disk, S3 down) is the cause; the tar stream's "Premature
    // close" that follows it is only the symptom, and either may be the one that got here first.
    const packFailure = await packs.finish().then(() => undefined, (x: unknown) => x);
    throw firstCause(packFailure === undefined ? [e] : [e, packFailure]);
  } finally {
    stream?.close();
    await Promise.all([session?.close(), endSpares()]);
  }
}

/**
 * Feeds every tar member to `onEntry` in order. A failure of pg_basebackup (exit code, stderr) wins
 * over the tar parser's complaint about the stream it left behind.
 */
async function readBaseBackup(output: Readable, onEntry: (header: tar.Header, entry: Readable) => Promise<void>): Promise<void> {
  const extract = tar.extract();
  const flow = pipeline(output, extract as unknown as NodeJS.WritableStream);
  flow.catch(() => undefined);
  try {
    for await (const entry of extract) await onEntry(entry.header, entry as unknown as Readable);
    await flow;
  } catch (e) {
    output.destroy();
    extract.destroy();
    const streamError = await flow.then(
      () => undefined,
      (err: unknown) => err,
    );
    throw firstCause([streamError, e].filter((x) => x !== undefined));
  }
}

interface StoreContext {
  readonly parent: IndexedFile | undefined;
  /**
   * Set when the parent checked its pages and found none bad: its start LSN. A page in a block
   * identical to the parent's whose LSN is below it was checked by the parent (or, by the same rule,
   * by an ancestor) and is not checked again; pages at or past it were skipped there as written
   * during that backup, and are checked now.
   */
  readonly verifiedBelow: number | undefined;
  readonly packs: PackWriter;
  readonly scan: BackupScan;
  readonly cluster: ClusterIdentity;
}

/**
 * Cuts a stream into blocks of `size` bytes, the last one possibly shorter, each given as the
 * pieces of the chunks it lies in: views, never copies. Pipe reads are 64 KiB and tar members start
 * on 512-byte boundaries, so nearly every block straddles two chunks: assembling blocks cost a
 * 64 KiB allocation and copy per block (and the garbage collector's time), for bytes that are only
 * hashed, checked and written on.
 */
export async function* splitBlocks(chunks: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer[]> {
  let pieces: Buffer[] = [];
  let filled = 0;
  for await (const chunk of chunks) {
    for (let off = 0; off < chunk.length; ) {
      const n = Math.min(size - filled, chunk.length - off);
      pieces.push(n === chunk.length ? chunk : chunk.subarray(off, off + n));
      filled += n;
      off += n;
      if (filled === size) {
        yield pieces;
        pieces = [];
        filled = 0;
      }
    }
  }
  if (filled > 0) yield pieces;
}

/** Bytes [start, end) of a block given as pieces: a view when they lie in one piece, else copied into `scratch`. */
export function rangeOf(pieces: readonly Buffer[], start: number, end: number, scratch: Buffer): Buffer {
  let base = 0;
  for (const p of pieces) {
    if (start >= base && end <= base + p.length) return p.subarray(start - base, end - base);
    base += p.length;
  }
  let filled = 0;
  base = 0;
  for (const p of pieces) {
    const from = Math.max(start, base);
    const to = Math.min(end, base + p.length);
    if (from < to) filled += p.copy(scratch, filled, from - base, to - base);
    base += p.length;
  }
  return scratch.subarray(0, filled);
}

/** A page that straddles two pieces is checked from here. */
const PAGE_SCRATCH = Buffer.alloc(PAGE_SIZE);

/**
 * Splits one file into blocks and stores those that differ from the parent's block at the same
 * position. Pages of relation files are checked against their data checksum as they pass. A zero
 * block costs a memcmp: no page check (new pages pass anyway), no hash, no pack bytes.
 */
async function storeFile(entry: Readable, path: string, header: tar.Header, ctx: StoreContext): Promise<IndexedFile> {
  const { parent, packs, scan, cluster } = ctx;
  const relSegment = cluster.dataChecksums && cluster.pageSize === PAGE_SIZE ? relationSegment(path) : undefined;
  const { startLsn } = scan;
  const walStart = walSegmentStart(path, header.size);
  const keep = path === 'backup_label' ? 'all' : path === 'backup_manifest' ? 'tail' : undefined;
  // WAL pages are blanked in place and the label is read as text: those few files' blocks are whole.
  const whole = (walStart !== undefined && startLsn > 0) || keep !== undefined;
  const blocks: BlockLocation[] = [];
  let fileOffset = 0;

  for await (const pieces of splitBlocks(entry as AsyncIterable<Buffer>, BLOCK_SIZE)) {
    const parts = whole && pieces.length > 1 ? [Buffer.concat(pieces)] : pieces;
    const length = parts.reduce((n, p) => n + p.length, 0);
    if (walStart !== undefined && startLsn > 0) zeroStaleWalPages(parts[0], walStart, fileOffset, startLsn);
    if (keep === 'all') scan.backupLabel += parts[0].toString('utf8');
    if (keep === 'tail') scan.manifestTail = (scan.manifestTail + parts[0].toString('utf8')).slice(-MANIFEST_TAIL_BYTES);
    const at = fileOffset;
    fileOffset += length;
    if (parts.every((p) => ZEROS.subarray(0, p.length).equals(p))) {
      blocks.push({ pack: ZERO_PACK, offset: 0, length, sha256: length === BLOCK_SIZE ? ZEROS_SHA256 : sha256Of(ZEROS.subarray(0, length)) });
      scan.zeroBlocks++;
      continue;
    }
    const hash = createHash('sha256');
    for (const p of parts) hash.update(p);
    const sha256 = hash.digest();
    const before = parent?.blocks[blocks.length];
    const unchanged = before !== undefined && before.length === length && before.sha256.equals(sha256);
    if (relSegment !== undefined) checkPages(parts, length, at, relSegment, path, scan, unchanged ? ctx.verifiedBelow : undefined);
    if (unchanged) {
      blocks.push(before);
      scan.reusedBlocks++;
    } else {
      const stored = await packs.add(parts);
      blocks.push({ pack: stored.pack, offset: stored.offset, length, sha256 });
      scan.storedBlocks++;
    }
  }
  return { path, mode: header.mode, size: fileOffset, mtime: header.mtime.getTime() / 1000, blocks };
}

/**
 * Records the pages of a block (at `fileOffset` in a relation segment file) that fail their checksum,
 * leaving out those older than `verifiedBelow` (StoreContext).
 */
function checkPages(parts: readonly Buffer[], length: number, fileOffset: number, relSegment: number, path: string, scan: BackupScan, verifiedBelow?: number): void {
  for (let at = 0; at + PAGE_SIZE <= length; at += PAGE_SIZE) {
    const page = rangeOf(parts, at, at + PAGE_SIZE, PAGE_SCRATCH);
    if (verifiedBelow !== undefined && pageLsn(page) < verifiedBelow) continue;
    const pageNo = relSegment * PAGES_PER_SEGMENT + (fileOffset + at) / PAGE_SIZE;
    if (verifyPage(page, pageNo, scan.startLsn) === 'bad') {
      scan.checksumFailureCount++;
      if (scan.checksumFailures.length < MAX_RECORDED_CHECKSUM_FAILURES) scan.checksumFailures.push({ file: path, offset: fileOffset + at });
    }
  }
}
