import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { forwardOutput, ToolRun, type ToolOptions } from '../process/tool';
import type { ZstdOptions } from './zstd';

/**
 * The lean data plane (DESIGN.md §3): `producer | zstd` with the pipe between them in the kernel,
 * so the bytes of a dump never pass through node. Node reads only zstd's output, which it must
 * encrypt, hash and upload anyway — a fifth to a tenth of the dump's size.
 *
 * What node no longer sees it cannot hash: the plaintext is proven instead by zstd's frame content
 * checksum (XXH64 of every byte, `--check`, verified by `zstd -d` on restore), under the stored
 * SHA-256 and the GCM tags that cover the compressed bytes. Its size comes from zstd's own report.
 */

/** A tool to run: what `toolOutput` would take. */
export interface ToolCommand {
  readonly command: string;
  readonly args: readonly string[];
  readonly options?: ToolOptions;
}

export interface CompressedOutput {
  /** zstd's output; ends only once the producer and zstd both exited 0, and errors otherwise. */
  readonly output: Readable;
  /** Bytes the producer wrote, as zstd counted them; valid once `output` ended. */
  plainBytes(): number;
}

/** `-vv` makes zstd end with "(2711739 B => 567001 B, /*stdout*\)": the exact input size. */
export function zstdInputBytes(stderr: string): number | undefined {
  const all = [...stderr.matchAll(/\(\s*(\d+) B =>/g)];
  return all.length > 0 ? Number(all[all.length - 1][1]) : undefined;
}

const POLL_MS = 500;

/**
 * Reports how far zstd has read, from the kernel's count of its reads (/proc/<pid>/io), for the
 * progress bar. Where /proc is not there the bar simply does not move; the backup is unaffected.
 */
function watchReads(run: ToolRun, onBytes: (n: number) => void): () => void {
  let seen = 0;
  const poll = async () => {
    try {
      const io = await readFile(`/proc/${run.child.pid}/io`, 'utf8');
      const read = Number(/^rchar:\s*(\d+)/m.exec(io)?.[1] ?? seen);
      if (read > seen) onBytes(read - seen);
      seen = Math.max(seen, read);
    } catch {
      clearInterval(timer);
    }
  };
  const timer = setInterval(() => void poll(), POLL_MS);
  timer.unref();
  return () => clearInterval(timer);
}

export function compressedOutput(producer: ToolCommand, { level, threads }: ZstdOptions, onPlainBytes?: (n: number) => void): CompressedOutput {
  const source = new ToolRun(producer.command, producer.args, ['ignore', 'pipe'], producer.options ?? {});
  const zstd = new ToolRun('zstd', ['-vv', '-c', '--check', `-${level}`, `-T${threads}`], [source.child.stdout!, 'pipe'], { label: 'zstd' });
  // Our copy of the pipe's read end goes: if zstd dies, the producer must get EPIPE, not block.
  source.child.stdout!.destroy();
  const stopWatching = onPlainBytes ? watchReads(zstd, onPlainBytes) : () => undefined;
  const output = new Readable({
    highWaterMark: 1 << 20,
    read: () => zstd.child.stdout!.resume(),
    destroy: (err, cb) => {
      stopWatching();
      source.kill();
      zstd.kill();
      cb(err);
    },
  });
  forwardOutput([source, zstd], output);
  output.once('end', stopWatching);
  let counted: number | undefined;
  return {
    output,
    plainBytes: () => {
      counted ??= zstdInputBytes(zstd.stderr);
      if (counted === undefined) throw new Error(`zstd did not report its input size; its last words: ${zstd.stderr.slice(-200)}`);
      return counted;
    },
  };
}
