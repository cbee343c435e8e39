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

/** Vertical grid lines and labels under the plot, from `top` to `bottom`, about `spacing` pixels apart. */
export function timeAxis(x: ScaleTime<number, number>, top: number, bottom: number, spacing = 130): string {
  const [left, right] = x.range();
  const ticks = x.ticks(Math.max(2, Math.floor((right - left) / spacing)));
  const label = x.tickFormat();
  return ticks
    .map(
      (t) =>
        `<line class="grid" x1="${num(x(t))}" x2="${num(x(t))}" y1="${num(top)}" y2="${num(bottom)}"/>` +
        `<text class="tick" x="${num(x(t))}" y="${num(bottom + 14)}" text-anchor="middle">${esc(label(t))}</text>`,
    )
    .join('');
}
