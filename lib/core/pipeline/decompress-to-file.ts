import type { FileHandle } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { abortReason, sleep } from '../abort';
import { DecryptStream } from '../crypto/segmented-aead';
import { IntegrityError, TidemarkError } from '../errors';
import { ToolRun } from '../process/tool';
import type { ObjectStore } from '../repository/storage';
import type { ConsumerOptions } from './decompress-into';
import { DigestStream } from './digest';
import { readObject, storedMismatch, type ReadObjectOptions } from './read-object';
import type { StoredObject } from './stored-object';

/** Where an object's plaintext goes: `file`, through `zstd` when one was started ahead for it (startZstdIntoFile). */
export interface FileOutput {
  readonly file: FileHandle;
  readonly zstd?: ToolRun;
}

/**
 * Starts zstd -d writing into `file` now, for a caller that will decompress many objects one after
 * the other (a restore's packs): started together before the data flows, node's fork of each costs
 * little (spares.ts says why). Kill `zstd` if it is not used.
 */
export function startZstdIntoFile(file: FileHandle): ToolRun {
  const zstd = new ToolRun('zstd', ['-d', '-c', '-q'], ['pipe', file.fd], { label: 'zstd' });
  zstd.child.stdin!.on('error', () => undefined); // EPIPE when zstd died: its exit status says why
  return zstd;
}

/**
 * One object's plaintext into a file that node holds open, for a reader that wants it by offset: a
 * physical restore picks a pack's blocks out of it. zstd -d writes the file itself, so node handles
 * only the compressed bytes, as in decompressInto: reading the plaintext off zstd's pipe cost node
 * a fresh buffer per 64 KiB (every page of it faulted in), a copy and a stream hop, and was most of
 * a restore's CPU.
 *
 * Resolves only once every check has passed — the GCM tags, the stored size and SHA-256, zstd's
 * content checksum (its exit status) and the plaintext size — so a caller that waits for it uses
 * nothing of an object that is not whole and authentic.
 */
export async function decompressToFile(
  store: ObjectStore,
  object: StoredObject,
  read: Omit<ReadObjectOptions, 'onStoredBytes'>,
  { file, zstd: started }: FileOutput,
  { onStoredBytes, signal }: ConsumerOptions = {},
): Promise<void> {
  if (signal?.aborted || object.compression !== 'zstd') started?.kill();
  if (signal?.aborted) throw abortReason(signal);
  if (object.compression !== 'zstd') {
    // Stored as is: node sees the plaintext anyway, and readObject ends only once it is proven.
    let at = 0;
    for await (const chunk of await readObject(store, object, { ...read, onStoredBytes })) {
      const bytes = chunk as Buffer;
      for (let done = 0; done < bytes.length; ) done += (await file.write(bytes, done, bytes.length - done, at + done)).bytesWritten;
      at += bytes.length;
    }
    return;
  }
  const zstd = started ?? startZstdIntoFile(file);
  const source = await store.get(object.key).catch((e: unknown) => {
    zstd.kill();
    throw e;
  });
  const stored = new DigestStream(onStoredBytes);
  try {
    await pipeline([source, stored, new DecryptStream(read.dataKey, read.label), zstd.child.stdin!], ...(signal ? [{ signal }] : []));
  } catch (e) {
    source.destroy();
    if (signal?.aborted) {
      zstd.kill();
      throw abortReason(signal);
    }
    if (e instanceof TidemarkError) {
      zstd.kill(); // a damaged segment or a failed download: zstd must not finish the file
      throw e;
    }
    // The pipe broke because zstd died (a damaged frame, a full disk): its own words say why. The
    // symptom on our side varies (EPIPE, a premature close), so any break with zstd gone counts.
    const gone = await Promise.race([zstd.exited, sleep(250).then(() => 'running' as const)]);
    if (gone !== 'running' && gone !== 0) throw zstd.failure();
    zstd.kill();
    throw e;
  }
  const mismatch = storedMismatch(stored, object, read.label);
  if (mismatch) {
    zstd.kill();
    throw mismatch;
  }
  if ((await zstd.exited) !== 0) throw zstd.failure();
  const { size } = await file.stat();
  if (size !== object.plainBytes) throw new IntegrityError(`${read.label}: restored ${size} bytes, the manifest says ${object.plainBytes}`);
}
