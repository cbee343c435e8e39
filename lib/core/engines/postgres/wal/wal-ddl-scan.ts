import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { throwIfAborted } from '../../../abort';
import { childEnv } from '../../../secrets';
import { parseDdlCommits, type DdlCommit } from '../wal-ddl';
import type { WalArchive } from './wal-archive';
import { parseSegmentName, segmentName } from './wal-names';

export interface WalDdlScan {
  /** First and last segment to read (one timeline; the last may exist only as a partial). */
  readonly first: string;
  readonly last: string;
  readonly segmentBytes: number;
  /** pg_waldump of the server's major version (WAL formats differ between majors). */
  readonly waldump: string;
  readonly signal?: AbortSignal;
}

/**
 * The commits that removed relation files (drops, truncates) in a stretch of archived WAL, read with
 * `pg_waldump -r Transaction` from segments fetched (authenticated) into a temporary directory,
 * which is removed afterwards. Stops at the first segment the archive does not have.
 */
export async function scanWalDdl(archive: WalArchive, scan: WalDdlScan): Promise<DdlCommit[]> {
  const from = parseSegmentName(scan.first, scan.segmentBytes);
  const to = parseSegmentName(scan.last, scan.segmentBytes);
  const scratch = await mkdtemp(join(tmpdir(), 'tidemark-wal-scan-'));
  try {
    const names: string[] = [];
    for (let segno = from.segno; segno <= to.segno; segno++) {
      throwIfAborted(scan.signal);
      const name = segmentName({ timeline: from.timeline, segno }, scan.segmentBytes);
      if ((await archive.fetch(name, join(scratch, name), { signal: scan.signal })) === 'absent') break;
      names.push(name);
    }
    if (names.length === 0) return [];
    // pg_waldump ends with an error at the end of valid WAL (a partial's unwritten tail): expected,
    // so its output is read whatever its exit status.
    const output = await new Promise<string>((resolve) => {
      execFile(
        scan.waldump,
        ['-p', scratch, '-r', 'Transaction', names[0], names[names.length - 1]],
        { env: { ...childEnv(), TZ: 'UTC' }, maxBuffer: 256 * 1024 * 1024 },
        (_err, stdout) => resolve(stdout),
      );
    });
    return parseDdlCommits(output);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
