/**
 * WAL segments in a base backup (pg_basebackup -X fetch) are whole 16 MiB files, but recovery from
 * the backup reads only part of them, and the rest is stored as zeros:
 * - past the last record written, a recycled segment holds an older segment's pages. PostgreSQL
 *   recognises those by their header — a page whose xlp_pageaddr is not its own address ends
 *   replay — so zeros change nothing;
 * - before the page holding the backup's start (backup_label's redo point) lies WAL of earlier
 *   work that recovery from this backup never reads; only the segment's first page, whose long
 *   header the WAL reader checks whenever it opens a segment, is kept.
 * This spares the repository up to 16 MiB of poorly compressible WAL per backup, which would
 * otherwise dominate a small incremental.
 */

export const WAL_PAGE_SIZE = 8192;
const WAL_SEGMENT_NAME = /^pg_wal\/([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;

/** Byte position where a WAL segment file starts, from its name and size; undefined if not a segment. */
export function walSegmentStart(path: string, segmentSize: number): number | undefined {
  const m = WAL_SEGMENT_NAME.exec(path);
  if (!m || segmentSize <= 0 || segmentSize % WAL_PAGE_SIZE !== 0) return undefined;
  const segmentsPerXLogId = 2 ** 32 / segmentSize;
  const segno = parseInt(m[2], 16) * segmentsPerXLogId + parseInt(m[3], 16);
  return segno * segmentSize;
}

/**
 * Zeros, in place, the pages of `block` (which starts `fileOffset` bytes into a segment starting at
 * `segmentStart`) that recovery from a backup starting at `startLsn` does not read: those whose
 * header names another address, and those wholly before `startLsn` except the segment's first.
 * Returns how many pages it zeroed.
 */
export function zeroStaleWalPages(block: Buffer, segmentStart: number, fileOffset: number, startLsn: number): number {
  let zeroed = 0;
  for (let at = 0; at + WAL_PAGE_SIZE <= block.length; at += WAL_PAGE_SIZE) {
    const expected = segmentStart + fileOffset + at;
    const pageAddr = block.readUInt32LE(at + 8) + block.readUInt32LE(at + 12) * 2 ** 32;
    const beforeStart = fileOffset + at > 0 && expected + WAL_PAGE_SIZE <= startLsn;
    if ((pageAddr !== expected || beforeStart) && !isZero(block, at)) {
      block.fill(0, at, at + WAL_PAGE_SIZE);
      zeroed++;
    }
  }
  return zeroed;
}

function isZero(block: Buffer, at: number): boolean {
  for (let i = at; i < at + WAL_PAGE_SIZE; i++) if (block[i] !== 0) return false;
  return true;
}
