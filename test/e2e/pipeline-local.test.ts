import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { runList } from '../../lib/core/commands/list';
import { parseConfig } from '../../lib/core/config/load';
import { FileStore } from '../../lib/core/repository/file-store';
import { runBackupsLocally } from '../../lib/local/local-backup-pipeline';
import { loadSampleData } from '../../lib/local/sample-postgres';
import { stateMachineDefinition } from '../../lib/local/template-definition';
import { usePostgres } from '../harness/postgres';
import { ROOT, TEST_KEY, useTempDir } from '../harness/tidemark';
import { testWorker } from '../harness/bundles';
import { synthesizeOffline } from '../../lib/infra/offline-synth';

/**
 * The deployed backup state machine — synthesized from the real TidemarkStack — run locally:
 * ECS RunTask starts the real worker entry as a process against a real PostgreSQL, record-result
 * runs in process against the repository, SNS is captured.
 */
describe('the synthesized backup state machine, run locally', () => {
  const pg = usePostgres({ databases: ['app'] });
  const tmp = useTempDir();
  let definition: object;
  let workerConfigJson: string;
  let store: FileStore;
  let localConfig: ReturnType<typeof parseConfig>;

  beforeAll(async () => {
    await loadSampleData(pg.url('app'), { pgbenchScale: 1, toastMegabytes: 2 });
    const deployed = parseConfig(
      stringify({
        repository: 'file:///var/backups/tidemark',
        encryption: { key: 'env:TIDEMARK_KEY' },
        aws: { account: '111111111111', region: 'eu-west-1' },
        sources: {
          app: { engine: 'postgres', url: pg.url('app'), password: 'secret:arn:aws:secretsmanager:eu-west-1:111111111111:secret:app-AbCdEf' },
          down: { engine: 'postgres', url: 'postgres://postgres@127.0.0.1:1/app' },
        },
      }),
      'deployed.yaml',
    );
    const context = JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8')).context;
    definition = stateMachineDefinition(synthesizeOffline(deployed, context), 'BackupStateMachine');

    // Locally the workers use a folder and the local key instead of the vault bucket and KMS.
    const local = {
      repository: `file://${tmp.path}/repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: pg.url('app') }, down: { engine: 'postgres', url: 'postgres://postgres@127.0.0.1:1/app' } },
    };
    workerConfigJson = JSON.stringify(local);
    localConfig = parseConfig(workerConfigJson, 'local.json');
    store = new FileStore(join(tmp.path, 'repo'));
  }, 180_000);

  const run = (runs: { source: string; type: 'logical' }[]) =>
    runBackupsLocally(runs, { definition, workerConfigJson, workerEnv: { TIDEMARK_TEST_KEY: TEST_KEY }, store, workerEntry: testWorker() });

  it('success path: the worker backs up, record-result emits BackupSucceeded, nobody is paged', async () => {
    const result = await run([{ source: 'app', type: 'logical' }]);
    expect(result.status).toBe('SUCCEEDED');
    expect(result.notifications).toEqual([]);
    expect(result.metrics).toEqual([expect.objectContaining({ Source: 'app', BackupSucceeded: 1, BackupStoredBytes: expect.any(Number) })]);
    const listed = await runList(localConfig, 'app');
    expect(listed.backups).toHaveLength(1);
  });

  it('failure path: a worker exiting non-zero reaches the failure metric and the notification, the other source still runs', async () => {
    const result = await run([
      { source: 'app', type: 'logical' },
      { source: 'down', type: 'logical' },
    ]);
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('Tidemark.BackupsFailed');
    expect(result.events).toEqual(expect.arrayContaining(['Record backup failure', 'Notify backup failure', 'Source failed', 'Record backup success']));
    expect(result.metrics).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ Source: 'down', BackupFailed: 1 }),
        expect.objectContaining({ Source: 'app', BackupSucceeded: 1 }),
      ]),
    );
    expect(result.notifications).toHaveLength(1);
    expect(result.notifications[0].subject).toMatch(/logical backup of down failed/);
    expect(result.notifications[0].message).toMatch(/cannot connect to 127\.0\.0\.1:1/);
    expect((await runList(localConfig, 'app')).backups).toHaveLength(2);
  });
});
