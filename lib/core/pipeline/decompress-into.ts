import { pipeline } from 'node:stream/promises';
import { abortReason } from '../abort';
import { DecryptStream } from '../crypto/segmented-aead';
import { IntegrityError } from '../errors';
import { pipeToTool, ToolRun } from '../process/tool';
import type { ObjectStore } from '../repository/storage';
import type { ToolCommand } from './compressed-output';
import { DigestStream } from './digest';
import { readObject, storedMismatch, type ReadObjectOptions } from './read-object';
import type { StoredObject } from './stored-object';

/**
 * The restore half of the lean data plane: storage → node (decrypt, check) → zstd -d → consumer
 * (pg_restore, mariadb), with a kernel pipe between zstd and the consumer, so node handles only the
 * compressed bytes, as on backup.
 *
 * The end-of-input gate. zstd checks a frame's content checksum after writing the frame's last
 * block, so the consumer may already hold every byte when zstd finds them wrong; if it then saw
 * end-of-input it could commit (pg_restore --single-transaction does, at EOF). It cannot: node keeps
 * its own handle on the consumer's stdin open, and a pipe reports EOF only once every writer has
 * closed it. Node closes its handle after zstd exited 0 (frame checksum and size verified) and the
 * stored bytes matched the manifest (SHA-256; the GCM tags were checked segment by segment); on any
 * failure it kills the consumer with SIGKILL while it still waits for input, so it commits nothing.
 */
export interface ConsumerOptions {
  readonly onStoredBytes?: (n: number) => void;
  readonly signal?: AbortSignal;
}

/** `zstd -d -vv` ends with "/*stdin*\ : 4052632 bytes": the size it wrote. */
export function zstdOutputBytes(stderr: string): number | undefined {
  const all = [...stderr.matchAll(/:\s*(\d+) bytes\s*$/gm)];
  return all.length > 0 ? Number(all[all.length - 1][1]) : undefined;
}

export async function decompressInto(
  store: ObjectStore,
  object: StoredObject,
  read: Omit<ReadObjectOptions, 'onStoredBytes'>,
  consumer: ToolCommand,
  { onStoredBytes, signal }: ConsumerOptions = {},
): Promise<void> {
  if (object.compression !== 'zstd') {
    // Stored as is: node sees the plaintext anyway, and readObject holds back its last chunk.
    const input = await readObject(store, object, { ...read, onStoredBytes });
    return pipeToTool(input, consumer.command, consumer.args, { ...consumer.options, signal });
  }
  if (signal?.aborted) throw abortReason(signal);
  const source = await store.get(object.key);
  const sink = new ToolRun(consumer.command, consumer.args, ['pipe', 'ignore'], consumer.options ?? {});
  const gate = sink.child.stdin!; // node's handle: the consumer sees EOF only once this closes
  gate.on('error', () => undefined); // the consumer's exit status tells what happened
  const zstd = new ToolRun('zstd', ['-d', '-c', '-vv'], ['pipe', gate], { label: 'zstd' });
  zstd.child.stdin!.on('error', () => undefined); // EPIPE when zstd died: its exit status says why

  const stored = new DigestStream(onStoredBytes);
  const feeding = new AbortController();
  const onAbort = () => feeding.abort(abortReason(signal!));
  signal?.addEventListener('abort', onAbort, { once: true });
  // A consumer that is done early (pg_restore -t has its table) or dead needs no more input.
  void sink.exited.then(() => feeding.abort());

  let failure: unknown;
  try {
    await pipeline([source, stored, new DecryptStream(read.dataKey, read.label), zstd.child.stdin!], { signal: feeding.signal }).catch((e: unknown) => {
      if (!feeding.signal.aborted || signal?.aborted) throw e;
    });
    if (sink.running) {
      const mismatch = storedMismatch(stored, object, read.label);
      if (mismatch) throw mismatch;
      const zstdCode = await zstd.exited;
      // zstd fails to write only once the consumer closed its input: done early (pg_restore -t has
      // its table) or dead. Its own exit status decides, below.
      const consumerLeft = zstdCode !== 0 && (zstd.child.signalCode === 'SIGPIPE' || /write error/i.test(zstd.stderr));
      if (zstdCode !== 0 && !consumerLeft) throw zstd.failure();
      const written = zstdOutputBytes(zstd.stderr);
      if (!consumerLeft && written !== object.plainBytes) {
        throw new IntegrityError(`${read.label}: restored ${written ?? 'an unknown number of'} bytes, the manifest says ${object.plainBytes}`);
      }
    }
  } catch (e) {
    failure = signal?.aborted ? abortReason(signal) : e;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }

  if (failure !== undefined) {
    // Killed before it can see end-of-input, it commits nothing; only then does our handle close.
    if (sink.running) sink.child.kill('SIGKILL');
    zstd.kill();
    source.destroy();
    await sink.exited;
    gate.destroy();
    throw failure;
  }
  gate.end();
  const code = await sink.exited;
  if (!zstd.running) await zstd.exited;
  else zstd.kill(); // the consumer finished early and needs nothing more
  if (code !== 0) throw sink.failure();
}
