import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { compressedOutput, zstdInputBytes } from '../../lib/core/pipeline/compressed-output';
import { ToolFailed } from '../../lib/core/errors';

/**
 * The lean data plane: a producer writes into zstd through a kernel pipe and node reads only what
 * zstd writes. These tests run real processes.
 */

const ZSTD = { level: 1, threads: 0 };

/**
 * Bytes this process's own threads have read through read(2) and friends (Linux). Per thread,
 * because /proc/self/io also adds in what reaped children read.
 */
const bytesReadByNode = (): number =>
  readdirSync('/proc/self/task').reduce((n, t) => n + Number(/^rchar:\s*(\d+)/m.exec(readFileSync(`/proc/self/task/${t}/io`, 'utf8'))![1]), 0);

async function drain(stream: Readable): Promise<number> {
  let n = 0;
  for await (const chunk of stream) n += (chunk as Buffer).length;
  return n;
}

const sh = (script: string) => ({ command: '/bin/sh', args: ['-c', script], options: { label: 'producer' } });

describe('compressedOutput: producer | zstd, with node outside the pipe', () => {
  it('node reads only the compressed bytes, and learns the exact plaintext size from zstd', async () => {
    const plain = 64 * 1024 * 1024 + 7;
    // Text that compresses well but not to nothing (a counter, like table rows).
    const out = compressedOutput(sh(`seq 1 100000000 | head -c ${plain}`), ZSTD);
    const before = bytesReadByNode();
    const compressed = await drain(out.output);
    const read = bytesReadByNode() - before;
    expect(out.plainBytes()).toBe(plain);
    expect(compressed).toBeLessThan(plain / 4);
    // What node read: zstd's output and a little stderr — nowhere near the 64 MiB that passed by.
    expect(read).toBeLessThan(compressed + 1024 * 1024);
  });

  it('a producer that dies mid-stream fails the output, although zstd closed a valid frame', async () => {
    const out = compressedOutput(sh('head -c 3000000 /dev/urandom; echo "pg_dump: error: connection lost" >&2; exit 3'), ZSTD);
    const error = await drain(out.output).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ToolFailed);
    expect((error as Error).message).toBe('producer failed (exit code 3): pg_dump: error: connection lost');
  });

  it('when zstd fails, its failure is reported, not the SIGPIPE it caused the producer', async () => {
    const out = compressedOutput(sh('yes tidemark'), { level: 1, threads: -5 });
    const error = await drain(out.output).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ToolFailed);
    expect((error as Error).message).toMatch(/^zstd failed \(exit code \d+\)/);
  });

  it('destroying the output kills both tools', async () => {
    const marker = `tidemark-destroy-${randomUUID()}`;
    const out = compressedOutput(sh(`exec yes ${marker}`), ZSTD);
    await new Promise((resolve) => out.output.once('data', resolve));
    const closed = new Promise((resolve) => out.output.once('close', resolve));
    out.output.destroy();
    await closed;
    await new Promise((resolve) => setTimeout(resolve, 300));
    const running = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(marker));
    expect(running).toEqual([]);
  });

  it('reports progress from the kernel’s count of what zstd has read', async () => {
    let seen = 0;
    const out = compressedOutput(sh('seq 1 20000000 | head -c 100000000; sleep 0.6'), ZSTD, (n) => (seen += n));
    await drain(out.output);
    expect(seen).toBeGreaterThan(50_000_000);
    expect(seen).toBeLessThanOrEqual(100_000_000 + 1024 * 1024);
  });
});

describe('zstdInputBytes', () => {
  it('reads the exact size from zstd -vv, and nothing from other output', () => {
    expect(zstdInputBytes('Note: 2 physical core(s) detected \n/*stdin*\\            :  0.00%   (12345678 B =>    434 B, /*stdout*\\) \n')).toBe(12345678);
    expect(zstdInputBytes('/*stdin*\\ :100.00%   (   118 MiB =>    118 MiB, /*stdout*\\)')).toBeUndefined();
  });
});
