import { join } from 'node:path';
import { recordDrill } from '../../lib/core/commands/drill-record';
import { runStatus } from '../../lib/core/commands/status';
import { parseConfig } from '../../lib/core/config/load';
import { DRILL_REPORT_FORMAT, drillReportKey, type DrillReport } from '../../lib/core/drill/report';
import { listDrillReports, readDrillReport } from '../../lib/core/drill/report-store';
import { FileStore } from '../../lib/core/repository/file-store';
import { useTempDir } from '../harness/tidemark';

/*
 * lib/core/drill/report-store.ts is the one reader of drill reports: every reader (status, report,
 * record, the RTO prediction) gets the same checked reports and the same list of unreadable ones.
 */

const report = (id: string, extra: Partial<DrillReport> = {}): DrillReport => ({
  format: DRILL_REPORT_FORMAT,
  id,
  source: 'app',
  engine: 'postgres',
  method: 'logical',
  kind: 'restore',
  target: { kind: 'latest' },
  startedAt: '2026-12-01T01:00:00.000Z',
  finishedAt: '2026-12-01T01:02:00.000Z',
  ok: true,
  rtoSeconds: 120,
  checks: [],
  cleanedUp: true,
  ...extra,
});

describe('the drill report store', () => {
  const tmp = useTempDir('tidemark-report-store-');
  let n = 0;
  const fresh = () => new FileStore(join(tmp.path, String(++n)));
  const put = (store: FileStore, key: string, body: unknown) => store.put(key, Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)));

  test('lists checked reports oldest first and every unreadable one with its reason; newest limits by key', async () => {
    const store = fresh();
    await put(store, drillReportKey('app', '20261201T010000Z-aaaaaa'), report('20261201T010000Z-aaaaaa'));
    await put(store, drillReportKey('app', '20261201T020000Z-bbbbbb'), '{ "format": 1,');
    await put(store, drillReportKey('app', '20261201T030000Z-cccccc'), { ...report('20261201T030000Z-cccccc'), rtoSeconds: -1 });
    await put(store, drillReportKey('app', '20261201T040000Z-dddddd'), report('20261201T040000Z-dddddd', { source: 'orders' }));
    await put(store, drillReportKey('app', '20261201T050000Z-eeeeee'), report('20261201T050000Z-eeeeee', { ok: false }));

    const all = await listDrillReports(store, 'app');
    expect(all.reports.map((r) => r.id)).toEqual(['20261201T010000Z-aaaaaa', '20261201T050000Z-eeeeee']);
    expect(all.unreadable).toEqual([
      { key: 'app/drills/20261201T020000Z-bbbbbb.json', reason: expect.stringMatching(/^not JSON \(/) },
      { key: 'app/drills/20261201T030000Z-cccccc.json', reason: expect.stringMatching(/^not a drill report of format 1 \(rtoSeconds: /) },
      { key: 'app/drills/20261201T040000Z-dddddd.json', reason: "a drill report of source 'orders', not 'app'" },
    ]);
    expect((await listDrillReports(store, 'app', { newest: 2 })).reports.map((r) => r.id)).toEqual(['20261201T050000Z-eeeeee']);
    expect(await readDrillReport(store, drillReportKey('app', 'nope'))).toBeUndefined();
  });

  test('status: an unreadable newest report is a problem of its source; report and record read the same way', async () => {
    const root = join(tmp.path, 'status');
    const store = new FileStore(root);
    await put(store, drillReportKey('app', '20261201T010000Z-aaaaaa'), report('20261201T010000Z-aaaaaa'));
    await put(store, drillReportKey('app', '20261201T020000Z-bbbbbb'), { ...report('20261201T020000Z-bbbbbb'), checks: 'none' });
    const config = parseConfig(JSON.stringify({ repository: `file://${root}`, encryption: { key: 'env:K' }, sources: { app: { engine: 'postgres', url: 'postgres://x@127.0.0.1:1/app' } } }), 'status.json');

    const [app] = (await runStatus(config, {})).sources;
    expect(app.lastDrill).toBeNull();
    expect(app.problems).toContain('drill report app/drills/20261201T020000Z-bbbbbb.json cannot be read: not a drill report of format 1 (checks: Invalid input: expected array, received string)');

    // The record step refuses to take a broken report for the drill's verdict.
    const drill = { source: 'app', kind: 'restore' as const, id: '20261201T020000Z-bbbbbb', startedAt: '2026-12-01T02:00:00.000Z', target: 'latest', random: false, mode: 'task' as const, workerCommand: [], cleanupCommand: [] };
    await expect(recordDrill(store, { app: { engine: 'postgres' } }, { source: 'app', kind: 'restore', drill }, { write: () => undefined })).rejects.toThrow(/drill report app\/drills\/20261201T020000Z-bbbbbb\.json cannot be read: not a drill report/);
  });
});
