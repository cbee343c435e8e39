import type { Duplex, Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import { startAhead } from '../process/spares';
import { toolFilter } from '../process/tool';

export interface ZstdOptions {
  readonly level: number;
  /** 0 = one worker per core. */
  readonly threads: number;
}

/** zstd's CLI is multithreaded and faster than any binding here; it runs as a filter process. */
const compressArgs = ({ level, threads }: ZstdOptions): string[] => ['-q', '-c', `-${level}`, `-T${threads}`];

/** zlib's zstd (Node ≥ 22.15: the worker image's and the Lambdas' runtime; not in Node 20's types). */
const zlibZstd = zlib as {
  createZstdCompress?: (options?: { chunkSize?: number; params?: Record<number, number> }) => Transform;
  createZstdDecompress?: (options?: { chunkSize?: number }) => Transform;
};
/** Whether this node compresses and decompresses zstd itself (zstdCompress's and zstdDecompress's `inProcess`). */
export const IN_PROCESS_ZSTD = typeof zlibZstd.createZstdCompress === 'function' && typeof zlibZstd.createZstdDecompress === 'function';
const ZSTD_C_COMPRESSION_LEVEL = 100;
const ZSTD_C_CHECKSUM_FLAG = 201;

/**
 * A zstd compressor for bytes that pass through node anyway (block packs, indexes, small objects).
 * `inProcess`, where node has zstd (IN_PROCESS_ZSTD), compresses on libuv's thread pool:
 * no process to start (each start from a busy node costs a round of page faults: spares.ts) and no
 * pipe to copy through both ways. One thread per stream where the CLI would use `threads`: on the
 * machines this runs on, node's own thread and the database's share the cores anyway. Frames carry
 * their content checksum either way (the CLI's default, `ZSTD_c_checksumFlag` here), which a
 * restore checks: a pack's blocks have no other plaintext hash but their SHA-256 in the index.
 */
export function zstdCompress(options: ZstdOptions, { inProcess = false } = {}): Duplex {
  if (inProcess && IN_PROCESS_ZSTD) {
    return zlibZstd.createZstdCompress!({ chunkSize: 256 * 1024, params: { [ZSTD_C_COMPRESSION_LEVEL]: options.level, [ZSTD_C_CHECKSUM_FLAG]: 1 } });
  }
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

/**
 * `label` names the tool in its failures (the object it reads, say). `inProcess`, where node has
 * zstd (IN_PROCESS_ZSTD), decompresses on libuv's thread pool instead of through a zstd process: no
 * pipe to copy through both ways; its failures are zlib's (`ZSTD_error…` codes), which readObject
 * says as damage to the object it reads.
 */
export function zstdDecompress(label = 'zstd', { inProcess = false } = {}): Duplex {
  if (inProcess && IN_PROCESS_ZSTD) return zlibZstd.createZstdDecompress!({ chunkSize: 256 * 1024 });
  return toolFilter('zstd', DECOMPRESS_ARGS, { label });
}

/** As startZstdAhead, for a reader about to decompress many objects (WAL fetched ahead of replay). */
export function startZstdDecompressAhead(count: number): () => Promise<void> {
  return startAhead('zstd', DECOMPRESS_ARGS, count);
}
