import { type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TidemarkError } from '../errors';
import { EncryptStream } from '../crypto/segmented-aead';
import type { ObjectStore } from '../repository/storage';
import { DigestStream } from './digest';
import type { StoredObject } from './stored-object';
import { zstdCompress, type ZstdOptions } from './zstd';

export interface WriteObjectOptions {
  readonly dataKey: Buffer;
  /** false stores the bytes uncompressed (already-compressed input). */
  readonly compression: ZstdOptions | false;
  /** Called with every chunk's size as the producer delivers it (progress). */
  readonly onPlainBytes?: (n: number) => void;
  readonly signal?: AbortSignal;
}

/** The error worth showing: a tool's or the store's own failure rather than the abort it caused. */
export function firstCause(errors: unknown[]): unknown {
  return errors.find((e) => e instanceof TidemarkError) ?? errors.find((e) => (e as Error)?.name !== 'AbortError') ?? errors[0];
}

/**
 * Streams `input` → SHA-256 → zstd → chunked AES-256-GCM → SHA-256 → storage, with memory bounded
 * by the stream buffers whatever the size. If any stage fails, every stage is torn down, tools are
 * killed, the upload is aborted and nothing appears under `key`.
 */
export async function writeObject(
  store: ObjectStore,
  key: string,
  name: string,
  input: Readable,
  options: WriteObjectOptions,
): Promise<StoredObject> {
  // An abort that came before we started (SIGTERM during connect) must not let a backup run to commit.
  if (options.signal?.aborted) {
    input.destroy();
    throw options.signal.reason ?? new Error('aborted');
  }
  const plain = new DigestStream(options.onPlainBytes);
  const stored = new DigestStream();
  const abort = new AbortController();
  const onOuterAbort = () => abort.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onOuterAbort, { once: true });

  const stages = [
    input,
    plain,
    ...(options.compression ? [zstdCompress(options.compression)] : []),
    new EncryptStream(options.dataKey),
    stored,
  ] as const;
  const flow = pipeline(stages as unknown as [Readable, ...NodeJS.ReadWriteStream[]], { signal: abort.signal });
  const upload = store.put(key, stored, { signal: abort.signal });
  const results = await Promise.allSettled([flow, upload]);
  options.signal?.removeEventListener('abort', onOuterAbort);
  const errors = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason);
  if (errors.length > 0) {
    abort.abort();
    input.destroy();
    throw firstCause(errors);
  }
  return {
    name,
    key,
    compression: options.compression ? 'zstd' : 'none',
    plainBytes: plain.bytes,
    plainSha256: plain.sha256,
    storedBytes: stored.bytes,
    storedSha256: stored.sha256,
  };
}
