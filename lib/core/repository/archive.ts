import { createHash, randomBytes } from 'node:crypto';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline as pipelineCallback, Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pLimit from 'p-limit';
import { z } from 'zod';
import { destroyOnAbort, throwIfAborted } from '../abort';
import type { EncryptionContext, KeyProvider, WrappedKey } from '../crypto/key-provider';
import { currentKey } from '../crypto/key-ring';
import { DecryptStream, DEFAULT_SEGMENT_LOG2, EncryptStream, SEGMENT_ALGORITHM } from '../crypto/segmented-aead';
import { EncryptionKeyError, IntegrityError, StorageError, TidemarkError } from '../errors';
import type { Progress } from '../progress';
import type { CompressedOutput } from '../pipeline/compressed-output';
import { writeToHandle } from '../pipeline/file-sink';
import { firstCause } from '../pipeline/write-object';
import { zstdDecompress, type ZstdOptions } from '../pipeline/zstd';
import { forwardOutput, toolFilter, ToolRun } from '../process/tool';
import { isBackupId, newBackupId } from './backup-id';
import { checkRepositoryBinding, REPOSITORY_CONTEXT_KEY } from './identity';
import type { Repository } from './repository';
import type { ObjectStore, StoredObjectInfo } from './storage';

/**
 * The continuous archive of a source: WAL segments (PostgreSQL) or binlog files (MySQL), each an
 * immutable object under `<source>/<stream>/`. Engine-neutral: names below the prefix are opaque
 * here (`00000001/000000010000000000000003`, `00000002.history`, `mysql-bin.000042`) and the
 * engine validates them; this file owns keys, encryption and integrity.
 *
 *   <source>/<stream>/<name>                an archived object
 *   <source>/<stream>/keys/<epoch>.json     a data-key epoch, written once, before its objects
 *
 * Unlike a backup, an archive never ends, so there is no manifest to commit it: each object is
 * self-describing. An object is a short header and the segmented AEAD stream of its zstd bytes:
 *
 *   "TDMKARC1" | uint32 BE length | JSON {epoch, compression, plainBytes, attributes?} | AEAD stream
 *
 * The header is plaintext (the rpo check reads it without a key) but not trusted: the AEAD key is
 * derived with SHA-256(storage key | 0 | header) as extra HKDF info, so an object that was renamed,
 * swapped with another or had its header edited fails its first GCM tag. Reading checks every tag
 * and the final-segment flag, zstd's content checksum and the exact plaintext size, and holds the
 * last chunk back until all of them passed.
 *
 * Keys: a data key per epoch (a streamer run, or the wal-push calls that share the newest epoch),
 * wrapped by the repository's KeyProvider under the context {tidemark:'archive', source, epoch}.
 * Many objects per KMS call, and still no plaintext key stored anywhere.
 */
/** Objects read back at a time by verifyObjects. */
const PARALLEL_VERIFY = 4;

export type ArchiveStream = 'wal' | 'binlog';

const MAGIC = Buffer.from('TDMKARC1', 'ascii');
const FIXED_HEADER_BYTES = MAGIC.length + 4;
const MAX_HEADER_JSON_BYTES = 4096;
const KEYS_FOLDER = 'keys';
const KEY_FORMAT = 'tidemark.archive-key';

export const archivePrefix = (source: string, stream: ArchiveStream): string => `${source}/${stream}/`;
export const archiveKeysPrefix = (source: string, stream: ArchiveStream): string => `${archivePrefix(source, stream)}${KEYS_FOLDER}/`;

/** Facts an engine records with an object (the LSN a partial reaches, when it was taken); authenticated with it. */
export type ArchiveAttributes = Readonly<Record<string, string | number>>;

const HeaderSchema = z.strictObject({
  epoch: z.string().refine(isBackupId, { message: 'not an epoch id' }),
  compression: z.literal('zstd'),
  plainBytes: z.number().int().nonnegative(),
  attributes: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
});
export type ArchiveHeader = z.infer<typeof HeaderSchema>;

const KeyEpochSchema = z.strictObject({
  format: z.literal(KEY_FORMAT),
  version: z.literal(1),
  epoch: z.string().refine(isBackupId, { message: 'not an epoch id' }),
  createdAt: z.iso.datetime({ offset: true }),
  algorithm: z.literal(SEGMENT_ALGORITHM),
  context: z.record(z.string(), z.string()),
  dataKey: z.custom<WrappedKey>((v) => typeof v === 'object' && v !== null && 'provider' in v),
});

/** One archived object as a listing sees it. */
export interface ArchivedObjectInfo {
  /** The name below `<source>/<stream>/`. */
  readonly name: string;
  readonly key: string;
  readonly storedBytes: number;
}

/** What a write stored. */
export interface ArchivedObject extends ArchivedObjectInfo {
  readonly header: ArchiveHeader;
}

export interface ArchiveWriteOptions {
  readonly compression: ZstdOptions;
  readonly attributes?: ArchiveAttributes;
  readonly signal?: AbortSignal;
}

function encodeHeader(header: ArchiveHeader): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  if (json.length > MAX_HEADER_JSON_BYTES) throw new Error(`archive header is ${json.length} bytes; at most ${MAX_HEADER_JSON_BYTES}`);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(json.length);
  return Buffer.concat([MAGIC, length, json]);
}

/** The HKDF binding of an object: its storage key and its header bytes. */
function bindingOf(key: string, header: Buffer): Buffer {
  return createHash('sha256').update(key, 'utf8').update(Buffer.from([0])).update(header).digest();
}

function archiveContext(source: string, epoch: string): EncryptionContext {
  return { tidemark: 'archive', source, epoch };
}

/** Pushes `prefix` before everything else that passes. */
class Prefixed extends Transform {
  bytes = 0;
  constructor(prefix: Buffer) {
    super({ highWaterMark: 1 << 20 });
    this.push(prefix);
    this.bytes = prefix.length;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    done(null, chunk);
  }
}

/** Counts plaintext, holds the last chunk back and releases it only once the size matched. */
class CheckedTail extends Transform {
  private held?: Buffer;
  private bytes = 0;
  constructor(
    private readonly expected: number,
    private readonly label: string,
  ) {
    super({ highWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    const previous = this.held;
    this.held = chunk;
    done(null, previous);
  }

  override _flush(done: TransformCallback): void {
    if (this.bytes !== this.expected) {
      return done(new IntegrityError(`${this.label}: holds ${this.bytes} bytes, its header says ${this.expected}`));
    }
    done(null, this.held);
  }
}

/** `zstd --check` of a file the tool reads itself: the bytes never pass through node. */
function compressedFile(path: string, { level, threads }: ZstdOptions): CompressedOutput {
  const zstd = new ToolRun('zstd', ['-vv', '-c', '--check', `-${level}`, `-T${threads}`, '--', path], ['ignore', 'pipe'], { label: 'zstd' });
  const output = new Readable({
    highWaterMark: 1 << 20,
    read: () => zstd.child.stdout!.resume(),
    destroy: (err, cb) => {
      zstd.kill();
      cb(err);
    },
  });
  forwardOutput(zstd, output);
  return {
    output,
    plainBytes: () => {
      const all = [...zstd.stderr.matchAll(/\(\s*(\d+) B =>/g)];
      if (all.length === 0) throw new Error(`zstd did not report its input size; its last words: ${zstd.stderr.slice(-200)}`);
      return Number(all[all.length - 1][1]);
    },
  };
}

/** A source's archive of one stream kind, for reading; `writer()` opens it for writing. */
export class StreamArchive {
  private readonly dataKeys = new Map<string, Promise<Buffer>>();

  constructor(
    readonly repository: Repository,
    readonly source: string,
    readonly stream: ArchiveStream,
  ) {}

  get store(): ObjectStore {
    return this.repository.store;
  }

  get prefix(): string {
    return archivePrefix(this.source, this.stream);
  }

  /** The storage key of a name; the name must be a valid key path (the store checks it). */
  keyOf(name: string): string {
    if (name === KEYS_FOLDER || name.startsWith(`${KEYS_FOLDER}/`)) throw new Error(`'${name}' is reserved for the archive's key epochs`);
    return `${this.prefix}${name}`;
  }

  private label(name: string): string {
    return `archive object ${this.keyOf(name)}`;
  }

  /** Every archived object (key epochs excluded), in key order. */
  async list(under = ''): Promise<ArchivedObjectInfo[]> {
    const { objects } = await this.store.list(`${this.prefix}${under}`);
    return objects
      .filter((o: StoredObjectInfo) => !o.key.startsWith(archiveKeysPrefix(this.source, this.stream)))
      .map((o) => ({ name: o.key.slice(this.prefix.length), key: o.key, storedBytes: o.size }));
  }

  /** Whether `name` is archived. */
  async has(name: string): Promise<boolean> {
    return (await this.store.head(this.keyOf(name))) !== undefined;
  }

  /**
   * The header of an archived object, read without a key (one ranged read). Not authenticated:
   * good for listings and freshness; `open` authenticates it with the object.
   */
  async readHeader(name: string): Promise<ArchiveHeader> {
    return (await this.headerBytes(name)).header;
  }

  private async headerBytes(name: string): Promise<{ header: ArchiveHeader; bytes: Buffer }> {
    const key = this.keyOf(name);
    const chunks: Buffer[] = [];
    for await (const c of await this.store.get(key, { start: 0, end: FIXED_HEADER_BYTES + MAX_HEADER_JSON_BYTES - 1 })) chunks.push(c as Buffer);
    const head = Buffer.concat(chunks);
    const fail = (why: string) => new IntegrityError(`${this.label(name)}: ${why}`);
    if (head.length < FIXED_HEADER_BYTES || !head.subarray(0, MAGIC.length).equals(MAGIC)) throw fail('not a Tidemark archive object (bad magic)');
    const length = head.readUInt32BE(MAGIC.length);
    if (length > MAX_HEADER_JSON_BYTES || head.length < FIXED_HEADER_BYTES + length) throw fail('header is truncated or implausibly long');
    const bytes = head.subarray(0, FIXED_HEADER_BYTES + length);
    let parsed: unknown;
    try {
      parsed = JSON.parse(bytes.subarray(FIXED_HEADER_BYTES).toString('utf8'));
    } catch {
      throw fail('header is not JSON');
    }
    const result = HeaderSchema.safeParse(parsed);
    if (!result.success) throw fail(`header is invalid (${result.error.issues[0]?.message ?? 'schema'})`);
    return { header: result.data, bytes };
  }

  /** The plaintext data key of an epoch; each epoch's key is unwrapped once per archive. */
  dataKey(epoch: string): Promise<Buffer> {
    let key = this.dataKeys.get(epoch);
    if (!key) {
      key = this.unwrap(epoch);
      key.catch(() => this.dataKeys.delete(epoch));
      this.dataKeys.set(epoch, key);
    }
    return key;
  }

  private async unwrap(epoch: string, keys: KeyProvider = this.repository.keys): Promise<Buffer> {
    const key = `${archiveKeysPrefix(this.source, this.stream)}${epoch}.json`;
    let bytes: Buffer;
    try {
      bytes = await this.store.getBytes(key);
    } catch (e) {
      if (e instanceof StorageError && e.code === 'NoSuchKey') throw new IntegrityError(`archive key epoch ${key} is missing: objects of epoch ${epoch} cannot be read`);
      throw e;
    }
    let parsed: z.infer<typeof KeyEpochSchema>;
    try {
      parsed = KeyEpochSchema.parse(JSON.parse(bytes.toString('utf8')));
    } catch (e) {
      throw new IntegrityError(`archive key epoch ${key} is damaged: ${(e as Error).message.split('\n')[0]}`);
    }
    // Epochs written since repositories have an identity also name it (identity.ts).
    const { [REPOSITORY_CONTEXT_KEY]: bound, ...context } = parsed.context;
    if (parsed.epoch !== epoch || JSON.stringify(context) !== JSON.stringify(archiveContext(this.source, epoch))) {
      throw new IntegrityError(`archive key epoch ${key} belongs to ${parsed.context.source}/${parsed.epoch}, not here`);
    }
    if (bound !== undefined) checkRepositoryBinding(parsed.context, await this.repository.repositoryId(), `archive key epoch ${key}`);
    try {
      return await keys.decryptDataKey(parsed.dataKey, parsed.context);
    } catch (e) {
      if (!(e instanceof EncryptionKeyError) || keys !== this.repository.keys) throw e;
      if (await this.repository.keyOpensMarker()) {
        throw new IntegrityError(
          `archive key epoch ${key}: its data key does not open with ${this.repository.keys.description}, this repository's key: it was copied in from another repository, or it is damaged`,
          { cause: e },
        );
      }
      throw new EncryptionKeyError(`archive of '${this.source}' (epoch ${epoch}): ${e.message}`, { cause: e });
    }
  }

  /**
   * An archived object's plaintext, verified as it streams; it errors (IntegrityError naming the
   * object) on any mismatch and ends only after every check passed. Missing → StorageError NoSuchKey.
   */
  async open(name: string, options: { signal?: AbortSignal } = {}): Promise<{ header: ArchiveHeader; plaintext: Readable }> {
    const key = this.keyOf(name);
    const { header, bytes } = await this.headerBytes(name);
    const dataKey = await this.dataKey(header.epoch);
    throwIfAborted(options.signal);
    const body = await this.store.get(key, { start: bytes.length });
    const label = this.label(name);
    const tail = new CheckedTail(header.plainBytes, label);
    const decompress = zstdDecompress(`zstd (${label})`);
    pipelineCallback([body, new DecryptStream(dataKey, label, bindingOf(key, bytes)), decompress, tail], () => undefined);
    tail.once('close', destroyOnAbort(tail, options.signal));
    return { header, plaintext: tail };
  }

  /**
   * Writes an archived object's plaintext to `path` atomically (a temp file beside it, fsynced,
   * then renamed): `path` either appears whole and verified, or not at all.
   */
  async readToFile(name: string, path: string, options: { signal?: AbortSignal; mode?: number } = {}): Promise<ArchiveHeader> {
    const { header, plaintext } = await this.open(name, options);
    const temp = join(dirname(path), `.${basename(path)}.tidemark-${randomBytes(4).toString('hex')}`);
    const handle = await open(temp, 'wx', options.mode ?? 0o600);
    try {
      // Written through the handle itself: a FileHandle write stream without autoClose keeps
      // close() waiting forever on Node 20.
      await writeToHandle(plaintext, handle);
      await handle.sync();
      await handle.close();
      await rename(temp, path);
      return header;
    } catch (e) {
      plaintext.destroy();
      await handle.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
      throw e;
    }
  }

  /**
   * Reads every object back through `open` (all checks), PARALLEL_VERIFY at a time: what verify
   * does for an archive. A damaged object is a problem, not an error; an abort or a storage failure
   * that is not ours to judge ends it.
   */
  async verifyObjects(
    objects: readonly ArchivedObjectInfo[],
    { what, progress, signal }: { what: string; progress: Progress; signal?: AbortSignal },
  ): Promise<{ verified: number; storedBytes: number; problems: string[] }> {
    const limit = pLimit(PARALLEL_VERIFY);
    const problems: string[] = [];
    let verified = 0;
    let storedBytes = 0;
    progress.start(`verify ${what}`, objects.reduce((n, o) => n + o.storedBytes, 0));
    try {
      await Promise.all(
        objects.map((o) =>
          limit(async () => {
            if (signal?.aborted) return;
            try {
              const { plaintext } = await this.open(o.name, { signal });
              await pipeline(plaintext, new Writable({ write: (_c, _e, done) => done() }));
              verified++;
              storedBytes += o.storedBytes;
            } catch (e) {
              if (!(e instanceof TidemarkError) || signal?.aborted) throw e;
              problems.push(e.message);
            } finally {
              progress.advance(o.storedBytes);
            }
          }),
        ),
      );
    } finally {
      progress.stop();
    }
    return { verified, storedBytes, problems };
  }

  /** SHA-256 of an archived object's verified plaintext. */
  async plaintextSha256(name: string): Promise<string> {
    const { plaintext } = await this.open(name);
    const hash = createHash('sha256');
    for await (const c of plaintext) hash.update(c as Buffer);
    return hash.digest('hex');
  }

  /**
   * A writer for new objects. `epoch: 'new'` (a streamer run) wraps a fresh data key;
   * `'newest'` (wal-push, one process per file) reuses the newest epoch's key — one unwrap —
   * and creates one only when there is none. Checks the repository key first, so a wrong key
   * never writes objects nobody can read.
   */
  async writer(options: { epoch: 'new' | 'newest' }): Promise<ArchiveWriter> {
    if (options.epoch === 'newest') {
      const epochs = await this.epochs();
      const newest = epochs[epochs.length - 1];
      // Unwrapping the epoch's key proves the configured key is the right one: one KMS call in all.
      // After a rotation the newest epoch may be a previous key's: then a new epoch begins, so new
      // objects never need a key that was rotated out.
      const current = currentKey(this.repository.keys);
      if (newest !== undefined && current === this.repository.keys) return new ArchiveWriter(this, newest, await this.dataKey(newest));
      if (newest !== undefined) {
        const dataKey = await this.unwrap(newest, current).catch((e: unknown) => {
          if (e instanceof EncryptionKeyError) return undefined;
          throw e;
        });
        if (dataKey) return new ArchiveWriter(this, newest, dataKey);
      }
    }
    const keyCheck = await this.repository.prepareKeyCheck();
    await keyCheck.confirm();
    const epoch = newBackupId();
    const context = await this.repository.boundContext(archiveContext(this.source, epoch));
    const { plaintext, wrapped } = await this.repository.keys.generateDataKey(context);
    const body = { format: KEY_FORMAT, version: 1, epoch, createdAt: new Date().toISOString(), algorithm: SEGMENT_ALGORITHM, context, dataKey: wrapped };
    await this.store.put(`${archiveKeysPrefix(this.source, this.stream)}${epoch}.json`, Buffer.from(`${JSON.stringify(body, null, 2)}\n`));
    this.dataKeys.set(epoch, Promise.resolve(plaintext));
    return new ArchiveWriter(this, epoch, plaintext);
  }

  /** Key epochs, oldest first (ids sort by time). */
  async epochs(): Promise<string[]> {
    const prefix = archiveKeysPrefix(this.source, this.stream);
    const { objects } = await this.store.list(prefix);
    return objects
      .map((o) => o.key.slice(prefix.length).replace(/\.json$/, ''))
      .filter(isBackupId)
      .sort();
  }
}

/** Writes new objects of one key epoch. Objects are never overwritten: the store refuses (ObjectExists). */
export class ArchiveWriter {
  constructor(
    readonly archive: StreamArchive,
    readonly epoch: string,
    private readonly dataKey: Buffer,
  ) {}

  /**
   * Archives a file that no longer changes (a completed WAL segment, a closed binlog): zstd reads
   * it directly and node only encrypts and uploads (the lean data plane).
   */
  async writeFile(name: string, path: string, options: ArchiveWriteOptions): Promise<ArchivedObject> {
    const { size } = await stat(path);
    const compressed = compressedFile(path, options.compression);
    const written = await this.write(name, compressed.output, size, options);
    if (compressed.plainBytes() !== size) {
      throw new IntegrityError(`${path} changed while it was archived as ${written.key} (${size} bytes before, ${compressed.plainBytes()} read)`);
    }
    return written;
  }

  /** Archives bytes node already holds (a snapshot of a segment still being written). */
  writeBytes(name: string, bytes: Buffer, options: ArchiveWriteOptions): Promise<ArchivedObject> {
    const { level, threads } = options.compression;
    const zstd = toolFilter('zstd', ['-q', '-c', '--check', `-${level}`, `-T${threads}`], { label: 'zstd' });
    zstd.end(bytes);
    return this.write(name, zstd, bytes.length, options);
  }

  private async write(name: string, compressed: Readable, plainBytes: number, options: ArchiveWriteOptions): Promise<ArchivedObject> {
    const { signal } = options;
    if (signal?.aborted) {
      compressed.destroy();
      throwIfAborted(signal);
    }
    const key = this.archive.keyOf(name);
    const header: ArchiveHeader = { epoch: this.epoch, compression: 'zstd', plainBytes, ...(options.attributes ? { attributes: { ...options.attributes } } : {}) };
    const headerBytes = encodeHeader(header);
    const out = new Prefixed(headerBytes);
    const abort = new AbortController();
    const onOuterAbort = () => abort.abort(signal?.reason);
    signal?.addEventListener('abort', onOuterAbort, { once: true });
    // Whichever side fails stops the other: a store that refuses before reading (the object exists)
    // must not leave the compressor waiting on a full pipe.
    const stopOnFailure = (e: unknown) => {
      abort.abort();
      throw e;
    };
    const flow = pipeline([compressed, new EncryptStream(this.dataKey, DEFAULT_SEGMENT_LOG2, bindingOf(key, headerBytes)), out], { signal: abort.signal }).catch(stopOnFailure);
    const upload = this.archive.store.put(key, out, { signal: abort.signal }).catch(stopOnFailure);
    const results = await Promise.allSettled([flow, upload]);
    signal?.removeEventListener('abort', onOuterAbort);
    const errors = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason);
    if (errors.length > 0) {
      abort.abort();
      compressed.destroy();
      throw firstCause(errors);
    }
    return { name, key, storedBytes: out.bytes, header };
  }
}
