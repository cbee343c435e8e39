import { createHash, type Hash } from 'node:crypto';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { DecryptStream } from '../crypto/segmented-aead';
import { IntegrityError } from '../errors';
import type { ObjectStore } from '../repository/storage';
import { DigestStream } from './digest';
import type { StoredObject } from './stored-object';
import { zstdDecompress } from './zstd';

/**
 * Holds back the last chunk of plaintext until every check has passed, so a reader cannot see
 * end-of-input unless the whole object is authentic. For readers in node (verify, small objects
 * such as globals.sql, uncompressed objects); a tool that restores from an object gets it through
 * decompress-into.ts instead, where zstd writes into the tool directly and node gates its EOF.
 */
class VerifiedTail extends Transform {
  private held?: Buffer;
  /** Only for objects whose plaintext SHA-256 was recorded (format 1, uncompressed objects). */
  private readonly plainHash?: Hash;
  private plainBytes = 0;

  constructor(
    private readonly object: StoredObject,
    private readonly stored: DigestStream,
    private readonly label: string,
  ) {
    super({ highWaterMark: 1 << 20 });
    if (object.plainSha256 !== undefined) this.plainHash = createHash('sha256');
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.plainHash?.update(chunk);
    this.plainBytes += chunk.length;
    const previous = this.held;
    this.held = chunk;
    done(null, previous);
  }

  /**
   * Whatever failed upstream reaches the reader here (pipeline destroys every stage with it); zlib's
   * zstd fails with its own codes, said here as damage to this object, as zstd -d's exit is.
   */
  override _destroy(error: Error | null, done: (error: Error | null) => void): void {
    done(isZstdDataError(error) ? new IntegrityError(`${this.label}: its compressed data is damaged (zstd: ${error.message})`, { cause: error }) : error);
  }

  override _flush(done: TransformCallback): void {
    const { object, stored } = this;
    const mismatch = storedMismatch(stored, object, this.label);
    if (mismatch) return done(mismatch);
    // Without a recorded plaintext SHA-256, zstd has checked its frame checksum (zstd -d exits
    // non-zero on a mismatch, zlib's errors: either fails the pipeline before this flush); the size
    // is checked either way (zlib ends a truncated frame without an error).
    const digest = this.plainHash?.digest('hex');
    if (this.plainBytes !== object.plainBytes || (digest !== undefined && digest !== object.plainSha256)) {
      return done(new IntegrityError(`${this.label}: restored bytes do not match the manifest checksum`));
    }
    done(null, this.held);
  }
}

export interface ReadObjectOptions {
  readonly dataKey: Buffer;
  /** Names the object in errors, e.g. "backup 2026… object dump". */
  readonly label: string;
  /** Called with the size of every stored chunk read (progress). */
  readonly onStoredBytes?: (n: number) => void;
  /**
   * Decompress in node (zlib's zstd, where IN_PROCESS_ZSTD) instead of through a zstd process: no
   * pipe to copy through both ways. Its failures reach the reader as IntegrityErrors naming the
   * object; a truncated frame is not one of them (zlib ends it quietly): the size check at the end
   * catches that.
   */
  readonly inProcessZstd?: boolean;
}

/** A failure of zlib's zstd (damaged compressed data), as opposed to anything else a read can meet. */
const isZstdDataError = (e: unknown): e is Error => typeof (e as { code?: unknown })?.code === 'string' && (e as { code: string }).code.startsWith('ZSTD_error');

/**
 * Opens an object as a plaintext stream that errors on any mismatch — a failed GCM tag, a
 * truncated object, a wrong size or checksum — and only ends once all of them have been checked.
 */
export async function readObject(store: ObjectStore, object: StoredObject, options: ReadObjectOptions): Promise<Readable> {
  const source = await store.get(object.key);
  const stored = new DigestStream(options.onStoredBytes);
  const tail = new VerifiedTail(object, stored, options.label);
  const stages: NodeJS.ReadWriteStream[] = [stored, new DecryptStream(options.dataKey, options.label)];
  if (object.compression === 'zstd') {
    stages.push(zstdDecompress('zstd', { inProcess: options.inProcessZstd }));
  }
  pipeline([source, ...stages, tail], () => undefined); // errors surface on `tail`
  return tail;
}

/** The error for stored bytes (counted and hashed by `stored`) that are not the object the manifest records, if they are not. */
export function storedMismatch(stored: DigestStream, object: StoredObject, label: string): IntegrityError | undefined {
  if (stored.bytes === object.storedBytes && stored.sha256 === object.storedSha256) return undefined;
  return new IntegrityError(
    `${label}: stored bytes do not match the manifest (${stored.bytes} bytes, sha256 ${stored.sha256.slice(0, 12)}…; expected ${object.storedBytes} bytes, ${object.storedSha256.slice(0, 12)}…)`,
  );
}
