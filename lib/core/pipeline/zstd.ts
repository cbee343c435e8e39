import type { Duplex } from 'node:stream';
import { startAhead } from '../process/spares';
import { toolFilter } from '../process/tool';

export interface ZstdOptions {
  readonly level: number;
  /** 0 = one worker per core. */
  readonly threads: number;
}

/** zstd's CLI is multithreaded and faster than any binding here; it runs as a filter process. */
const compressArgs = ({ level, threads }: ZstdOptions): string[] => ['-q', '-c', `-${level}`, `-T${threads}`];

export function zstdCompress(options: ZstdOptions): Duplex {
  return toolFilter('zstd', compressArgs(options), { label: 'zstd' });
}

/**
 * For a writer about to store `count` objects one after the other (a physical backup's packs):
 * their zstd processes are started now, together, while node's memory is small (spares.ts says
 * what a process start costs later on). Returns what ends those not used: call it when done.
 */
export function startZstdAhead(options: ZstdOptions, count: number): () => Promise<void> {
  return startAhead('zstd', compressArgs(options), count);
}

const DECOMPRESS_ARGS: readonly string[] = ['-q', '-d', '-c'];

/** `label` names the tool in its failures (the object it reads, say). */
export function zstdDecompress(label = 'zstd'): Duplex {
  return toolFilter('zstd', DECOMPRESS_ARGS, { label });
}

/** As startZstdAhead, for a reader about to decompress many objects (WAL fetched ahead of replay). */
export function startZstdDecompressAhead(count: number): () => Promise<void> {
  return startAhead('zstd', DECOMPRESS_ARGS, count);
}
