import type { Duplex } from 'node:stream';
import { retireAhead, startAhead } from '../process/spares';
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
 * what a process start costs later on).
 */
export function startZstdAhead(options: ZstdOptions, count: number): void {
  startAhead('zstd', compressArgs(options), count);
}

/** Ends what startZstdAhead started and was not used (the writer is done). */
export function retireZstdAhead(options: ZstdOptions): Promise<void> {
  return retireAhead('zstd', compressArgs(options));
}

export const DECOMPRESS_ARGS: readonly string[] = ['-q', '-d', '-c'];

export function zstdDecompress(): Duplex {
  return toolFilter('zstd', DECOMPRESS_ARGS, { label: 'zstd' });
}

/** For a reader about to decompress many objects one after the other (WAL fetched ahead of replay). */
export function startZstdDecompressAhead(count: number): void {
  startAhead('zstd', DECOMPRESS_ARGS, count);
}

export function retireZstdDecompressAhead(): Promise<void> {
  return retireAhead('zstd', DECOMPRESS_ARGS);
}
