import fc from 'fast-check';
import { esc, formatSeconds, formatUsd } from '../../lib/core/report/html';
import { renderReport } from '../../lib/core/report/render';
import type { SourceReport } from '../../lib/core/report/model';
import { drill, emptySource, logicalSource, physicalSource, sampleModel } from './report-sample';

/** Elements of a kind in an SVG chart, by the chart's data-chart name and a class. */
function count(html: string, chart: string, element: string, cls: string): number {
  const svg = new RegExp(`<svg[^>]*data-chart="${chart}"[^>]*>([\\s\\S]*?)</svg>`).exec(html)?.[1];
  if (svg === undefined) return -1;
  return (svg.match(new RegExp(`<${element} class="[^"]*\\b${cls}\\b[^"]*"`, 'g')) ?? []).length;
}

function sectionOf(html: string, name: string): string {
  const start = html.indexOf(`<section id="source-${name}">`);
  expect(start).toBeGreaterThanOrEqual(0);
  return html.slice(start, html.indexOf('</section>', start));
}

describe('tidemark report: model → HTML', () => {
  it('shows text from the repository as text: a check detail, an error or a source name with markup stays inert', () => {
    const hostile = '<script>alert(1)</script><img src=x onerror="alert(2)">';
    const app = physicalSource();
    const source: SourceReport = {
      ...app,
      name: `app${hostile}`,
      drills: [
        drill(1, {
          ok: false,
          error: hostile,
          checks: [{ name: `assertion: SELECT count(*) FROM t WHERE a < 3 AND b = 'x' ${hostile}`, ok: false, detail: `got "${hostile}", expected 3 & more` }],
        }),
      ],
      drillProblems: [`drill report app/drills/${hostile}.json: not JSON`],
      list: { ...app.list!, problems: [{ id: 'x', reason: hostile }] },
    };
    const html = renderReport(sampleModel([source]));
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/<img/i);
    expect(html).not.toMatch(/onerror="/);
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('SELECT count(*) FROM t WHERE a &lt; 3 AND b = &#39;x&#39;');
    expect(html).toContain('expected 3 &amp; more');
  });

  it('never lets a string of the model open an element, whatever it holds', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.string({ maxLength: 40 }), fc.string({ maxLength: 40 }), (name, detail, error) => {
        const marked = (s: string) => `<x-injected>${s}`;
        const source: SourceReport = {
          ...physicalSource(),
          name: marked(name),
          engine: marked(name),
          drills: [drill(0, { error: marked(error), kind: marked(detail), checks: [{ name: marked(detail), ok: false, detail: marked(detail) }] })],
          drillProblems: [marked(error)],
        };
        const html = renderReport({ ...sampleModel([source]), repository: marked(detail) });
        return !html.includes('<x-injected') && !/<script/i.test(html);
      }),
      { numRuns: 60 },
    );
  });

  it('esc: no markup characters survive, and the text reads back unchanged', () => {
    const unescape = (s: string) => s.replace(/&(lt|gt|quot|#39|amp);/g, (_, e: string) => ({ lt: '<', gt: '>', quot: '"', '#39': "'", amp: '&' })[e]!);
    fc.assert(
      fc.property(fc.string(), (s) => {
        const e = esc(s);
        return !/[<>"']/.test(e) && unescape(e) === s;
      }),
    );
  });

  it('fetches nothing: no script, no external stylesheet, font or image, and a policy that forbids them', () => {
    const html = renderReport(sampleModel());
    expect(html).not.toMatch(/<script|<link|<img|<iframe|@import|url\(|src=/i);
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).toContain(`content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"`);
  });

  it('draws the restorable window with its gaps: continuous stretches around a red gap, and every restore point', () => {
    const html = sectionOf(renderReport(sampleModel([physicalSource()])), 'app');
    expect(count(html, 'timeline', 'rect', 'window-continuous')).toBe(2);
    expect(count(html, 'timeline', 'rect', 'window-gap')).toBe(1);
    expect(count(html, 'timeline', 'rect', 'backup')).toBe(5);
    expect(count(html, 'timeline', 'circle', 'restore-point')).toBe(5);
    // full ← diff ← incr and full ← incr: three links, each a curve from the parent to its child.
    expect(count(html, 'timeline', 'path', 'parent-link')).toBe(3);
    expect(html).toContain('WAL gap on timeline 00000001: 000000010000000000000041 to 000000010000000000000043 (3) are missing; no restore can cross it');
  });

  it('a source without an archive shows backup points only, not gaps', () => {
    const html = sectionOf(renderReport(sampleModel([logicalSource()])), 'shop');
    expect(count(html, 'timeline', 'rect', 'window-points')).toBe(1);
    expect(count(html, 'timeline', 'rect', 'window-gap')).toBe(0);
    expect(count(html, 'timeline', 'rect', 'backup-logical')).toBe(6);
    expect(html).not.toContain('swatch backup-diff'); // the legend names only what is drawn
  });

  it('charts RTO and RPO per drill against the objectives; a drill that failed without a number still shows', () => {
    const app = physicalSource();
    const html = sectionOf(renderReport(sampleModel([app])), 'app');
    // Seven drills: one failed before it measured anything (a cross), six with figures.
    expect(count(html, 'rto', 'circle', 'drill-point')).toBe(6);
    expect(count(html, 'rto', 'path', 'drill-failed-mark')).toBe(1);
    expect(count(html, 'rto', 'circle', 'predicted')).toBe(7);
    expect(count(html, 'rto', 'line', 'objective')).toBe(1);
    expect(count(html, 'rto', 'circle', 'over')).toBe(1); // 1100 s against 900 s
    expect(count(html, 'rpo', 'circle', 'drill-point')).toBe(6);
    expect(count(html, 'rpo', 'line', 'objective')).toBe(1);
    expect(html).toContain('RTO objective 15 min');
    expect(html).toContain('RPO objective 5 min');
    expect((html.match(/<tr class="(ok|failed)">/g) ?? []).length).toBe(7);
    expect(html).toContain('btree index &quot;orders_pkey&quot;: item order invariant violated');
  });

  it('marks where drills restored to on the window, a failed drill on top of passed ones at the same point', () => {
    const app = physicalSource();
    const at = app.list!.backups[3].restorePoint;
    const html = sectionOf(renderReport(sampleModel([{ ...app, drills: [drill(1, { ok: false, restoredPoint: at }), drill(2, { restoredPoint: at }), drill(3, { restoredPoint: at })] }])), 'app');
    const marks = [...html.matchAll(/<path class="drill-mark (ok|failed)"/g)].map((m) => m[1]);
    expect(marks).toEqual(['ok', 'ok', 'failed']);
  });

  it('without objectives the charts have no objective line and say so', () => {
    const app = { ...physicalSource(), rtoObjectiveSeconds: undefined, rpoObjectiveSeconds: undefined };
    const html = sectionOf(renderReport(sampleModel([app])), 'app');
    expect(count(html, 'rto', 'line', 'objective')).toBe(0);
    expect(html).toContain('no sources.&lt;name&gt;.rto objective set');
  });

  it('an empty history renders: no charts, and what to run to get them', () => {
    const html = renderReport(sampleModel([emptySource()]));
    expect(html).toContain('No backups yet.');
    expect(html).toContain('Nothing stored yet.');
    expect(html).toContain('<code>tidemark drill fresh</code>');
    expect(html).not.toContain('<svg');
    expect(renderReport({ ...sampleModel([]), sources: [] })).toContain('No sources configured.');
  });

  it('flags a newest point older than the RPO objective in the summary, and shows a source that could not be read', () => {
    const broken: SourceReport = { name: 'gone', engine: 'mysql', drills: [], drillProblems: [], error: "s3://bucket/x: bucket 'bucket' does not exist" };
    const html = renderReport(sampleModel([physicalSource(), broken]));
    expect(html).toMatch(/<div class="bad">10 h ago · RPO 5 min<\/div>/);
    expect(sectionOf(html, 'gone')).toContain('bucket &#39;bucket&#39; does not exist');
  });

  it('formats durations and small costs for people', () => {
    expect([45, 400, 7200, 3 * 86400].map(formatSeconds)).toEqual(['45 s', '6.7 min', '2 h', '3 d']);
    expect([0, 0.00004, 0.0042, 13.8].map(formatUsd)).toEqual(['$0', '<$0.0001', '$0.0042', '$13.80']);
  });
});
