import {
  formatLsn,
  parseLsn,
  parseArchiveName,
  parseSegmentName,
  partialArchiveName,
  segmentArchiveName,
  segmentName,
  segmentOfLsn,
  segmentStartLsn,
  type TimelineSwitch,
} from './wal-names';

/**
 * What the archive holds, from names alone (pure: list, verify, restore and the streamer's gap
 * check all read it the same way). Per timeline, the completed segments form runs of consecutive
 * numbers; a run may end in the newest partial of the segment after it. Anything between two runs
 * is a gap: replay cannot cross it, so it splits the restorable window.
 */
export interface WalRun {
  readonly timeline: string;
  /** First and last segment of the run; `last` is the partial's segment when the run ends in one. */
  readonly first: string;
  readonly last: string;
  /** Archive name of the newest partial generation the run ends in, if it does. */
  readonly partial?: string;
  /** Archive name of the object that ends the run (the partial, or the last completed segment). */
  readonly lastObject: string;
  readonly startLsn: string;
  /** Where the run's completed segments end; a partial reaches further (its header says how far). */
  readonly completeEndLsn: string;
  readonly segments: number;
}

export interface WalGap {
  readonly timeline: string;
  /** First and last segment missing (whose completed object is missing). */
  readonly from: string;
  readonly to: string;
  readonly count: number;
}

export interface TimelineInventory {
  readonly timeline: string;
  readonly runs: readonly WalRun[];
  readonly gaps: readonly WalGap[];
  /**
   * The parent timeline's run this timeline's first run continues (from its history file): replay
   * goes from that run across the switch without a gap. Absent when the switch is unknown or the
   * WAL across it is not all archived (then `gaps` says what is missing).
   */
  readonly continues?: { readonly timeline: string; readonly run: number; readonly switchLsn: string };
}

export interface WalInventory {
  readonly segmentBytes: number;
  /** Oldest timeline first. */
  readonly timelines: readonly TimelineInventory[];
  /** Timelines whose .history file is archived. */
  readonly histories: readonly string[];
  /** Every partial generation superseded by a completed segment or a newer generation (for retention). */
  readonly supersededPartials: readonly string[];
  /** Names under the archive that are not WAL names (reported by verify). */
  readonly unknown: readonly string[];
}

/**
 * `switches`: per timeline (hex, as in names), where it branched from its parent, from the archived
 * history files. With them, continuity is checked across timelines too: a switch to timeline 2 at X
 * is no gap when timeline 1 is archived up to X's segment and timeline 2 from that segment on (the
 * new timeline's copy of the switch segment holds the old WAL before X). WAL of the parent after X
 * is another history (the old primary's), not needed and not a gap.
 */
export function inventoryOf(names: readonly string[], segmentBytes: number, switches: ReadonlyMap<string, TimelineSwitch> = new Map()): WalInventory {
  const complete = new Map<string, Set<number>>();
  const partials = new Map<string, Map<number, { name: string; generation: number }[]>>();
  const histories: string[] = [];
  const unknown: string[] = [];
  for (const name of names) {
    const parsed = parseArchiveName(name);
    try {
      if (parsed?.kind === 'segment') {
        const { segno } = parseSegmentName(parsed.segment, segmentBytes);
        if (!complete.has(parsed.timeline)) complete.set(parsed.timeline, new Set());
        complete.get(parsed.timeline)!.add(segno);
      } else if (parsed?.kind === 'partial') {
        const { segno } = parseSegmentName(parsed.segment, segmentBytes);
        if (!partials.has(parsed.timeline)) partials.set(parsed.timeline, new Map());
        const bySegment = partials.get(parsed.timeline)!;
        if (!bySegment.has(segno)) bySegment.set(segno, []);
        bySegment.get(segno)!.push({ name, generation: parsed.generation });
      } else if (parsed?.kind === 'history') {
        histories.push(parsed.timeline);
      } else if (parsed === undefined) {
        unknown.push(name);
      }
    } catch {
      unknown.push(name); // a segment name impossible for this segment size
    }
  }

  const superseded: string[] = [];
  const timelines = [...new Set([...complete.keys(), ...partials.keys()])].sort();
  const result: TimelineInventory[] = timelines.map((timeline) => {
    const tl = parseInt(timeline, 16);
    const done = complete.get(timeline) ?? new Set<number>();
    const newestPartial = new Map<number, string>();
    for (const [segno, gens] of partials.get(timeline) ?? new Map<number, { name: string; generation: number }[]>()) {
      gens.sort((a, b) => a.generation - b.generation);
      const newest = gens[gens.length - 1];
      superseded.push(...gens.slice(0, done.has(segno) ? gens.length : -1).map((g) => g.name));
      if (!done.has(segno)) newestPartial.set(segno, newest.name);
    }
    const name = (segno: number) => segmentName({ timeline: tl, segno }, segmentBytes);
    const sorted = [...new Set([...done, ...newestPartial.keys()])].sort((a, b) => a - b);
    const runs: WalRun[] = [];
    const gaps: WalGap[] = [];
    let i = 0;
    while (i < sorted.length) {
      const start = sorted[i];
      let end = start;
      // Completed segments extend a run; a partial ends it (its completed object is missing).
      while (done.has(end) && sorted[i + 1] === end + 1) end = sorted[++i];
      const partial = done.has(end) ? undefined : newestPartial.get(end);
      const lastComplete = partial ? end - 1 : end;
      runs.push({
        timeline,
        first: name(start),
        last: name(end),
        ...(partial ? { partial } : {}),
        lastObject: partial ?? segmentArchiveName(name(end)),
        startLsn: formatLsn(segmentStartLsn(start, segmentBytes)),
        completeEndLsn: formatLsn(segmentStartLsn(lastComplete + 1, segmentBytes)),
        segments: end - start + 1,
      });
      i++;
      const next = sorted[i];
      if (next !== undefined) {
        // A run that ends in a partial lacks that segment's completed object too.
        const from = partial ? end : end + 1;
        gaps.push({ timeline, from: name(from), to: name(next - 1), count: next - from });
      }
    }
    return { timeline, runs, gaps };
  });
  const timelinesOut = acrossSwitches(result, switches, segmentBytes);
  return { segmentBytes, timelines: timelinesOut, histories: histories.sort(), supersededPartials: superseded.sort(), unknown };
}

/** Adds the gaps at timeline switches and which parent run each timeline continues. */
function acrossSwitches(timelines: readonly TimelineInventory[], switches: ReadonlyMap<string, TimelineSwitch>, segmentBytes: number): TimelineInventory[] {
  const byName = new Map(timelines.map((t) => [t.timeline, { ...t, gaps: [...t.gaps] } as { -readonly [K in keyof TimelineInventory]: TimelineInventory[K] } & { gaps: WalGap[] }]));
  const segno = (name: string) => parseSegmentName(name, segmentBytes).segno;
  const name = (timeline: string, n: number) => segmentName({ timeline: parseInt(timeline, 16), segno: n }, segmentBytes);
  const gap = (timeline: string, from: number, to: number): WalGap => ({ timeline, from: name(timeline, from), to: name(timeline, to), count: to - from + 1 });
  for (const child of byName.values()) {
    const sw = switches.get(child.timeline);
    const parent = sw && byName.get(sw.parent);
    const first = child.runs[0];
    if (!sw || !first) continue;
    const k = segmentOfLsn(parseLsn(sw.switchLsn), segmentBytes);
    let continuous = true;
    // The child's copy of the switch segment onwards must be there.
    if (segno(first.first) > k) {
      child.gaps.unshift(gap(child.timeline, k, segno(first.first) - 1));
      continuous = false;
    }
    if (!parent) continue; // the archive begins on the child timeline: nothing before it to join
    // The parent must be complete up to the switch segment (its own copy of that segment is optional).
    const lastComplete = (r: WalRun) => segno(r.last) - (r.partial ? 1 : 0);
    const joined = parent.runs.findIndex((r) => segno(r.first) <= k && lastComplete(r) >= k - 1);
    if (joined < 0) {
      const before = parent.runs.filter((r) => segno(r.first) < k).pop();
      if (before) {
        parent.gaps.push(gap(parent.timeline, lastComplete(before) + 1, k - 1));
        parent.gaps.sort((a, b) => segno(a.from) - segno(b.from));
      }
      continuous = false;
    }
    if (continuous && joined >= 0) child.continues = { timeline: parent.timeline, run: joined, switchLsn: sw.switchLsn };
  }
  return [...byName.values()];
}

/** The newest partial generation of a segment among `names`, or undefined. */
export function newestPartialOf(names: readonly string[], segment: string): { name: string; generation: number } | undefined {
  let best: { name: string; generation: number } | undefined;
  for (const name of names) {
    const parsed = parseArchiveName(name);
    if (parsed?.kind === 'partial' && parsed.segment === segment && (!best || parsed.generation > best.generation)) {
      best = { name, generation: parsed.generation };
    }
  }
  return best;
}

export { partialArchiveName };
