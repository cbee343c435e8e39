import { connectPg, type PgEndpoint } from '../connection';
import type { SpoolContents } from './spool';
import { parseLsn, parseSegmentName, parseTimelineHistoryLines, segmentStartLsn, type SegmentId } from './wal-names';

/**
 * pg_receivewal cannot start on a timeline exactly where that timeline ended. The walsender answers
 * START_REPLICATION at a historic timeline's switch point with the next timeline's number instead of
 * a stream, and pg_receivewal, which wants a stream, takes that as a failure — on every retry. It
 * happens after an ordinary failover: the old primary's last act was a segment switch, the standby
 * replayed it, was promoted, and its new timeline begins at the start of the segment the spool
 * would resume in. These helpers find that case so the streamer can start on the next timeline.
 */

/** Where each ancestor in a timeline history file ended, and which timeline followed it. */
export function timelineEnds(history: string, current: number): Map<number, { end: bigint; next: number }> {
  const lines = parseTimelineHistoryLines(history).map((l) => ({ timeline: parseInt(l.parent, 16), end: parseLsn(l.switchLsn) }));
  return new Map(lines.map((l, i) => [l.timeline, { end: l.end, next: lines[i + 1]?.timeline ?? current }]));
}

/**
 * Where pg_receivewal will start from this spool: the newest file by segment, then timeline (its
 * FindStreamingStart) — inside it when it is a partial, after it when it is complete.
 * Undefined for an empty spool (it then starts at its slot or the server's position).
 */
export function spoolStart(spool: SpoolContents, segmentBytes: number): SegmentId | undefined {
  const files = [...spool.segments.map((name) => ({ name, partial: false })), ...(spool.partial ? [{ name: spool.partial, partial: true }] : [])];
  let best: (SegmentId & { partial: boolean }) | undefined;
  for (const f of files) {
    const id = { ...parseSegmentName(f.name, segmentBytes), partial: f.partial };
    if (!best || id.segno > best.segno || (id.segno === best.segno && id.timeline > best.timeline)) best = id;
  }
  return best && { timeline: best.timeline, segno: best.partial ? best.segno : best.segno + 1 };
}

/**
 * The start to use instead of `start` when it is exactly where its timeline ended in the server's
 * history: the same segment on the next timeline. Undefined when `start` is fine as it is.
 */
export function startPastSwitch(start: SegmentId, serverTimeline: number, history: string, segmentBytes: number): SegmentId | undefined {
  if (start.timeline >= serverTimeline) return undefined;
  const ended = timelineEnds(history, serverTimeline).get(start.timeline);
  if (!ended || ended.end !== segmentStartLsn(start.segno, segmentBytes)) return undefined;
  return { timeline: ended.next, segno: start.segno };
}

/** The server's timeline (IDENTIFY_SYSTEM) and, when it is past `timeline`, its history file (TIMELINE_HISTORY). */
export async function serverHistory(ep: PgEndpoint, timeline: number): Promise<{ timeline: number; history: string }> {
  const client = await connectPg(ep, 'the timeline check', { replication: 'database' });
  try {
    const current = Number((await client.query('IDENTIFY_SYSTEM')).rows[0].timeline);
    if (current <= timeline) return { timeline: current, history: '' };
    const content: unknown = (await client.query(`TIMELINE_HISTORY ${current}`)).rows[0]?.content;
    return { timeline: current, history: Buffer.isBuffer(content) ? content.toString('utf8') : String(content ?? '') };
  } finally {
    await client.end().catch(() => undefined);
  }
}
