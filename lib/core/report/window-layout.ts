import type { RestorableWindow } from '../engines/recovery-target';

/**
 * The restorable window as the report draws it: `tidemark list`'s window (restorableWindow, from
 * the oldest backup's point to the newest point reachable) cut into stretches by the continuous
 * archive's windows. Inside an archive window every moment is restorable; elsewhere only the
 * backups' own points are. Where a source has an archive, such a stretch is a gap (replay cannot
 * cross missing WAL or binlog, or nothing was archived then): the report shows it in red. Where a
 * source has none, it is simply how logical backups work: a point a night.
 */
export type WindowSegmentKind = 'continuous' | 'gap' | 'points';

export interface WindowSegment {
  readonly kind: WindowSegmentKind;
  readonly from: string;
  readonly to: string;
}

/**
 * Contiguous, ordered, non-overlapping segments covering exactly [window.from, window.to].
 * `archiveWindows` undefined: the source has no continuous archive. Timelines may overlap in time
 * (a restore starts a new one inside the old one's range), so the archive windows are merged first.
 */
export function windowSegments(window: RestorableWindow | null, archiveWindows?: readonly { readonly from: string; readonly to: string }[]): WindowSegment[] {
  if (!window) return [];
  const start = Date.parse(window.from);
  const end = Date.parse(window.to);
  if (!(end >= start)) return [];
  if (!archiveWindows) return [{ kind: 'points', from: window.from, to: window.to }];

  const covered: [number, number][] = [];
  for (const w of archiveWindows
    .map((a): [number, number] => [Math.max(start, Date.parse(a.from)), Math.min(end, Date.parse(a.to))])
    .filter(([a, b]) => b > a)
    .sort((x, y) => x[0] - y[0])) {
    const last = covered[covered.length - 1];
    if (last && w[0] <= last[1]) last[1] = Math.max(last[1], w[1]);
    else covered.push(w);
  }

  const iso = (t: number) => new Date(t).toISOString();
  // The window's own ends keep their text (they may carry a precision toISOString would change).
  const at = (t: number) => (t === start ? window.from : t === end ? window.to : iso(t));
  const segments: WindowSegment[] = [];
  let cursor = start;
  for (const [a, b] of covered) {
    if (a > cursor) segments.push({ kind: 'gap', from: at(cursor), to: at(a) });
    segments.push({ kind: 'continuous', from: at(a), to: at(b) });
    cursor = b;
  }
  if (cursor < end || segments.length === 0) segments.push({ kind: 'gap', from: at(cursor), to: at(end) });
  return segments;
}

export interface PlacedSegment extends WindowSegment {
  readonly x: number;
  readonly width: number;
}

/**
 * Segments on a time axis (`x` maps a time to pixels, increasing). Very short segments still get
 * `minWidth` so a one-minute gap is visible; the neighbours give way, never overlap, and the whole
 * stays inside the window's own pixel range.
 */
export function placeSegments(segments: readonly WindowSegment[], x: (t: Date) => number, minWidth = 2): PlacedSegment[] {
  if (segments.length === 0) return [];
  const left = x(new Date(segments[0].from));
  const right = Math.max(left, x(new Date(segments[segments.length - 1].to)));
  const minimum = Math.min(minWidth, (right - left) / segments.length);
  // Boundaries in pixels, then pushed apart left to right and, where that overran, right to left.
  const edges = [left, ...segments.map((s) => x(new Date(s.to)))];
  edges[edges.length - 1] = right;
  for (let i = 1; i < edges.length; i++) edges[i] = Math.max(edges[i], edges[i - 1] + minimum);
  edges[edges.length - 1] = right;
  for (let i = edges.length - 2; i >= 0; i--) edges[i] = Math.min(edges[i], edges[i + 1] - minimum);
  edges[0] = left;
  return segments.map((s, i) => ({ ...s, x: edges[i], width: Math.max(0, edges[i + 1] - edges[i]) }));
}
