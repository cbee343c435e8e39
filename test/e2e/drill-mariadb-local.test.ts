import { chmodSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBackup } from '../../lib/core/commands/backup';
import { parseConfig } from '../../lib/core/config/load';
import { silentProgress } from '../../lib/core/progress';
import { FileStore } from '../../lib/core/repository/file-store';
import { DrillStateNames as S } from '../../lib/infra/drill-state-machine';
import { runDrillLocally } from '../../lib/local/local-drill-pipeline';
import { stateMachineDefinition } from '../../lib/local/template-definition';
import { useMariadb } from '../harness/mariadb';
import { ROOT, TEST_KEY, useTempDir } from '../harness/tidemark';
import { testWorker } from '../harness/bundles';
import { drillFaultTests, scratchOf, serversIn } from '../harness/drill-faults';
import { synthesizeOffline } from '../../lib/infra/offline-synth';

/*
 * The synthesized drill machine for a MariaDB source, with the worker's own drill commands: a fresh
 * MariaDB in the drill's scratch dir, CHECK TABLE, the assertions; then teardown, always.
 */
describe('the drill state machine, MariaDB logical, run locally', () => {
  const maria = useMariadb({ databases: ['shop'] });
  const tmp = useTempDir('tidemark-drill-maria-e2e-');
  let definition: object;

  const config = (expect: number, repo = 'repo') => ({
    repository: `file://${tmp.path}/${repo}`,
    encryption: { key: 'env:TIDEMARK_TEST_KEY' },
    sources: { shop: { engine: 'mysql', url: maria.url('shop'), drill: { assertions: [{ name: 'orders', sql: 'SELECT COUNT(*) FROM orders', expect }] } } },
  });
  const drill = (expect: number, options: { repo?: string; onWorkerOutput?: (line: string) => void } = {}) =>
    runDrillLocally(
      { source: 'shop', kind: 'restore' },
      {
        definition,
        sources: { shop: { engine: 'mysql', rpoSeconds: 3600 } },
        workerConfigJson: JSON.stringify(config(expect, options.repo)),
        workerEnv: { TIDEMARK_TEST_KEY: TEST_KEY },
        workerEntry: testWorker(),
        store: new FileStore(join(tmp.path, options.repo ?? 'repo')),
        ...(options.onWorkerOutput ? { onWorkerOutput: options.onWorkerOutput } : {}),
      },
    );

  beforeAll(async () => {
    chmodSync(tmp.path, 0o755);
    await maria.sql('CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(40)) ENGINE=InnoDB; INSERT INTO orders SELECT seq, CONCAT("o", seq) FROM seq_1_to_3000;', 'shop');
    const context = JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8')).context;
    const deployed = parseConfig(
      JSON.stringify({ repository: 'file:///unused', encryption: { key: 'env:K' }, aws: { account: '111111111111', region: 'eu-west-1' }, sources: { shop: { engine: 'mysql', url: maria.url('shop') } } }),
      'deployed.json',
    );
    definition = stateMachineDefinition(synthesizeOffline(deployed, context), 'DrillStateMachine');
    await runBackup(parseConfig(JSON.stringify(config(3000)), 'local.json'), 'shop', { type: 'logical', progress: silentProgress });
  }, 300_000);

  test('passing: CHECK TABLE and the assertion hold, RTO/RPO recorded, torn down', async () => {
    const result = await drill(3000);
    expect({ status: result.status, cause: result.cause }).toEqual({ status: 'SUCCEEDED', cause: undefined });
    expect(result.events).toEqual([S.chooseTarget, S.whichDrill, S.runDrill, S.cleanUp, S.record, S.passed, S.succeeded]);
    expect(result.report).toMatchObject({ ok: true, engine: 'mysql' });
    expect(result.report?.checks).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'assertion: orders', ok: true })]));
    expect(result.metrics[0]).toMatchObject({ Source: 'shop', DrillSucceeded: 1, DrillRtoSeconds: result.report!.rtoSeconds });
    expect(existsSync(scratchOf(result.report!.id))).toBe(false);
  }, 300_000);

  test('a failing assertion: failed, cleanup ran, no server left', async () => {
    const result = await drill(1);
    expect(result.status).toBe('FAILED');
    expect(result.tasks.map((t) => t[0])).toEqual(['drill', 'drill-cleanup']);
    expect(result.outcome?.reason).toContain('assertion: orders');
    expect(result.notifications).toHaveLength(1);
    expect(serversIn(scratchOf(result.report!.id))).toEqual([]);
    expect(existsSync(scratchOf(result.report!.id))).toBe(false);
  }, 300_000);

  drillFaultTests({ source: 'shop', killAt: /throwaway instance ready/, dir: () => tmp.path, drill: (o) => drill(3000, o) });
});
