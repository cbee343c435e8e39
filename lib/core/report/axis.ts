import { scaleUtc, type ScaleTime } from 'd3-scale';
import { esc, num } from './html';

/**
 * The time axis the report's charts share: a UTC scale (the page reads the same in every zone)
 * over the given instants, padded so marks at the ends are not cut, with ticks d3 chooses.
 */
export function timeScale(instants: readonly string[], range: readonly [number, number]): ScaleTime<number, number> {
  const times = instants.map((t) => Date.parse(t)).filter((t) => Number.isFinite(t));
  let lo = times.length > 0 ? Math.min(...times) : Date.now();
  let hi = times.length > 0 ? Math.max(...times) : lo;
  const pad = hi > lo ? (hi - lo) * 0.03 : 3_600_000;
  lo -= pad;
  hi += pad;
  return scaleUtc().domain([new Date(lo), new Date(hi)]).range([range[0], range[1]]);
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAY = 86_400_000;

/**
 * Tick labels in UTC at the precision the spacing needs: "Dec 2026" a month or more apart, "Dec 3" a day, "14:30" within
 * a day (with the date where it changes), "14:30:05" within a minute, "14:30:05.250" within a second.
 */
export function tickLabels(ticks: readonly Date[]): string[] {
  const step = ticks.length > 1 ? ticks[1].getTime() - ticks[0].getTime() : DAY;
  const date = (t: Date) => `${MONTHS[t.getUTCMonth()]} ${t.getUTCDate()}`;
  const time = (t: Date) => t.toISOString().slice(11, step < 1000 ? 23 : step < 60_000 ? 19 : 16);
  return ticks.map((t, i) => {
    if (step >= 28 * DAY) return `${MONTHS[t.getUTCMonth()]} ${t.getUTCFullYear()}`;
    if (step >= DAY) return date(t);
    const newDay = i === 0 || Math.floor(t.getTime() / DAY) !== Math.floor(ticks[i - 1].getTime() / DAY);
    return `${newDay ? `${date(t)} ` : ''}${time(t)}`;
  });
}

/** Vertical grid lines and labels under the plot, from `top` to `bottom`, about `spacing` pixels apart. */
export function timeAxis(x: ScaleTime<number, number>, top: number, bottom: number, spacing = 130): string {
  const [left, right] = x.range();
  const ticks = x.ticks(Math.max(2, Math.floor((right - left) / spacing)));
  const labels = tickLabels(ticks);
  return ticks
    .map(
      (t, i) =>
        `<line class="grid" x1="${num(x(t))}" x2="${num(x(t))}" y1="${num(top)}" y2="${num(bottom)}"/>` +
        `<text class="tick" x="${num(x(t))}" y="${num(bottom + 14)}" text-anchor="middle">${esc(labels[i])}</text>`,
    )
    .join('');
}
