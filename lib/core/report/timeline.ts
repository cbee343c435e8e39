import { linkHorizontal } from 'd3-shape';
import type { ListResult } from '../commands/list';
import { BACKUP_TYPES, type BackupType } from '../engines/backup-types';
import { formatBytes } from '../format';
import type { DrillReport } from '../drill/report';
import { timeAxis, timeScale } from './axis';
import { esc, formatTime, num } from './html';
import { placeSegments, windowSegments } from './window-layout';

/**
 * A source's backups on one time axis: a lane per backup type (bars from start to finish, a link
 * from each diff or incr to the backup it builds on, so chains read left to right), and under them
 * the restorable window: continuous stretches, gaps, every backup's restore point, and where drills
 * restored to.
 */

export const TIMELINE_WIDTH = 960;
const LEFT = 84;
const RIGHT = 24;
const TOP = 8;
const LANE = 28;
const BAR = 14;

const WINDOW_LABEL: Readonly<Record<string, string>> = {
  continuous: 'continuous (any moment)',
  gap: 'gap: only backup points',
  points: 'backup points only',
};

export function renderTimeline(list: ListResult, drills: readonly DrillReport[]): string {
  if (list.backups.length === 0) return '<p class="empty">No backups yet.</p>';
  const types = BACKUP_TYPES.filter((t) => list.backups.some((b) => b.type === t));
  const laneY = (t: BackupType) => TOP + types.indexOf(t) * LANE;
  const windowY = TOP + types.length * LANE + 6;
  const bottom = windowY + LANE;
  const height = bottom + 24;
  const drillPoints = drills.map((d) => ({ d, at: d.restoredPoint ?? (d.target.kind === 'time' ? d.target.at : undefined) })).filter((p) => p.at !== undefined) as {
    d: DrillReport;
    at: string;
  }[];

  const x = timeScale(
    [...list.backups.flatMap((b) => [b.startedAt, b.finishedAt, b.restorePoint]), ...(list.window ? [list.window.from, list.window.to] : [])],
    [LEFT, TIMELINE_WIDTH - RIGHT],
  );
  const [plotLeft, plotRight] = x.range();
  const clamp = (v: number) => Math.min(plotRight, Math.max(plotLeft, v));
  const at = (iso: string) => clamp(x(new Date(iso)));

  const lanes = types
    .map(
      (t) =>
        `<text class="lane-label" x="${LEFT - 10}" y="${num(laneY(t) + LANE / 2 + 4)}" text-anchor="end">${esc(t)}</text>` +
        `<line class="lane" x1="${LEFT}" x2="${TIMELINE_WIDTH - RIGHT}" y1="${num(laneY(t) + LANE / 2)}" y2="${num(laneY(t) + LANE / 2)}"/>`,
    )
    .join('');

  // A year of nightly backups must stay readable: marks shrink as they crowd.
  const crowd = list.backups.length;
  const minBar = Math.min(4, Math.max(1, (plotRight - plotLeft) / crowd / 2));
  const pointRadius = crowd > 100 ? 1.5 : crowd > 40 ? 2.5 : 3.5;
  const markSize = drillPoints.length > 60 ? 3 : 5;

  const byId = new Map(list.backups.map((b) => [b.id, b]));
  const link = linkHorizontal<{ source: [number, number]; target: [number, number] }, [number, number]>();
  const links = list.backups
    .filter((b) => b.parent && byId.has(b.parent))
    .map((b) => {
      const p = byId.get(b.parent!)!;
      const d = link({ source: [at(p.finishedAt), laneY(p.type) + LANE / 2], target: [at(b.startedAt), laneY(b.type) + LANE / 2] });
      return `<path class="parent-link" d="${esc(d ?? '')}"><title>${esc(`${b.id} builds on ${p.id}`)}</title></path>`;
    })
    .join('');

  const bars = list.backups
    .map((b) => {
      const x0 = at(b.startedAt);
      const width = Math.max(minBar, at(b.finishedAt) - x0);
      const title = [
        `${b.type} backup ${b.id}`,
        `${formatTime(b.startedAt)} → ${formatTime(b.finishedAt)}`,
        `restore point ${formatTime(b.restorePoint)}`,
        `${formatBytes(b.storedBytes)} stored`,
        ...(b.parent ? [`on ${b.parent} (depth ${b.chain?.depth ?? 1})`] : []),
        ...(b.warnings ?? []),
      ].join('\n');
      return (
        `<rect class="backup backup-${esc(b.type)}" data-id="${esc(b.id)}" x="${num(Math.min(x0, plotRight - width))}" y="${num(laneY(b.type) + (LANE - BAR) / 2)}" ` +
        `width="${num(width)}" height="${BAR}" rx="3"><title>${esc(title)}</title></rect>`
      );
    })
    .join('');

  const segments = placeSegments(windowSegments(list.window, list.archive?.windows), (t) => clamp(x(t)), 3)
    .map(
      (s) =>
        `<rect class="window window-${s.kind}" x="${num(s.x)}" y="${num(windowY + 7)}" width="${num(s.width)}" height="${LANE - 14}">` +
        `<title>${esc(`${WINDOW_LABEL[s.kind]}: ${formatTime(s.from)} → ${formatTime(s.to)}`)}</title></rect>`,
    )
    .join('');
  const points = list.backups
    .map((b) => `<circle class="restore-point" cx="${num(at(b.restorePoint))}" cy="${num(windowY + LANE / 2)}" r="${pointRadius}"><title>${esc(`restore point of ${b.id}: ${formatTime(b.restorePoint)}`)}</title></circle>`)
    .join('');
  const [domainFrom, domainTo] = x.domain().map((d) => d.getTime());
  const drillMarks = drillPoints
    .filter((p) => Date.parse(p.at) >= domainFrom && Date.parse(p.at) <= domainTo)
    // Failures drawn last: a failed drill is never hidden behind a passed one at the same point.
    .sort((a, b) => Number(a.d.ok === false) - Number(b.d.ok === false))
    .map(({ d, at: t }) => {
      const cx = at(t);
      const y = windowY + LANE - 2;
      return (
        `<path class="drill-mark ${d.ok ? 'ok' : 'failed'}" d="M${num(cx)},${num(y + 2 - markSize * 1.8)}L${num(cx - markSize)},${num(y + 2)}L${num(cx + markSize)},${num(y + 2)}Z">` +
        `<title>${esc(`drill ${d.id} ${d.ok ? 'passed' : 'FAILED'}: restored to ${formatTime(t)}`)}</title></path>`
      );
    })
    .join('');

  return (
    `<svg class="chart timeline" data-chart="timeline" viewBox="0 0 ${TIMELINE_WIDTH} ${num(height)}" width="100%" role="img" aria-label="backup timeline">` +
    timeAxis(x, TOP, bottom) +
    lanes +
    `<text class="lane-label" x="${LEFT - 10}" y="${num(windowY + LANE / 2 + 4)}" text-anchor="end">window</text>` +
    links +
    bars +
    segments +
    points +
    drillMarks +
    `</svg>`
  );
}
