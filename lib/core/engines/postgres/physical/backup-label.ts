import { ToolFailed } from '../../../errors';

/** What a restore needs to know of a base backup, from its backup_label and backup_manifest. */
export interface BaseBackupPoints {
  readonly startLsn: string;
  readonly timeline: number;
  readonly stopLsn: string;
}

/** START WAL LOCATION and START TIMELINE of a backup_label. */
export function parseBackupLabel(label: string): { startLsn: string; timeline: number } {
  const start = /^START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+)/im.exec(label);
  const timeline = /^START TIMELINE: (\d+)/im.exec(label);
  if (!start) throw new ToolFailed(`pg_basebackup's backup_label has no START WAL LOCATION: ${label.slice(0, 200)}`);
  return { startLsn: start[1].toUpperCase(), timeline: timeline ? Number(timeline[1]) : 1 };
}

/**
 * The WAL range of the backup from the end of its backup_manifest ("WAL-Ranges" comes last, so
 * the tail is enough and the whole manifest, one line per file, is never held).
 */
export function parseManifestWalRange(manifestTail: string): { stopLsn: string; timeline: number } {
  const ranges = [...manifestTail.matchAll(/"Timeline":\s*(\d+),\s*"Start-LSN":\s*"([0-9A-F]+\/[0-9A-F]+)",\s*"End-LSN":\s*"([0-9A-F]+\/[0-9A-F]+)"/gi)];
  const last = ranges[ranges.length - 1];
  if (!last) throw new ToolFailed('pg_basebackup sent no backup_manifest with a WAL range: cannot tell where the backup is consistent');
  return { timeline: Number(last[1]), stopLsn: last[3].toUpperCase() };
}
