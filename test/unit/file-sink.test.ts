import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { writeToHandle } from '../../lib/core/pipeline/file-sink';

/* lib/core/pipeline/file-sink.ts: everything a stream delivers reaches the file, in order, empty chunks and all. */

test('writes every chunk in order, skipping empty ones an object-mode source passes, and counts the bytes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-file-sink-'));
  try {
    const chunks = [Buffer.alloc(0), Buffer.from('tide'), Buffer.alloc(0), Buffer.alloc(200_000, 7), Buffer.from('mark')];
    const handle = await open(join(dir, 'out'), 'w');
    const bytes = await writeToHandle(Readable.from(chunks), handle);
    await handle.close();
    expect(bytes).toBe(200_008);
    expect(readFileSync(join(dir, 'out')).equals(Buffer.concat(chunks))).toBe(true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a source's error is what the caller gets", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-file-sink-'));
  try {
    const handle = await open(join(dir, 'out'), 'w');
    const failing = new Readable({ read() { this.destroy(new Error('the producer failed')); } });
    await expect(writeToHandle(failing, handle)).rejects.toThrow('the producer failed');
    await handle.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
