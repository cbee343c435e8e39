import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBackup } from '../../lib/core/commands/backup';
import type { DrillSources } from '../../lib/core/commands/drill-target';
import { parseConfig } from '../../lib/core/config/load';
import { drillJson } from '../../lib/core/drill/report';
import { silentProgress } from '../../lib/core/progress';
import { FileStore } from '../../lib/core/repository/file-store';
import { DRILL_FAILED_ERROR, DrillStateNames as S } from '../../lib/infra/drill-state-machine';
import { localRds, runDrillLocally, type LocalDrillOptions, type LocalRds } from '../../lib/local/local-drill-pipeline';
import { stateMachineDefinition } from '../../lib/local/template-definition';
import { startThrowawayPostgres } from '../../lib/local/throwaway-postgres';
import { usePostgres } from '../harness/postgres';
import { ROOT, runCli, TEST_KEY, useTempDir } from '../harness/tidemark';
import { testWorker } from '../harness/bundles';
import { synthesizeOffline } from '../../lib/infra/offline-synth';
import { corruptLargestObject, killWorkerAt, scratchOf, serversIn } from '../harness/drill-faults';

/*
 * The drill state machine as `cdk deploy` creates it, run locally against a real PostgreSQL and a
 * real repository: ECS RunTask → a worker process (test/fixtures/fake-drill-worker.ts until the
 * worker's own drill commands land: a real throwaway server and the real restore), the drill
 * Lambdas in process, RDS → throwaway local clusters. Each failure mode must end in teardown.
 */

const WORKER = join(ROOT, 'test/fixtures/fake-drill-worker.ts');
const ROWS = 1234;

/** Running postmasters of the servers the drill workers started (they log each data dir). */
function drillServersRunning(scratch: string): string[] {
  const log = join(scratch, 'servers.log');
  const dirs = existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : [];
  expect(dirs.length).toBeGreaterThan(0); // the check below means something only if servers were started
  const out = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
  return out.split('\n').filter((l) => dirs.some((d) => l.includes(`-D ${d}`)));
}

async function eventually(probe: () => boolean, timeoutMs = 60_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !probe(); await new Promise((r) => setTimeout(r, 100))) {
    if (Date.now() > deadline) throw new Error('timed out');
  }
}

describe('the synthesized drill state machine, run locally', () => {
  const pg = usePostgres({ databases: ['app'] });
  const tmp = useTempDir('tidemark-drill-e2e-');
  let definition: object;
  let store: FileStore;
  let scratch: string;
  const sources: DrillSources = { app: { engine: 'postgres', rtoSeconds: 600, rpoSeconds: 3600 }, orders: { engine: 'postgres', rds: { instance: 'orders', securityGroupIds: [] } } };

  const localConfig = (assertion?: { sql: string; expect: string | number | boolean }, repo = 'repo') => ({
    repository: `file://${tmp.path}/${repo}`,
    encryption: { key: 'env:TIDEMARK_TEST_KEY' },
    sources: {
      app: { engine: 'postgres', url: pg.url('app'), ...(assertion ? { drill: { assertions: [{ name: 'orders', ...assertion }] } } : {}) },
      orders: { engine: 'postgres', url: pg.url('orders'), rds: { instance: 'orders' }, ...(assertion ? { drill: { assertions: [{ name: 'orders', ...assertion }] } } : {}) },
    },
  });

  const drill = (input: { source: string; kind: 'restore' | 'full' | 'manual' | 'verify'; at?: string }, options: Partial<LocalDrillOptions> & { config?: object } = {}) =>
    runDrillLocally(input, {
      definition,
      workerEntry: WORKER,
      sources,
      ...options,
      workerConfigJson: JSON.stringify(options.config ?? localConfig()),
      workerEnv: { TIDEMARK_TEST_KEY: TEST_KEY, FAKE_DRILL_SCRATCH: scratch, ...options.workerEnv },
      store: options.store ?? store,
    });

  beforeAll(async () => {
    await pg.sql(`create table orders (id int primary key, note text); insert into orders select g, 'n' || g from generate_series(1, ${ROWS}) g;`, 'app');
    const context = JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8')).context;
    const deployed = parseConfig(
      JSON.stringify({ repository: 'file:///unused', encryption: { key: 'env:K' }, aws: { account: '111111111111', region: 'eu-west-1' }, sources: { app: { engine: 'postgres', url: pg.url('app') } } }),
      'deployed.json',
    );
    definition = stateMachineDefinition(synthesizeOffline(deployed, context), 'DrillStateMachine');
    store = new FileStore(join(tmp.path, 'repo'));
    scratch = join(tmp.path, 'scratch');
    await runBackup(parseConfig(JSON.stringify(localConfig()), 'local.json'), 'app', { type: 'logical', progress: silentProgress });
  }, 180_000);

  test('a passing drill: restored, checked, RTO and RPO recorded, torn down, nothing left running', async () => {
    const result = await drill({ source: 'app', kind: 'restore' }, { config: localConfig({ sql: 'select count(*) from orders', expect: ROWS }) });
    expect({ status: result.status, cause: result.cause }).toEqual({ status: 'SUCCEEDED', cause: undefined });
    expect(result.events).toEqual([S.chooseTarget, S.whichDrill, S.runDrill, S.cleanUp, S.record, S.passed, S.succeeded]);
    expect(result.tasks.map((t) => t[0])).toEqual(['drill', 'drill-cleanup']);
    const report = result.report!;
    expect(report).toMatchObject({ ok: true, source: 'app', kind: 'restore', target: { kind: 'latest' } });
    expect(report.checks).toEqual(expect.arrayContaining([{ name: 'assertion: orders', ok: true, detail: `${ROWS} as expected` }]));
    expect(report.rtoSeconds).toBeGreaterThan(0);
    expect(report.rpoSeconds).toBeGreaterThanOrEqual(0);
    // DESIGN.md §5's --json shape.
    expect(Object.keys(drillJson(report)).sort()).toEqual(['checks', 'ok', 'rpoSeconds', 'rtoSeconds', 'target']);
    const emitted = result.metrics[0] as Record<string, unknown>;
    expect(emitted).toMatchObject({ Source: 'app', DrillSucceeded: 1, DrillRtoSeconds: report.rtoSeconds, DrillRpoSeconds: report.rpoSeconds });
    expect(result.notifications).toEqual([]);
    expect(existsSync(join(scratch, `${report.id}.json`))).toBe(false);
    expect(drillServersRunning(scratch)).toEqual([]);
  }, 120_000);

  test('a failing assertion: reported failed with the assertion named, cleanup ran, notified, no server left', async () => {
    const result = await drill({ source: 'app', kind: 'restore' }, { config: localConfig({ sql: 'select count(*) from orders', expect: ROWS + 1 }) });
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe(DRILL_FAILED_ERROR);
    expect(result.events).toEqual([S.chooseTarget, S.whichDrill, S.runDrill, S.cleanUp, S.record, S.passed, S.notifyFailure, S.failed]);
    expect(result.report).toMatchObject({ ok: false, error: `assertion: orders: expected ${ROWS + 1}, got ${ROWS}` });
    expect(result.outcome).toMatchObject({ ok: false, reason: expect.stringContaining('assertion: orders') });
    expect(result.metrics[0]).toMatchObject({ DrillFailed: 1 });
    expect(result.notifications).toHaveLength(1);
    expect(result.notifications[0].subject).toBe('Tidemark: restore drill of app failed');
    expect(drillServersRunning(scratch)).toEqual([]);
  }, 120_000);

  test('a worker killed mid-restore: cleanup ran, a failed report is written for it, no server left', async () => {
    const running = drill({ source: 'app', kind: 'manual' }, { workerEnv: { FAKE_DRILL_HANG: '1' } });
    // The worker has started its server; kill it as the OOM killer would.
    await eventually(() => existsSync(scratch) && readdirSync(scratch).some((f) => f.endsWith('.json')));
    const state = readdirSync(scratch).find((f) => f.endsWith('.json'))!;
    const { worker } = JSON.parse(readFileSync(join(scratch, state), 'utf8')) as { worker: number };
    process.kill(worker, 'SIGKILL');
    const result = await running;
    expect(result.status).toBe('FAILED');
    expect(result.events).toEqual([S.chooseTarget, S.whichDrill, S.runDrill, S.cleanUp, S.record, S.passed, S.notifyFailure, S.failed]);
    expect(result.tasks.map((t) => t[0])).toEqual(['drill', 'drill-cleanup']);
    // The worker never wrote a report: the record step did, failed, naming what happened.
    expect(result.report).toMatchObject({ ok: false, cleanedUp: true, error: expect.stringContaining('SIGKILL') });
    expect(existsSync(join(scratch, state))).toBe(false);
    expect(drillServersRunning(scratch)).toEqual([]);
  }, 120_000);

  test('a corrupted backup: the drill fails naming the object, and still tears down', async () => {
    const victim = corruptLargestObject(join(tmp.path, 'repo'), join(tmp.path, 'corrupt'), 'app');
    const result = await drill({ source: 'app', kind: 'restore' }, { config: localConfig(undefined, 'corrupt'), store: new FileStore(join(tmp.path, 'corrupt')) });
    expect(result.status).toBe('FAILED');
    expect(result.tasks.map((t) => t[0])).toEqual(['drill', 'drill-cleanup']);
    expect(result.report?.ok).toBe(false);
    expect(result.report?.error).toContain(victim);
    expect(drillServersRunning(scratch)).toEqual([]);
  }, 120_000);

  test('a point outside the window is refused before anything runs, and recorded as a failed drill', async () => {
    const result = await drill({ source: 'app', kind: 'manual', at: '2001-01-01T00:00:00Z' });
    expect(result.status).toBe('FAILED');
    expect(result.events).toEqual([S.chooseTarget, S.targetRefused, S.record, S.passed, S.notifyFailure, S.failed]);
    expect(result.tasks).toEqual([]);
    expect(result.outcome?.reason).toMatch(/2001-01-01T00:00:00.000Z is outside the restorable window/);
  }, 60_000);

  test('a random point of the window is drawn, restored and reported as random', async () => {
    const result = await drill({ source: 'app', kind: 'full' }, { draw: () => 0.5 });
    expect(result.status).toBe('SUCCEEDED');
    expect(result.report?.target).toMatchObject({ kind: 'time', random: true });
    expect(result.tasks[0]).toEqual(expect.arrayContaining(['--random', '--kind', 'full']));
  }, 120_000);

  /*
   * The same machine with the worker's own drill commands (containers/worker/main.ts, branch
   * drill-core): real throwaway instance in its scratch dir, recorded checksums, pg_amcheck.
   */
  describe("with the worker's own drill commands", () => {
    const real = (input: { source: string; kind: 'restore' | 'manual' | 'verify' }, options: Partial<LocalDrillOptions> & { config?: object } = {}) =>
      drill(input, { workerEntry: testWorker(), ...options });

    test('passing: recorded checksums, the engine verifier and the assertion agree; torn down', async () => {
      const result = await real({ source: 'app', kind: 'restore' }, { config: localConfig({ sql: 'select count(*) from orders', expect: ROWS }) });
      expect({ status: result.status, cause: result.cause }).toEqual({ status: 'SUCCEEDED', cause: undefined });
      expect(result.report?.checks.map((c) => [c.name, c.ok])).toEqual(expect.arrayContaining([['recorded checksums', true], ['pg_amcheck', true], ['assertion: orders', true]]));
      expect(result.report?.rtoSeconds).toBeGreaterThan(0);
      expect(existsSync(scratchOf(result.report!.id))).toBe(false);
    }, 180_000);

    test('a failing assertion: failed, the assertion named, cleanup ran, no server left', async () => {
      const result = await real({ source: 'app', kind: 'restore' }, { config: localConfig({ sql: 'select count(*) from orders', expect: 7 }) });
      expect(result.status).toBe('FAILED');
      expect(result.tasks.map((t) => t[0])).toEqual(['drill', 'drill-cleanup']);
      expect(result.report?.checks).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'assertion: orders', ok: false })]));
      expect(result.outcome?.reason).toContain('assertion: orders');
      expect(serversIn(scratchOf(result.report!.id))).toEqual([]);
      expect(existsSync(scratchOf(result.report!.id))).toBe(false);
    }, 180_000);

    test('the worker killed once its instance is up: drill-cleanup stops the orphaned server and removes the scratch dir', async () => {
      const kill = killWorkerAt(/throwaway instance ready/, testWorker(), 'app');
      const result = await real({ source: 'app', kind: 'manual' }, { onWorkerOutput: kill.onWorkerOutput });
      const { id } = kill.state;
      expect(id).not.toBe('');
      expect(result.status).toBe('FAILED');
      expect(result.tasks.map((t) => t[0])).toEqual(['drill', 'drill-cleanup']);
      expect(result.report).toMatchObject({ ok: false, error: expect.stringContaining('SIGKILL') });
      expect(serversIn(scratchOf(id))).toEqual([]);
      expect(existsSync(scratchOf(id))).toBe(false);
    }, 180_000);

    test('verify: the worker reads every object back; no throwaway instance, no teardown; a damaged object fails it', async () => {
      const ok = await real({ source: 'app', kind: 'verify' });
      expect({ status: ok.status, cause: ok.cause }).toEqual({ status: 'SUCCEEDED', cause: undefined });
      expect(ok.events).toEqual([S.chooseTarget, S.whichDrill, S.runVerify, S.record, S.passed, S.succeeded]);
      expect(ok.tasks).toEqual([['verify', 'app']]);
      expect(ok.metrics[0]).toMatchObject({ Source: 'app', DrillSucceeded: 1 });

      const repo = join(tmp.path, 'corrupt3');
      cpSync(join(tmp.path, 'repo'), repo, { recursive: true });
      const backupDir = join(repo, 'app', 'backups');
      const [id] = readdirSync(backupDir);
      const victim = join(backupDir, id, readdirSync(join(backupDir, id)).filter((f) => f !== 'manifest.json').sort()[0]);
      const bytes = readFileSync(victim);
      bytes[0] ^= 0xff;
      writeFileSync(victim, bytes);
      const bad = await real({ source: 'app', kind: 'verify' }, { config: localConfig(undefined, 'corrupt3'), store: new FileStore(repo) });
      expect(bad.status).toBe('FAILED');
      expect(bad.metrics[0]).toMatchObject({ DrillFailed: 1 });
      expect(bad.outcome?.reason).toMatch(/^verify failed: States.TaskFailed: exit 3/);
    }, 180_000);

    test('a corrupted backup: failed, naming the object', async () => {
      const repo = join(tmp.path, 'corrupt2');
      const victim = corruptLargestObject(join(tmp.path, 'repo'), repo, 'app');
      const result = await real({ source: 'app', kind: 'restore' }, { config: localConfig(undefined, 'corrupt2'), store: new FileStore(repo) });
      expect(result.status).toBe('FAILED');
      expect(result.tasks.map((t) => t[0])).toEqual(['drill', 'drill-cleanup']);
      expect(result.report?.error).toContain(victim);
    }, 180_000);
  });

  describe('tidemark drill (the CLI)', () => {
    const cli = async (config: object, args: string[], cwd?: string) => {
      const path = join(tmp.path, `cli-${Math.random().toString(36).slice(2)}.json`);
      writeFileSync(path, JSON.stringify(config));
      return runCli(['-c', path, ...args], { TIDEMARK_TEST_KEY: TEST_KEY }, cwd);
    };

    test('--json prints exactly DESIGN.md §5 shape and exits 0 when the drill passed; the installed CLI runs it from any folder', async () => {
      // Outside the checkout: the worker is the bundle beside the CLI's (worker-process.ts), not a path from here.
      const result = await cli(localConfig({ sql: 'select count(*) from orders', expect: ROWS }), ['--json', 'drill', 'app'], tmp.path);
      expect({ code: result.code, stderr: result.code === 0 ? '' : result.stderr }).toEqual({ code: 0, stderr: '' });
      const out = JSON.parse(result.stdout) as Record<string, unknown>;
      expect(Object.keys(out).sort()).toEqual(['checks', 'ok', 'rpoSeconds', 'rtoSeconds', 'target']);
      expect(out).toMatchObject({ ok: true, target: { kind: 'latest' } });
      expect(result.stderr).toContain(S.cleanUp);
    }, 180_000);

    test('a failed check: the table names it, RTO and RPO lines are printed, exit 4', async () => {
      const result = await cli(localConfig({ sql: 'select count(*) from orders', expect: 1 }), ['drill', 'app']);
      expect(result.code).toBe(4);
      expect(result.stdout).toMatch(/FAILED \(target latest\)/);
      expect(result.stdout).toMatch(/^FAILED\s+assertion: orders\s+/m);
      expect(result.stdout).toMatch(/^RTO /m);
      expect(result.stdout).toMatch(/^RPO /m);
    }, 180_000);

    test('a point outside the window: one line naming the window, non-zero', async () => {
      const result = await cli(localConfig(), ['drill', 'app', '--at', '2001-01-01T00:00:00Z']);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/tidemark: drill of app failed before it restored anything: .*outside the restorable window/);
    }, 180_000);
  });

  describe('RDS sources: the restore is a throwaway local cluster', () => {
    let rds: LocalRds;
    const started: string[] = [];
    beforeEach(() => {
      rds = localRds(async ({ instance }) => {
        started.push(instance);
        const cluster = await startThrowawayPostgres({ databases: ['orders'] });
        await cluster.sql(`create table orders (id int); insert into orders select generate_series(1, ${ROWS});`, 'orders');
        return { host: cluster.host, port: cluster.port, stop: () => cluster.stop() };
      });
    });
    afterEach(() => rds.stopAll());

    test('passing: restore, wait, checks against the endpoint, then DeleteDBInstance', async () => {
      const result = await drill({ source: 'orders', kind: 'restore' }, { rds, config: localConfig({ sql: 'select count(*) from orders', expect: ROWS }) });
      expect({ status: result.status, cause: result.cause }).toEqual({ status: 'SUCCEEDED', cause: undefined });
      const instance = result.outcome!.drillId && `tidemark-drill-${result.outcome!.drillId.toLowerCase()}`;
      expect(rds.calls).toEqual([`restoreDBInstanceToPointInTime ${instance}`, `describeDBInstances ${instance}`, `deleteDBInstance ${instance}`]);
      expect(result.tasks[0].slice(0, 6)).toEqual(['drill-check', 'orders', '--id', result.outcome!.drillId, '--endpoint', expect.stringMatching(/^127\.0\.0\.1:\d+$/)]);
      expect(result.report).toMatchObject({ ok: true });
      expect(rds.live()).toEqual([]);
    }, 120_000);

    test('failing checks: the instance is still deleted (in the Catch)', async () => {
      const result = await drill({ source: 'orders', kind: 'restore' }, { rds, config: localConfig({ sql: 'select count(*) from orders', expect: 0 }) });
      expect(result.status).toBe('FAILED');
      expect(result.events).toEqual(expect.arrayContaining([S.runChecks, S.deleteInstance, S.record, S.notifyFailure, S.failed]));
      expect(rds.calls.map((c) => c.split(' ')[0])).toEqual(['restoreDBInstanceToPointInTime', 'describeDBInstances', 'deleteDBInstance']);
      expect(rds.live()).toEqual([]);
      expect(result.report).toMatchObject({ ok: false });
    }, 120_000);

    test('a restore that fails: delete is attempted, finds nothing, and the drill is recorded failed', async () => {
      const failing = localRds(async () => {
        throw new Error('InsufficientDBInstanceCapacity');
      });
      const result = await drill({ source: 'orders', kind: 'restore' }, { rds: failing });
      expect(result.status).toBe('FAILED');
      expect(failing.calls.map((c) => c.split(' ')[0])).toEqual(['restoreDBInstanceToPointInTime', 'deleteDBInstance']);
      expect(result.report).toMatchObject({ ok: false, cleanedUp: true, error: expect.stringContaining('InsufficientDBInstanceCapacity') });
    }, 60_000);
  });
});
