/**
 * PostgreSQL's WAL file names and where they live in the archive (repository/archive.ts):
 *
 *   <timeline>/<segment>                      a completed segment        00000001/000000010000000A000000FF
 *   <timeline>/<segment>.partial.<generation> a flushed open segment     00000001/000000010000000B00000000.partial.000003
 *   <timeline>.history                        a timeline's history       00000002.history
 *   <timeline>/<segment>.<offset>.backup      a backup history file (archive_command sends them)
 *
 * A segment name is TTTTTTTTXXXXXXXXYYYYYYYY: timeline, then the segment number split into "log"
 * and "seg" parts, where a log holds 2^32 bytes, i.e. 2^32 / segment size segments. So the name
 * after ...000000FF is ...000000010000000000 only for 16 MiB segments: successors need the size.
 */
export const SEGMENT_NAME = /^[0-9A-F]{24}$/;
export const HISTORY_NAME = /^[0-9A-F]{8}\.history$/;
export const PARTIAL_FILE_NAME = /^[0-9A-F]{24}\.partial$/;
export const BACKUP_HISTORY_NAME = /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/;
const PARTIAL_ARCHIVE_NAME = /^([0-9A-F]{8})\/([0-9A-F]{24})\.partial\.(\d{6})$/;
const SEGMENT_ARCHIVE_NAME = /^([0-9A-F]{8})\/([0-9A-F]{24})$/;
const HISTORY_ARCHIVE_NAME = /^([0-9A-F]{8})\.history$/;
const BACKUP_HISTORY_ARCHIVE_NAME = /^([0-9A-F]{8})\/([0-9A-F]{24}\.[0-9A-F]{8}\.backup)$/;

export const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;

export function isValidSegmentBytes(bytes: number): boolean {
  // initdb --wal-segsize: a power of two from 1 MiB to 1 GiB.
  return Number.isInteger(bytes) && bytes >= 1 << 20 && bytes <= 1 << 30 && (bytes & (bytes - 1)) === 0;
}

const segmentsPerLog = (segmentBytes: number) => 2 ** 32 / segmentBytes;

/** A segment: its timeline and its absolute number (LSN / segment size; below 2^53 for any size). */
export interface SegmentId {
  readonly timeline: number;
  readonly segno: number;
}

const hex8 = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');

export function timelineName(timeline: number): string {
  return hex8(timeline);
}

export function parseSegmentName(name: string, segmentBytes: number): SegmentId {
  if (!SEGMENT_NAME.test(name)) throw new Error(`not a WAL segment name: ${name}`);
  const timeline = parseInt(name.slice(0, 8), 16);
  const log = parseInt(name.slice(8, 16), 16);
  const seg = parseInt(name.slice(16, 24), 16);
  if (seg >= segmentsPerLog(segmentBytes)) throw new Error(`${name} is not a segment name for ${segmentBytes}-byte segments`);
  return { timeline, segno: log * segmentsPerLog(segmentBytes) + seg };
}

export function segmentName(id: SegmentId, segmentBytes: number): string {
  const perLog = segmentsPerLog(segmentBytes);
  return hex8(id.timeline) + hex8(Math.floor(id.segno / perLog)) + hex8(id.segno % perLog);
}

/** "16/B374D848" → bigint. */
export function parseLsn(lsn: string): bigint {
  const m = /^([0-9A-F]{1,8})\/([0-9A-F]{1,8})$/i.exec(lsn);
  if (!m) throw new Error(`not an LSN: ${lsn}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

export function segmentStartLsn(segno: number, segmentBytes: number): bigint {
  return BigInt(segno) * BigInt(segmentBytes);
}

export function segmentOfLsn(lsn: bigint, segmentBytes: number): number {
  return Number(lsn / BigInt(segmentBytes));
}

/** What an archive name is; `undefined` for names that are not ours (verify reports them). */
export type WalArchiveName =
  | { readonly kind: 'segment'; readonly timeline: string; readonly segment: string }
  | { readonly kind: 'partial'; readonly timeline: string; readonly segment: string; readonly generation: number }
  | { readonly kind: 'history'; readonly timeline: string }
  | { readonly kind: 'backup-history'; readonly timeline: string; readonly file: string };

export function parseArchiveName(name: string): WalArchiveName | undefined {
  let m = SEGMENT_ARCHIVE_NAME.exec(name);
  if (m && m[2].startsWith(m[1])) return { kind: 'segment', timeline: m[1], segment: m[2] };
  m = PARTIAL_ARCHIVE_NAME.exec(name);
  if (m && m[2].startsWith(m[1])) return { kind: 'partial', timeline: m[1], segment: m[2], generation: Number(m[3]) };
  m = HISTORY_ARCHIVE_NAME.exec(name);
  if (m) return { kind: 'history', timeline: m[1] };
  m = BACKUP_HISTORY_ARCHIVE_NAME.exec(name);
  if (m && m[2].startsWith(m[1])) return { kind: 'backup-history', timeline: m[1], file: m[2] };
  return undefined;
}

export const segmentArchiveName = (segment: string): string => `${segment.slice(0, 8)}/${segment}`;
export const partialArchiveName = (segment: string, generation: number): string =>
  `${segment.slice(0, 8)}/${segment}.partial.${String(generation).padStart(6, '0')}`;
export const historyArchiveName = (file: string): string => file; // "00000002.history" lives beside the timeline folders
export const partialPrefix = (segment: string): string => `${segment.slice(0, 8)}/${segment}.partial.`;

/** The archive name of a file PostgreSQL hands to archive_command or asks restore_command for. */
export function archiveNameOfWalFile(file: string): string | undefined {
  if (SEGMENT_NAME.test(file)) return segmentArchiveName(file);
  if (HISTORY_NAME.test(file)) return historyArchiveName(file);
  if (BACKUP_HISTORY_NAME.test(file)) return `${file.slice(0, 8)}/${file}`;
  return undefined;
}

/** One line of a timeline history file: timeline `parent` ended at `switchLsn` (where its child begins). */
export interface TimelineSwitch {
  readonly parent: string;
  readonly switchLsn: string;
}

/**
 * Every line of a timeline history file ("1\t0/5000A0\tno recovery target specified", one line per
 * ancestor, oldest first): each ancestor and where it ended.
 */
export function parseTimelineHistoryLines(text: string): TimelineSwitch[] {
  const lines: TimelineSwitch[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+([0-9A-F]{1,8}\/[0-9A-F]{1,8})/i.exec(line);
    if (m) lines.push({ parent: timelineName(Number(m[1])), switchLsn: m[2].toUpperCase() });
  }
  return lines;
}

/** The switch into a timeline, from its history file: the last line names the parent and where it ended. */
export function parseTimelineHistory(text: string): TimelineSwitch | undefined {
  return parseTimelineHistoryLines(text).at(-1);
}
