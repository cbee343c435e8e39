import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readDrillReports } from '../../lib/core/commands/report';
import { drillReportKey } from '../../lib/core/drill/report';
import { renderReport } from '../../lib/core/report/render';
import { FileStore } from '../../lib/core/repository/file-store';
import { drill, physicalSource, sampleModel } from './report-sample';

/** Drill reports are read from the repository, where anyone with write access could have put anything. */
describe('reading drill reports for the page', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tidemark-report-drills-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps well-formed reports oldest first, names every malformed one, and the page renders with all of it', async () => {
    const store = new FileStore(join(dir, 'repo'));
    const good = [drill(2), drill(0), drill(1, { ok: false, rtoSeconds: undefined })];
    for (const d of good) await store.put(drillReportKey('app', d.id), Buffer.from(JSON.stringify({ ...d, addedLater: { x: 1 } })));
    const bad: Record<string, unknown> = {
      'not-json': '{ "format": 1,',
      'null-check': { ...drill(3), checks: [null] },
      'string-rto': { ...drill(4), rtoSeconds: '12' },
      'bad-time': { ...drill(5), startedAt: 'yesterday' },
      'other-format': { ...drill(6), format: 2 },
      'array': [1, 2],
    };
    for (const [name, body] of Object.entries(bad)) await store.put(`app/drills/${name}.json`, Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)));
    await store.put('app/drills/notes.txt', Buffer.from('not a report, not read'));

    const { drills, problems } = await readDrillReports(store, 'app');
    expect(drills.map((d) => d.id)).toEqual([good[1].id, good[2].id, good[0].id]);
    expect(problems).toEqual([
      expect.stringMatching(/^drill report app\/drills\/array\.json: not a drill report of format 1 \(/),
      'drill report app/drills/bad-time.json: not a drill report of format 1 (startedAt: not a time)',
      expect.stringMatching(/^drill report app\/drills\/not-json\.json: not JSON \(/),
      expect.stringMatching(/^drill report app\/drills\/null-check\.json: not a drill report of format 1 \(checks\.0: /),
      expect.stringMatching(/^drill report app\/drills\/other-format\.json: not a drill report of format 1 \(format: /),
      expect.stringMatching(/^drill report app\/drills\/string-rto\.json: not a drill report of format 1 \(rtoSeconds: /),
    ]);

    const html = renderReport(sampleModel([{ ...physicalSource(), drills, drillProblems: problems }]));
    expect((html.match(/<circle class="drill-point/g) ?? []).length).toBe(5); // RTO of two drills, RPO of all three
    expect(html).toContain('drill report app/drills/null-check.json');
  });

  it('a source without drills has none, and no problems', async () => {
    expect(await readDrillReports(new FileStore(join(dir, 'empty')), 'app')).toEqual({ drills: [], problems: [] });
  });
});
