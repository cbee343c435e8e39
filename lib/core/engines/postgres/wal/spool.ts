import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { HISTORY_NAME, PARTIAL_FILE_NAME, SEGMENT_NAME } from './wal-names';

/**
 * The streamer's local spool: the directory pg_receivewal writes into. It holds at most the open
 * segment and completed segments not yet archived; it survives a restart of the streamer (so the
 * slot and the spool together lose nothing); lib/core/process/spool-lock.ts keeps two streamers out of one spool.
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
