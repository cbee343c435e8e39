import type { Duplex } from 'node:stream';
import { toolFilter } from '../process/tool';

export interface ZstdOptions {
  readonly level: number;
  /** 0 = one worker per core. */
  readonly threads: number;
}

/** zstd's CLI is multithreaded and faster than any binding here; it runs as a filter process. */
export function zstdCompress({ level, threads }: ZstdOptions): Duplex {
  return toolFilter('zstd', ['-q', '-c', `-${level}`, `-T${threads}`], { label: 'zstd' });
}

export function zstdDecompress(): Duplex {
  return toolFilter('zstd', ['-q', '-d', '-c'], { label: 'zstd' });
}
