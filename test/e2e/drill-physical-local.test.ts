import { chmodSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBackup } from '../../lib/core/commands/backup';
import { parseConfig } from '../../lib/core/config/load';
import { silentProgress } from '../../lib/core/progress';
import { FileStore } from '../../lib/core/repository/file-store';
import { DrillStateNames as S } from '../../lib/infra/drill-state-machine';
import { runDrillLocally } from '../../lib/local/local-drill-pipeline';
import { stateMachineDefinition } from '../../lib/local/template-definition';
import { usePostgres } from '../harness/postgres';
import { ROOT, TEST_KEY, useTempDir } from '../harness/tidemark';
import { testWorker } from '../harness/bundles';
import { drillFaultTests, scratchOf, serversIn } from '../harness/drill-faults';
import { synthesizeOffline } from '../../lib/infra/offline-synth';

/*
 * The synthesized drill machine for a PostgreSQL source backed up physically (a full base backup),
 * with the worker's own drill commands: the base backup restored into a server in the drill's
 * scratch dir, pg_amcheck, the assertions; then teardown, always.
 */
describe('the drill state machine, PostgreSQL physical, run locally', () => {
  const pg = usePostgres({ databases: ['app'], settings: { wal_level: 'replica', max_wal_senders: 10, max_replication_slots: 10 } });
  const tmp = useTempDir('tidemark-drill-phys-e2e-');
  let definition: object;

  const config = (expect: number, repo = 'repo') => ({
    repository: `file://${tmp.path}/${repo}`,
    encryption: { key: 'env:TIDEMARK_TEST_KEY' },
    sources: { app: { engine: 'postgres', url: pg.url('app'), drill: { assertions: [{ name: 'orders', sql: 'select count(*) from orders', expect }] } } },
  });
  const drill = (expect: number, options: { repo?: string; onWorkerOutput?: (line: string) => void } = {}) =>
    runDrillLocally(
      { source: 'app', kind: 'restore' },
      {
        definition,
        sources: { app: { engine: 'postgres', rpoSeconds: 3600 } },
        workerConfigJson: JSON.stringify(config(expect, options.repo)),
        workerEnv: { TIDEMARK_TEST_KEY: TEST_KEY },
        workerEntry: testWorker(),
        store: new FileStore(join(tmp.path, options.repo ?? 'repo')),
        ...(options.onWorkerOutput ? { onWorkerOutput: options.onWorkerOutput } : {}),
      },
    );

  beforeAll(async () => {
    chmodSync(tmp.path, 0o755);
    await pg.sql('create table orders (id int primary key, note text); insert into orders select g, \'o\' || g from generate_series(1, 2500) g;', 'app');
    const context = JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8')).context;
    const deployed = parseConfig(
      JSON.stringify({ repository: 'file:///unused', encryption: { key: 'env:K' }, aws: { account: '111111111111', region: 'eu-west-1' }, sources: { app: { engine: 'postgres', url: pg.url('app') } } }),
      'deployed.json',
    );
    definition = stateMachineDefinition(synthesizeOffline(deployed, context), 'DrillStateMachine');
    await runBackup(parseConfig(JSON.stringify(config(2500)), 'local.json'), 'app', { type: 'full', progress: silentProgress });
  }, 300_000);

  test('passing: the base backup restored, pg_amcheck and the assertion hold, torn down', async () => {
    const result = await drill(2500);
    expect({ status: result.status, cause: result.cause }).toEqual({ status: 'SUCCEEDED', cause: undefined });
    expect(result.events).toEqual([S.chooseTarget, S.whichDrill, S.runDrill, S.cleanUp, S.record, S.passed, S.succeeded]);
    expect(result.report).toMatchObject({ ok: true, method: 'pg-physical' });
    expect(result.report?.checks).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'pg_amcheck', ok: true }), expect.objectContaining({ name: 'assertion: orders', ok: true })]));
    expect(existsSync(scratchOf(result.report!.id))).toBe(false);
  }, 300_000);

  test('a failing assertion: failed, cleanup ran, no server left', async () => {
    const result = await drill(7);
    expect(result.status).toBe('FAILED');
    expect(result.tasks.map((t) => t[0])).toEqual(['drill', 'drill-cleanup']);
    expect(result.outcome?.reason).toContain('assertion: orders');
    expect(serversIn(scratchOf(result.report!.id))).toEqual([]);
    expect(existsSync(scratchOf(result.report!.id))).toBe(false);
  }, 300_000);

  drillFaultTests({ source: 'app', killAt: /starting PostgreSQL/, dir: () => tmp.path, drill: (o) => drill(2500, o) });
});
