import { BACKUP_TYPES } from '../engines/backup-types';
import { formatBytes } from '../format';
import { STORAGE_PRICES, PRICED_STORAGE_CLASSES } from '../pricing';
import { renderDrillChart, renderDrillTable } from './drill-charts';
import { esc, formatSeconds, formatTime, formatUsd } from './html';
import type { ReportModel, SourceReport } from './model';
import { totalCost } from './storage';
import { renderCostTable, renderStorageChart } from './storage-chart';
import { renderTimeline } from './timeline';
import { windowSegments } from './window-layout';
import { REPORT_CSS } from './style';

/**
 * `tidemark report` as one self-contained HTML page: the model in, a string out. No script, no
 * external stylesheet, font or image: the page is opened from a laptop's disk or an email
 * attachment, often when the network is the thing that is down.
 */
export function renderReport(model: ReportModel): string {
  const now = Date.parse(model.generatedAt);
  const title = model.sources.length === 1 ? `Tidemark report: ${model.sources[0].name}` : 'Tidemark report';
  return [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    // Nothing may be fetched; the policy makes the browser enforce what the markup promises.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`,
    `<title>${esc(title)}</title>`,
    `<style>${REPORT_CSS}</style></head><body>`,
    `<header><h1>${esc(title)}</h1><p class="muted">${esc(model.repository)} · generated ${esc(formatTime(model.generatedAt))}</p></header>`,
    '<main>',
    model.sources.length === 0 ? '<p class="empty">No sources configured.</p>' : summary(model.sources, now),
    ...model.sources.map((s) => section(s, now)),
    '</main>',
    `<footer class="muted">Monthly costs use S3 list prices (us-east-1, 2025) from lib/core/pricing.ts: ${PRICED_STORAGE_CLASSES.map((c) => `${esc(STORAGE_PRICES[c].name)} $${STORAGE_PRICES[c].usdPerGBMonth}`).join(', ')} per GB-month; requests and transfer are not included. Times are UTC.</footer>`,
    '</body></html>',
    '',
  ].join('\n');
}

const anchor = (name: string) => `source-${name.replace(/[^A-Za-z0-9_-]/g, '_')}`;

function newestAge(s: SourceReport, now: number): number | undefined {
  const to = s.list?.window?.to;
  return to ? Math.max(0, (now - Date.parse(to)) / 1000) : undefined;
}

function summary(sources: readonly SourceReport[], now: number): string {
  const rows = sources
    .map((s) => {
      if (s.error) return `<tr><td><a href="#${anchor(s.name)}">${esc(s.name)}</a></td><td colspan="5" class="bad">${esc(s.error)}</td></tr>`;
      const age = newestAge(s, now);
      const late = age !== undefined && s.rpoObjectiveSeconds !== undefined && age > s.rpoObjectiveSeconds;
      const last = s.drills[s.drills.length - 1];
      const cost = s.storage ? totalCost(s.storage) : undefined;
      return (
        `<tr><td><a href="#${anchor(s.name)}">${esc(s.name)}</a><div class="muted">${esc(s.engine)}</div></td>` +
        `<td class="num">${s.list?.backups.length ?? 0}</td>` +
        `<td>${age === undefined ? '<span class="muted">nothing restorable</span>' : `${esc(formatTime(s.list!.window!.to))}<div class="${late ? 'bad' : 'muted'}">${esc(formatSeconds(age))} ago${s.rpoObjectiveSeconds !== undefined ? ` · RPO ${esc(formatSeconds(s.rpoObjectiveSeconds))}` : ''}</div>`}</td>` +
        `<td>${last ? `<span class="badge ${last.ok ? 'ok' : 'bad'}">${last.ok ? 'passed' : 'failed'}</span> ${esc(formatTime(last.startedAt))}` : '<span class="muted">never drilled</span>'}</td>` +
        `<td class="num">${last?.rtoSeconds !== undefined ? esc(formatSeconds(last.rtoSeconds)) : '—'}</td>` +
        `<td class="num">${cost ? `${esc(formatBytes(cost.bytes))}<div class="muted">${esc(formatUsd(cost.usd))}/month</div>` : '—'}</td></tr>`
      );
    })
    .join('');
  return `<table class="summary"><thead><tr><th>source</th><th class="num">backups</th><th>newest restorable point</th><th>last drill</th><th class="num">last RTO</th><th class="num">stored</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function legend(items: readonly [string, string][]): string {
  return `<p class="legend">${items.map(([cls, label]) => `<span><span class="swatch ${cls}"></span>${esc(label)}</span>`).join('')}</p>`;
}

/** Only what the chart above it shows: a logical-only source has no diff swatch, no gap without an archive. */
function timelineLegend(s: SourceReport): string {
  const list = s.list!;
  const kinds = new Set(windowSegments(list.window, list.archive?.windows).map((w) => w.kind));
  const items: [string, string][] = [
    ...BACKUP_TYPES.filter((t) => list.backups.some((b) => b.type === t)).map((t): [string, string] => [`backup-${t}`, t]),
    ...(kinds.has('continuous') ? [['window-continuous', 'continuously restorable'] as [string, string]] : []),
    ...(kinds.has('gap') ? [['window-gap', 'gap: only backup points'] as [string, string]] : []),
    ...(kinds.has('points') ? [['window-points', 'backup points only (no continuous archive)'] as [string, string]] : []),
    ['restore-point', 'restore point'],
    ...(s.drills.some((d) => d.restoredPoint !== undefined || d.target.kind === 'time') ? [['drill-ok', 'drill restored here'] as [string, string]] : []),
  ];
  return legend(items);
}

function warnings(s: SourceReport): string {
  const lines: string[] = [];
  const stream = s.list?.archive?.stream === 'wal' ? 'WAL' : 'binlog';
  for (const g of s.list?.archive?.gaps ?? []) {
    const what = g.count === 0 ? `the server changed between ${g.from} and ${g.to}` : g.count === 1 ? `${g.from} is missing` : `${g.from} to ${g.to} (${g.count}) are missing`;
    lines.push(`${stream} gap${s.list?.archive?.stream === 'wal' ? ` on timeline ${g.timeline}` : ''}: ${what}; no restore can cross it`);
  }
  for (const p of s.list?.problems ?? []) lines.push(`backup ${p.id}: ${p.reason}`);
  for (const b of s.list?.backups ?? []) for (const w of b.warnings ?? []) lines.push(`backup ${b.id}: ${w}`);
  if ((s.list?.incomplete.length ?? 0) > 0) lines.push(`${s.list!.incomplete.length} backup folder(s) without a manifest (unfinished; collected by retention)`);
  for (const p of s.drillProblems) lines.push(p);
  return lines.length === 0 ? '' : `<ul class="warnings">${lines.map((l) => `<li>${esc(l)}</li>`).join('')}</ul>`;
}

function section(s: SourceReport, now: number): string {
  const head = `<h2>${esc(s.name)} <span class="muted">${esc(s.engine)}</span></h2>`;
  if (s.error) return `<section id="${anchor(s.name)}">${head}<p class="error">${esc(s.error)}</p></section>`;
  const list = s.list!;
  const window = list.window
    ? `<p>Restorable from <b>${esc(formatTime(list.window.from))}</b> to <b>${esc(formatTime(list.window.to))}</b>${list.archive ? ` (${esc(list.archive.stream === 'wal' ? 'WAL' : 'binlog')} archive: ${list.archive.objects} objects)` : ''}.</p>`
    : '<p class="muted">Nothing is restorable yet.</p>';
  const age = newestAge(s, now);
  const objectives = [
    s.rpoObjectiveSeconds !== undefined ? `RPO objective ${formatSeconds(s.rpoObjectiveSeconds)}${age !== undefined ? `, newest point ${formatSeconds(age)} old` : ''}` : undefined,
    s.rtoObjectiveSeconds !== undefined ? `RTO objective ${formatSeconds(s.rtoObjectiveSeconds)}` : undefined,
  ].filter((x) => x !== undefined);
  const drills =
    s.drills.length === 0
      ? `<p class="empty">No drills yet: <code>tidemark drill ${esc(s.name)}</code> restores into a throwaway instance and records one here.</p>`
      : `<div class="charts">${renderDrillChart(s.drills, 'rto', s.rtoObjectiveSeconds)}${renderDrillChart(s.drills, 'rpo', s.rpoObjectiveSeconds)}</div>` +
        legend([
          ['dot-ok', 'passed'],
          ['dot-failed', 'failed'],
          ['dot-over', 'passed, over the objective'],
          ['dot-predicted', 'predicted RTO'],
          ['line-objective', 'objective'],
        ]) +
        renderDrillTable(s.drills, { rto: s.rtoObjectiveSeconds, rpo: s.rpoObjectiveSeconds });
  return [
    `<section id="${anchor(s.name)}">`,
    head,
    objectives.length > 0 ? `<p class="muted">${objectives.map(esc).join(' · ')}</p>` : '',
    '<h3>Backups and the restorable window</h3>',
    window,
    renderTimeline(list, s.drills),
    list.backups.length > 0 ? timelineLegend(s) : '',
    warnings(s),
    '<h3>Storage by tier</h3>',
    s.storage && totalCost(s.storage).bytes > 0
      ? renderStorageChart(s.storage) +
        legend([['tier-standard', 'standard (S3 Standard)'], ['tier-warm', 'warm (Standard-IA)'], ['tier-cold', 'cold (Glacier, Deep Archive)']]) +
        renderCostTable(s.storage)
      : '<p class="empty">Nothing stored yet.</p>',
    '<h3>Drills</h3>',
    drills,
    '</section>',
  ].join('\n');
}
