import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { IN_PROCESS_ZSTD, zstdCompress, zstdDecompress } from '../../lib/core/pipeline/zstd';

/*
 * Both compressors (zlib's zstd in node where it has one, Node ≥ 22.15; the zstd CLI otherwise)
 * write frames the zstd CLI reads back, with the content checksum a restore relies on: a pack's
 * blocks have no other plaintext hash than their SHA-256 in the index. On Node 20 `inProcess`
 * falls back to the CLI; `npm run test:node22` runs the in-process one.
 */

const run = promisify(execFile);
const LEVEL = { level: 1, threads: 1 };

async function compress(data: Buffer, inProcess: boolean): Promise<Buffer> {
  const out: Buffer[] = [];
  // Written in pieces, as a pack is, so a frame spans many writes.
  const pieces = Array.from({ length: Math.ceil(data.length / 40_000) }, (_, i) => data.subarray(i * 40_000, (i + 1) * 40_000));
  await pipeline(Readable.from(pieces), zstdCompress(LEVEL, { inProcess }), async function* (source) {
    for await (const chunk of source) out.push(chunk as Buffer);
  });
  return Buffer.concat(out);
}

const sample = Buffer.concat(Array.from({ length: 2000 }, (_, i) => Buffer.from(`row ${i} ${'x'.repeat(i % 300)} ${Math.sin(i)}\n`)));

test.each([
  ['the zstd CLI', false],
  [IN_PROCESS_ZSTD ? "zlib's zstd (in process)" : 'in process asked, the CLI on this node', true],
])('%s writes checksummed frames that zstd -d reads back and a flipped checksum fails', async (_name, inProcess) => {
  const frame = await compress(sample, inProcess);
  expect(frame.readUInt32LE(0)).toBe(0xfd2fb528);
  // Frame_Header_Descriptor, bit 2: Content_Checksum_flag.
  expect(frame[4] & 0b100).toBe(0b100);

  const out: Buffer[] = [];
  await pipeline(Readable.from([frame]), zstdDecompress(), async function* (source) {
    for await (const chunk of source) out.push(chunk as Buffer);
  });
  expect(Buffer.concat(out).equals(sample)).toBe(true);

  const dir = mkdtempSync(join(tmpdir(), 'tidemark-zstd-'));
  try {
    const damaged = Buffer.from(frame);
    damaged[damaged.length - 1] ^= 0xff; // the last byte of the XXH64 content checksum
    writeFileSync(join(dir, 'damaged.zst'), damaged);
    await expect(run('zstd', ['-q', '-t', join(dir, 'damaged.zst')])).rejects.toThrow(/checksum/i);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
