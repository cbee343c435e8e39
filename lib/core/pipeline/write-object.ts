import { type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { throwIfAborted } from '../abort';
import { EncryptStream } from '../crypto/segmented-aead';
import { TidemarkError } from '../errors';
import type { ObjectStore } from '../repository/storage';
import type { CompressedOutput } from './compressed-output';
import { DigestStream } from './digest';
import type { StoredObject } from './stored-object';
import { zstdCompress, type ZstdOptions } from './zstd';

export interface WriteObjectOptions {
  readonly dataKey: Buffer;
  /** false stores the bytes uncompressed (already-compressed input). */
  readonly compression: ZstdOptions | false;
  /** Called with plaintext byte counts as the producer delivers them (progress). */
  readonly onPlainBytes?: (n: number) => void;
  /**
   * false skips the plaintext SHA-256 (writeObject): for block packs, whose every block carries its
   * own SHA-256 in the block index and whose zstd frame checksum covers the rest. @default true
   */
  readonly plainSha256?: boolean;
  /** Compress in node where it can (zstdCompress's `inProcess`). @default false */
  readonly inProcessZstd?: boolean;
  readonly signal?: AbortSignal;
}

/** The error worth showing: a tool's or the store's own failure rather than the abort it caused. */
export function firstCause(errors: unknown[]): unknown {
  return errors.find((e) => e instanceof TidemarkError) ?? errors.find((e) => (e as Error)?.name !== 'AbortError') ?? errors[0];
}

/**
 * `input` (compressed already, or plaintext with its digest in `stages`) → chunked AES-256-GCM →
 * SHA-256 → storage, with memory bounded by the stream buffers whatever the size. If any stage
 * fails, every stage is torn down, tools are killed, the upload is aborted and nothing appears
 * under `key`.
 */
async function encryptAndStore(
  store: ObjectStore,
  key: string,
  input: Readable,
  stages: readonly NodeJS.ReadWriteStream[],
  options: WriteObjectOptions,
): Promise<{ storedBytes: number; storedSha256: string }> {
  // An abort that came before we started (SIGTERM during connect) must not let a backup run to commit.
  if (options.signal?.aborted) {
    input.destroy();
    throwIfAborted(options.signal);
  }
  const stored = new DigestStream();
  const abort = new AbortController();
  const onOuterAbort = () => abort.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const all = [input, ...stages, new EncryptStream(options.dataKey), stored];
  const flow = pipeline(all as unknown as [Readable, ...NodeJS.ReadWriteStream[]], { signal: abort.signal });
  const upload = store.put(key, stored, { signal: abort.signal });
  const results = await Promise.allSettled([flow, upload]);
  options.signal?.removeEventListener('abort', onOuterAbort);
  const errors = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason);
  if (errors.length > 0) {
    abort.abort();
    input.destroy();
    throw firstCause(errors);
  }
  return { storedBytes: stored.bytes, storedSha256: stored.sha256 };
}

/**
 * Stores what a Readable delivers; node sees the plaintext, so its SHA-256 is recorded. For bytes
 * node produces or must look at anyway (small scripts, block packs); dump tools use writeToolOutput.
 */
export async function writeObject(store: ObjectStore, key: string, name: string, input: Readable, options: WriteObjectOptions): Promise<StoredObject> {
  // Without compression nothing else would prove the plaintext: then it is always hashed.
  const hashing = options.plainSha256 !== false || !options.compression;
  const plain = new DigestStream(options.onPlainBytes, hashing);
  const stages = [plain, ...(options.compression ? [zstdCompress(options.compression, { inProcess: options.inProcessZstd })] : [])];
  const stored = await encryptAndStore(store, key, input, stages, options);
  return {
    name,
    key,
    compression: options.compression ? 'zstd' : 'none',
    plainBytes: plain.bytes,
    ...(hashing ? { plainSha256: plain.sha256 } : {}),
    ...stored,
  };
}

/**
 * Stores a tool's output through the lean data plane: the tool writes into zstd by file
 * descriptor and node handles only the compressed stream (compressed-output.ts). The tools may
 * have been started early (their output waits in the pipe); on failure they are killed.
 */
export async function writeCompressedOutput(store: ObjectStore, key: string, name: string, compressed: CompressedOutput, options: WriteObjectOptions): Promise<StoredObject> {
  const stored = await encryptAndStore(store, key, compressed.output, [], options);
  return { name, key, compression: 'zstd', plainBytes: compressed.plainBytes(), ...stored };
}
