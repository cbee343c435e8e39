import type { FileHandle } from 'node:fs/promises';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * Writes everything `source` delivers to `handle` at the handle's position and resolves to the
 * byte count. What arrives while a write runs goes out in one writev. (Reading a stream by async
 * iteration calls read(), which copies everything buffered into one new buffer: for WAL pushed and
 * fetched through a folder that copy, and the page faults of its fresh memory, cost more CPU than
 * the AES-GCM.) `wrap` runs each write (error mapping); the source's errors pass through unchanged.
 */
export async function writeToHandle(source: Readable, handle: FileHandle, wrap: (write: () => Promise<void>) => Promise<void> = (w) => w()): Promise<number> {
  let bytes = 0;
  const writeAll = async (buffers: Buffer[]): Promise<void> => {
    let rest = buffers.filter((b) => b.length > 0); // an object-mode source may pass an empty chunk
    while (rest.length > 0) {
      let { bytesWritten } = await handle.writev(rest);
      if (bytesWritten === 0) throw new Error('writev wrote nothing');
      bytes += bytesWritten;
      while (rest.length > 0 && bytesWritten >= rest[0].length) bytesWritten -= rest.shift()!.length;
      if (bytesWritten > 0) rest = [rest[0].subarray(bytesWritten), ...rest.slice(1)];
    }
  };
  const toBuffer = (chunk: unknown): Buffer => (Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  const sink = new Writable({
    highWaterMark: 1 << 20,
    write: (chunk, _encoding, done) => void wrap(() => writeAll([toBuffer(chunk)])).then(() => done(), done),
    writev: (chunks, done) => void wrap(() => writeAll(chunks.map((c) => toBuffer(c.chunk)))).then(() => done(), done),
  });
  await pipeline(source, sink);
  return bytes;
}
