import { spawn } from 'node:child_process';
import { Transform, pipeline } from 'node:stream';
import type { CompressedOutput } from '../../pipeline/compressed-output';
import { childEnv } from '../../secrets';

/** Compressed bytes kept from the start of a dump: enough for zstd to decode its header. */
const HEAD_BYTES = 256 * 1024;

export interface BinlogCoordinates {
  readonly file: string;
  readonly position: number;
  readonly gtid?: string;
}

/**
 * The dump's own record of its snapshot. With --single-transaction --master-data=2, mariadb-dump
 * opens its consistent snapshot and reads the binlog position in the same step (MariaDB: the
 * binlog_snapshot_* status of that very transaction, no global lock; MySQL: a brief FLUSH TABLES
 * WITH READ LOCK around START TRANSACTION), and writes it as a comment at the top of the dump.
 * That is exact, where a SHOW MASTER STATUS of our own beside the dump could only approximate it;
 * but node sees only zstd's output (the lean data plane). So we keep the first compressed bytes as
 * they pass through on their way to encryption, and decode just those once the dump is complete.
 */
export function keepDumpHead(compressed: CompressedOutput): { compressed: CompressedOutput; coordinates(): Promise<BinlogCoordinates | undefined> } {
  const head: Buffer[] = [];
  let kept = 0;
  const tap = new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc, cb) {
      if (kept < HEAD_BYTES) {
        head.push(chunk.subarray(0, HEAD_BYTES - kept));
        kept += Math.min(chunk.length, HEAD_BYTES - kept);
      }
      cb(null, chunk);
    },
  });
  // Destroying the tap (a failed upload) destroys zstd's output, which kills the tools.
  pipeline(compressed.output, tap, () => undefined);
  return {
    compressed: { output: tap, plainBytes: () => compressed.plainBytes() },
    coordinates: async () => parseCoordinates(await decodePrefix(Buffer.concat(head))),
  };
}

/** Decodes as much of a zstd frame's start as there is (a cut frame is expected, not an error). */
function decodePrefix(prefix: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const zstd = spawn('zstd', ['-dc', '-q'], { stdio: ['pipe', 'pipe', 'ignore'], env: childEnv() });
    const out: Buffer[] = [];
    zstd.stdout.on('data', (c: Buffer) => out.push(c));
    zstd.stdin.on('error', () => undefined); // zstd may stop reading a cut frame early
    zstd.on('error', reject);
    zstd.on('close', () => resolve(Buffer.concat(out).toString('utf8')));
    zstd.stdin.end(prefix);
  });
}

/**
 * The `-- CHANGE MASTER TO MASTER_LOG_FILE=…` (MySQL 8.0.23+: `-- CHANGE REPLICATION SOURCE TO
 * SOURCE_LOG_FILE=…`) and MariaDB's `-- SET GLOBAL gtid_slave_pos=…` comments.
 */
export function parseCoordinates(header: string): BinlogCoordinates | undefined {
  const pos = /^-- CHANGE (?:MASTER|REPLICATION SOURCE) TO (?:MASTER|SOURCE)_LOG_FILE='([^']+)', (?:MASTER|SOURCE)_LOG_POS=(\d+);/m.exec(header);
  if (!pos) return undefined;
  const gtid = /^-- SET GLOBAL gtid_slave_pos='([^']*)';/m.exec(header)?.[1];
  return { file: pos[1], position: Number(pos[2]), ...(gtid ? { gtid } : {}) };
}
