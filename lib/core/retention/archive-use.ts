import type { BackupReplay } from '../engines/restore-path';
import type { BackupManifest } from '../repository/manifest';
import { parseBinlogFile } from '../engines/mysql/binlog/names';
import { streamId } from './catalog-model';

/**
 * How a backup uses the continuous archive, from its manifest. MySQL logical dumps with binlog
 * coordinates continue through the binlog from the file holding them (pg-logical restores to its
 * own point, RDS snapshots use RDS's own PITR). Physical PostgreSQL: WAL from the backup's start
 * LSN on, on its timeline. pg_basebackup -X fetch puts the WAL from start to stop into the backup itself, so a
 * physical backup restores to its own point without the archive (needsArchive false); the archive
 * extends it. Physical manifests are expected to carry `details.startLsn` and `details.timeline`;
 * without them the restore point's LSN and timeline 1 are used.
 */
export function replayOf(
  manifest: BackupManifest,
  walSegmentBytes = DEFAULT_WAL_SEGMENT_BYTES,
  binlogStreamOf: (file: string) => string | undefined = () => undefined,
): BackupReplay | undefined {
  const binlog = manifest.restorePoint.binlog;
  if (manifest.engine === 'mysql' && manifest.type === 'logical' && binlog) {
    // A dump with coordinates: the binlog continues it from the file holding them (positions are
    // file numbers doubled, see build-catalog.ts); the dump alone restores to its own point.
    const file = parseBinlogFile(binlog.file);
    const stream = binlogStreamOf(binlog.file);
    if (!file || !stream) return undefined;
    return { stream, from: 2 * file.index, consistentAt: 2 * file.index, needsArchive: false };
  }
  if (manifest.engine !== 'postgres' || manifest.type === 'logical' || !manifest.restorePoint.lsn) return undefined;
  const details = manifest.details as { startLsn?: unknown; timeline?: unknown };
  const end = lsnToSegment(manifest.restorePoint.lsn, walSegmentBytes);
  const start = typeof details.startLsn === 'string' ? lsnToSegment(details.startLsn, walSegmentBytes) : end;
  if (start === undefined || end === undefined) return undefined;
  const timeline = typeof details.timeline === 'number' ? details.timeline.toString(16).toUpperCase().padStart(8, '0') : '00000001';
  return { stream: streamId('wal', timeline), from: start, consistentAt: end, needsArchive: false };
}

export const DEFAULT_WAL_SEGMENT_BYTES = 16 * 1024 * 1024;

/** `16/B374D848` → the number of the WAL segment holding it (the archive's positions). */
export function lsnToSegment(lsn: string, segmentBytes = DEFAULT_WAL_SEGMENT_BYTES): number | undefined {
  const m = /^([0-9A-F]{1,8})\/([0-9A-F]{1,8})$/i.exec(lsn);
  if (!m) return undefined;
  return parseInt(m[1], 16) * Math.floor(0x1_0000_0000 / segmentBytes) + Math.floor(parseInt(m[2], 16) / segmentBytes);
}

/** `000000010000001600000003` → timeline `00000001`, segment number (same numbering as lsnToSegment). */
export function parseSegmentName(name: string, segmentBytes = DEFAULT_WAL_SEGMENT_BYTES): { timeline: string; segment: number } | undefined {
  const m = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/.exec(name);
  if (!m) return undefined;
  return { timeline: m[1], segment: parseInt(m[2], 16) * Math.floor(0x1_0000_0000 / segmentBytes) + parseInt(m[3], 16) };
}
