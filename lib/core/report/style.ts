/**
 * The report's only stylesheet, inlined into the page. System fonts (nothing to fetch), colours
 * that keep their meaning across charts (a type is always its colour, red is always a problem),
 * and print rules, because a report like this ends up on paper at an audit.
 */
const COLOURS = {
  full: '#2563eb',
  diff: '#7c3aed',
  incr: '#c026d3',
  logical: '#0d9488',
  continuous: '#16a34a',
  gap: '#dc2626',
  points: '#94a3b8',
  standard: '#3b82f6',
  warm: '#f59e0b',
  cold: '#06b6d4',
  ok: '#16a34a',
  bad: '#dc2626',
  predicted: '#64748b',
};

const fills = (pairs: readonly [string, string][]) => pairs.map(([cls, colour]) => `svg .${cls}, .swatch.${cls} { fill: ${colour}; background: ${colour}; }`).join('\n');

export const REPORT_CSS = `
:root { color-scheme: light; --ink: #0f172a; --muted: #64748b; --rule: #e2e8f0; --panel: #f8fafc; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink); background: #fff; }
header { padding: 20px 32px 12px; border-bottom: 1px solid var(--rule); background: linear-gradient(180deg, #f1f5f9, #fff); }
h1 { margin: 0 0 4px; font-size: 22px; font-weight: 650; letter-spacing: -0.01em; }
h2 { margin: 36px 0 4px; font-size: 19px; font-weight: 650; padding-bottom: 6px; border-bottom: 2px solid var(--ink); }
h2 .muted { font-size: 14px; font-weight: 400; }
h3 { margin: 22px 0 6px; font-size: 15px; font-weight: 600; }
main { padding: 8px 32px 24px; max-width: 1100px; }
footer { padding: 16px 32px 28px; font-size: 12px; max-width: 1100px; }
p { margin: 6px 0; }
code { font: 12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--panel); padding: 1px 4px; border-radius: 3px; }
a { color: #1d4ed8; text-decoration: none; }
.muted { color: var(--muted); }
.bad, .error { color: ${COLOURS.bad}; }
.error { margin: 4px 0; }
.empty { color: var(--muted); font-style: italic; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 4px; }
th { text-align: left; font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: 0.04em; color: var(--muted); border-bottom: 1px solid var(--rule); padding: 6px 8px; }
td { border-bottom: 1px solid var(--rule); padding: 7px 8px; vertical-align: top; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.when { white-space: nowrap; }
tfoot td { font-weight: 600; border-bottom: none; }
table.summary { margin-top: 16px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; color: #fff; }
.badge.ok { background: ${COLOURS.ok}; }
.badge.bad { background: ${COLOURS.bad}; }
tr.failed td:first-child { box-shadow: inset 3px 0 0 ${COLOURS.bad}; }
ul.checks { list-style: none; margin: 0; padding: 0; }
ul.checks li { margin: 1px 0; word-break: break-word; }
ul.checks li.ok .mark { color: ${COLOURS.ok}; }
ul.checks li.bad { color: ${COLOURS.bad}; }
ul.warnings { margin: 8px 0; padding: 8px 12px 8px 28px; background: #fef2f2; border-left: 3px solid ${COLOURS.bad}; border-radius: 4px; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; font-size: 12px; color: var(--muted); margin: 2px 0 8px; }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
.swatch.dot-ok, .swatch.dot-failed, .swatch.dot-predicted, .swatch.dot-over, .swatch.restore-point { border-radius: 50%; }
.swatch.restore-point { background: #fff; border: 2px solid var(--ink); }
.swatch.dot-over { background: ${COLOURS.warm}; border: 2px solid ${COLOURS.bad}; }
.swatch.dot-ok { background: ${COLOURS.ok}; }
.swatch.dot-failed { background: ${COLOURS.bad}; }
.swatch.dot-predicted { background: #fff; border: 2px solid ${COLOURS.predicted}; }
.swatch.line-objective { height: 0; border-top: 2px dashed ${COLOURS.bad}; border-radius: 0; vertical-align: 3px; }
.swatch.drill-ok { width: 0; height: 0; border-radius: 0; background: none; border-left: 6px solid transparent; border-right: 6px solid transparent; border-bottom: 10px solid ${COLOURS.ok}; }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
figure { margin: 0; }
figcaption { font-size: 12px; font-weight: 600; color: var(--muted); text-transform: uppercase; letter-spacing: 0.04em; }
svg.chart { display: block; overflow: visible; font-size: 11px; }
svg .grid { stroke: var(--rule); stroke-width: 1; }
svg .lane { stroke: #f1f5f9; stroke-width: 18; }
svg .axis { stroke: #cbd5e1; }
svg .tick { fill: var(--muted); font-size: 10.5px; }
svg .lane-label, svg .row-label { fill: var(--ink); font-size: 12px; }
svg .row-value { fill: var(--muted); font-size: 12px; }
svg .parent-link { fill: none; stroke: #94a3b8; stroke-width: 1.5; }
svg .restore-point { fill: #fff; stroke: var(--ink); stroke-width: 1.5; }
svg .window-gap { opacity: 0.85; }
svg .window-points { opacity: 0.55; }
svg .drill-mark.ok { fill: ${COLOURS.ok}; }
svg .drill-mark.failed { fill: ${COLOURS.bad}; }
svg .drill-line { fill: none; stroke: #94a3b8; stroke-width: 1.5; }
svg .drill-point.ok { fill: ${COLOURS.ok}; stroke: #fff; stroke-width: 1.5; }
svg .drill-point.failed { fill: ${COLOURS.bad}; stroke: #fff; stroke-width: 1.5; }
svg .drill-point.over { fill: ${COLOURS.warm}; stroke: ${COLOURS.bad}; stroke-width: 2; }
svg .drill-failed-mark { stroke: ${COLOURS.bad}; stroke-width: 2.5; fill: none; }
svg .predicted { fill: #fff; stroke: ${COLOURS.predicted}; stroke-width: 1.5; }
svg .objective { stroke: ${COLOURS.bad}; stroke-width: 1.5; stroke-dasharray: 6 4; }
svg .objective-label { fill: ${COLOURS.bad}; font-size: 11px; }
${fills([
  ['backup-full', COLOURS.full],
  ['backup-diff', COLOURS.diff],
  ['backup-incr', COLOURS.incr],
  ['backup-logical', COLOURS.logical],
  ['window-continuous', COLOURS.continuous],
  ['window-gap', COLOURS.gap],
  ['window-points', COLOURS.points],
  ['tier-standard', COLOURS.standard],
  ['tier-warm', COLOURS.warm],
  ['tier-cold', COLOURS.cold],
])}
@media (max-width: 760px) { .charts { grid-template-columns: 1fr; } main, header, footer { padding-left: 14px; padding-right: 14px; } }
@media print { header { background: none; } section { break-inside: avoid-page; } a { color: inherit; } }
`;
