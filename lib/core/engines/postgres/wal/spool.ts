import { readFileSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep } from '../../../abort';
import { UsageError } from '../../../errors';
import { HISTORY_NAME, PARTIAL_FILE_NAME, SEGMENT_NAME } from './wal-names';

/**
 * The streamer's local spool: the directory pg_receivewal writes into. It holds at most the open
 * segment and completed segments not yet archived; it survives a restart of the streamer (so the
 * slot and the spool together lose nothing), and a lock file keeps two streamers out of one spool.
 */
export interface SpoolContents {
  /** Completed segments, oldest first. */
  readonly segments: readonly string[];
  /** Timeline history files. */
  readonly histories: readonly string[];
  /** The open segment pg_receivewal is writing (its name without ".partial"). */
  readonly partial?: string;
  /**
   * Older open segments: an earlier timeline's last segment, left as .partial when the server
   * switched timeline in its middle (the new timeline's copy of that segment carries the same WAL).
   */
  readonly stalePartials: readonly string[];
}

export async function readSpool(dir: string): Promise<SpoolContents> {
  const names = await readdir(dir);
  const partials = names.filter((n) => PARTIAL_FILE_NAME.test(n)).sort();
  return {
    segments: names.filter((n) => SEGMENT_NAME.test(n)).sort(),
    histories: names.filter((n) => HISTORY_NAME.test(n)).sort(),
    // After a restart pg_receivewal continues in the newest partial; an older one would be stale.
    ...(partials.length > 0 ? { partial: partials[partials.length - 1].replace(/\.partial$/, '') } : {}),
    stalePartials: partials.slice(0, -1).map((p) => p.replace(/\.partial$/, '')),
  };
}

/** Offset just past the last non-zero byte: pg_receivewal pads an open segment with zeros. */
export function writtenExtent(segment: Buffer): number {
  const CHUNK = 64 * 1024;
  const zeros = Buffer.alloc(CHUNK);
  let end = segment.length;
  while (end > 0) {
    const start = Math.max(0, end - CHUNK);
    const piece = segment.subarray(start, end);
    if (!piece.equals(zeros.subarray(0, piece.length))) {
      for (let i = piece.length - 1; i >= 0; i--) if (piece[i] !== 0) return start + i + 1;
    }
    end = start;
  }
  return 0;
}

const LOCK = 'streamer.pid';
const RECEIVER = 'receiver.pid';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/**
 * Takes the spool for this process: refuses while another live streamer holds it, and stops a
 * pg_receivewal a killed streamer left behind (by the pid it recorded, and only if that process
 * is still pg_receivewal writing into this spool), since it would hold the slot.
 */
export async function lockSpool(dir: string): Promise<{ recordReceiver(pid: number | undefined): Promise<void>; release(): Promise<void> }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const lockPath = join(dir, LOCK);
  const holder = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
  if (holder && holder !== process.pid && alive(holder)) {
    throw new UsageError(`another streamer (pid ${holder}) is using the spool ${dir}; stop it first`);
  }
  const orphan = Number((await readFile(join(dir, RECEIVER), 'utf8').catch(() => '')).trim());
  if (orphan && alive(orphan) && /pg_receivewal/.test(commandLine(orphan)) && commandLine(orphan).includes(dir)) {
    process.kill(orphan, 'SIGINT');
    for (let i = 0; i < 50 && alive(orphan); i++) await sleep(100);
    if (alive(orphan)) process.kill(orphan, 'SIGKILL');
  }
  await writeFile(lockPath, `${process.pid}\n`);
  return {
    recordReceiver: async (pid) => {
      if (pid === undefined) await unlink(join(dir, RECEIVER)).catch(() => undefined);
      else await writeFile(join(dir, RECEIVER), `${pid}\n`);
    },
    release: async () => {
      await rm(join(dir, RECEIVER), { force: true });
      await rm(lockPath, { force: true });
    },
  };
}

/** Size and modification time of a spool file. */
export async function fileFacts(path: string): Promise<{ size: number; mtime: Date }> {
  const s = await stat(path);
  return { size: s.size, mtime: s.mtime };
}

/**
 * Creates an empty (zero-filled) open segment, so that pg_receivewal, which resumes at the newest
 * segment it finds in its directory, starts where the archive ends rather than where its slot is.
 */
export async function seedSpool(dir: string, segment: string, segmentBytes: number): Promise<string> {
  const path = join(dir, `${segment}.partial`);
  const handle = await open(path, 'wx', 0o600);
  try {
    await handle.truncate(segmentBytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return path;
}
