import { scaleLinear } from 'd3-scale';
import { line } from 'd3-shape';
import type { DrillReport } from '../drill/report';
import { timeAxis, timeScale } from './axis';
import { esc, formatSeconds, formatTime, num } from './html';

/**
 * Drill history: RTO and RPO per drill against the source's objectives (a dashed line each), and a
 * table of the latest drills with every check. A drill that failed before it could measure still
 * shows, as a cross on the axis: a failure must never vanish from a chart because it has no number.
 */

export type DrillMetric = 'rto' | 'rpo';

export const DRILL_CHART_WIDTH = 470;
const HEIGHT = 210;
const LEFT = 56;
const RIGHT = 16;
const TOP = 16;
const BOTTOM = 28;

const value = (d: DrillReport, metric: DrillMetric) => (metric === 'rto' ? d.rtoSeconds : d.rpoSeconds);

export function renderDrillChart(drills: readonly DrillReport[], metric: DrillMetric, objectiveSeconds?: number): string {
  const name = metric.toUpperCase();
  if (drills.length === 0) return '';
  const plotBottom = HEIGHT - BOTTOM;
  const x = timeScale(drills.map((d) => d.startedAt), [LEFT, DRILL_CHART_WIDTH - RIGHT]);
  const predicted = metric === 'rto' ? drills.filter((d) => d.predictedRtoSeconds !== undefined) : [];
  const values = [...drills.map((d) => value(d, metric) ?? 0), ...predicted.map((d) => d.predictedRtoSeconds!), objectiveSeconds ?? 0];
  // Ticks at whole seconds, minutes or hours, whichever the largest value reads best in.
  const top = Math.max(1, ...values) * 1.12;
  const unit = top >= 7200 ? 3600 : top >= 120 ? 60 : 1;
  const yUnits = scaleLinear()
    .domain([0, top / unit])
    .nice(4)
    .range([plotBottom, TOP]);
  const y = (seconds: number) => yUnits(seconds / unit);
  const px = (d: DrillReport) => x(new Date(d.startedAt));

  const grid = yUnits
    .ticks(4)
    .map(
      (t) =>
        `<line class="grid" x1="${LEFT}" x2="${DRILL_CHART_WIDTH - RIGHT}" y1="${num(yUnits(t))}" y2="${num(yUnits(t))}"/>` +
        `<text class="tick" x="${LEFT - 6}" y="${num(yUnits(t) + 4)}" text-anchor="end">${esc(t === 0 ? '0' : formatSeconds(t * unit))}</text>`,
    )
    .join('');

  const radius = drills.length > 60 ? 2.5 : drills.length > 25 ? 3.5 : 5;
  const measured = drills.filter((d) => value(d, metric) !== undefined);
  const path = line<DrillReport>()
    .x(px)
    .y((d) => y(value(d, metric)!))(measured);
  const trend = measured.length > 1 && path ? `<path class="drill-line" d="${esc(path)}"/>` : '';

  const objective =
    objectiveSeconds === undefined
      ? ''
      : `<line class="objective" x1="${LEFT}" x2="${DRILL_CHART_WIDTH - RIGHT}" y1="${num(y(objectiveSeconds))}" y2="${num(y(objectiveSeconds))}"/>` +
        `<text class="objective-label" x="${DRILL_CHART_WIDTH - RIGHT - 4}" y="${num(y(objectiveSeconds) - 5)}" text-anchor="end">${esc(`${name} objective ${formatSeconds(objectiveSeconds)}`)}</text>`;

  const predictions = predicted
    .map((d) => `<circle class="predicted" cx="${num(px(d))}" cy="${num(y(d.predictedRtoSeconds!))}" r="${radius - 1}"><title>${esc(`predicted RTO ${formatSeconds(d.predictedRtoSeconds!)} (drill ${d.id})`)}</title></circle>`)
    .join('');

  const marks = drills
    .map((d) => {
      const v = value(d, metric);
      const what = `drill ${d.id} ${d.ok ? 'passed' : 'FAILED'} ${formatTime(d.startedAt)}`;
      if (v === undefined) {
        const cx = px(d);
        const cy = plotBottom;
        return `<path class="drill-failed-mark" d="M${num(cx - 5)},${num(cy - 5)}L${num(cx + 5)},${num(cy + 5)}M${num(cx - 5)},${num(cy + 5)}L${num(cx + 5)},${num(cy - 5)}"><title>${esc(`${what}: no ${name} measured`)}</title></path>`;
      }
      const over = objectiveSeconds !== undefined && v > objectiveSeconds;
      return `<circle class="drill-point ${d.ok ? 'ok' : 'failed'}${over ? ' over' : ''}" cx="${num(px(d))}" cy="${num(y(v))}" r="${radius}"><title>${esc(`${what}: ${name} ${formatSeconds(v)}`)}</title></circle>`;
    })
    .join('');

  return (
    `<figure class="drill-chart"><figcaption>${esc(name)} per drill${objectiveSeconds === undefined ? ` <span class="muted">(no sources.&lt;name&gt;.${metric} objective set)</span>` : ''}</figcaption>` +
    `<svg class="chart" data-chart="${metric}" viewBox="0 0 ${DRILL_CHART_WIDTH} ${HEIGHT}" width="100%" role="img" aria-label="${esc(`${name} per drill`)}">` +
    timeAxis(x, TOP, plotBottom, 80) +
    grid +
    `<line class="axis" x1="${LEFT}" x2="${DRILL_CHART_WIDTH - RIGHT}" y1="${plotBottom}" y2="${plotBottom}"/>` +
    objective +
    trend +
    predictions +
    marks +
    `</svg></figure>`
  );
}

function targetText(d: DrillReport): string {
  if (d.target.kind === 'latest') return 'latest';
  return `${formatTime(d.target.at)}${d.target.random ? ' (random)' : ''}`;
}

function metricCell(v: number | undefined, objective: number | undefined): string {
  if (v === undefined) return '<td class="num muted">—</td>';
  const over = objective !== undefined && v > objective;
  return `<td class="num${over ? ' bad' : ''}">${esc(formatSeconds(v))}${over ? `<div class="muted">objective ${esc(formatSeconds(objective))}</div>` : ''}</td>`;
}

/** The latest drills, newest first, each check on its own line. */
export function renderDrillTable(drills: readonly DrillReport[], objectives: { rto?: number; rpo?: number }, limit = 12): string {
  const rows = [...drills]
    .reverse()
    .slice(0, limit)
    .map((d) => {
      const checks = d.checks
        .map((c) => `<li class="${c.ok ? 'ok' : 'bad'}"><span class="mark">${c.ok ? '✓' : '✗'}</span> <b>${esc(c.name)}</b> ${esc(c.detail)}</li>`)
        .join('');
      const error = d.error ? `<div class="error">${esc(d.error)}</div>` : '';
      const cleanup = d.cleanedUp ? '' : '<div class="error">teardown did not finish: check for a leftover instance</div>';
      return (
        `<tr class="${d.ok ? 'ok' : 'failed'}">` +
        `<td class="when">${esc(formatTime(d.startedAt))}<div class="muted">${esc(d.kind)} · ${esc(d.method)}</div></td>` +
        `<td class="when">${esc(targetText(d))}${d.backupId ? `<div class="muted">${esc(d.backupId)}</div>` : ''}</td>` +
        `<td><span class="badge ${d.ok ? 'ok' : 'bad'}">${d.ok ? 'passed' : 'failed'}</span></td>` +
        metricCell(d.rtoSeconds, objectives.rto ?? d.rtoObjectiveSeconds) +
        metricCell(d.rpoSeconds, objectives.rpo ?? d.rpoObjectiveSeconds) +
        `<td><ul class="checks">${checks || '<li class="muted">no checks ran</li>'}</ul>${error}${cleanup}</td>` +
        `</tr>`
      );
    })
    .join('');
  return (
    `<table class="drills"><thead><tr><th>started</th><th>target</th><th>result</th><th class="num">RTO</th><th class="num">RPO</th><th>checks</th></tr></thead>` +
    `<tbody>${rows}</tbody></table>` +
    (drills.length > limit ? `<p class="muted">${drills.length - limit} older drills not shown.</p>` : '')
  );
}
