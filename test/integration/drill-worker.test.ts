import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBackup } from '../../lib/core/commands/backup';
import type { TidemarkConfigInput } from '../../lib/core/config/schema';
import { parseConfig } from '../../lib/core/config/load';
import type { DrillReport } from '../../lib/core/drill/report';
import { silentProgress as progress } from '../../lib/core/progress';
import { loadSampleData } from '../../lib/local/sample-postgres';
import { usePostgres } from '../harness/postgres';
import { ROOT, useTempDir } from '../harness/tidemark';
import { testWorker } from '../harness/bundles';

jest.setTimeout(600_000);

/**
 * The drill's worker side as the drill state machine runs it: `drill`, `drill-cleanup` as their
 * own processes (the worker entry through tsx), a real source, a real repository folder, the
 * throwaway server in the scratch directory under $TIDEMARK_SPOOL.
 */

type LogLine = { level: string; msg: string; [key: string]: unknown };

interface WorkerRun {
  readonly code: number | null;
  readonly lines: LogLine[];
  readonly stderr: string;
}

const ENTRY = [testWorker()];

function spawnWorker(args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  const base = { ...process.env };
  delete base.TIDEMARK_CONFIG;
  delete base.TIDEMARK_CONFIG_JSON;
  return spawn(process.execPath, [...ENTRY, ...args], { cwd: ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

async function finished(child: ChildProcess): Promise<WorkerRun> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const [code] = (await once(child, 'close')) as [number | null];
  const lines = stdout.trimEnd().split('\n').filter(Boolean).map((l) => JSON.parse(l) as LogLine);
  return { code, lines, stderr };
}

/** Processes whose working directory lies under `dir` (a server left running there). */
function processesUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/cwd`).startsWith(dir)) pids.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

/**
 * Waits until the drill's restore is under way: a backend of the throwaway server shows COPY in
 * its process title (pg_restore loading a table). Not a fixed wait after the server is up: on a
 * fast machine the whole drill had ended inside one. If the wait fails the drill is killed, so the
 * temp directory's removal does not race a running server.
 */
async function restoreUnderWay(scratch: string, child: ChildProcess): Promise<void> {
  const copying = () =>
    processesUnder(scratch).some((pid) => {
      try {
        return / COPY\b/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
      } catch {
        return false; // gone between the look and the read
      }
    });
  const deadline = Date.now() + 120_000;
  while (!copying()) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`the drill never started restoring (worker exit code ${child.exitCode})`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

const reportOf = (run: WorkerRun): DrillReport => {
  const last = run.lines[run.lines.length - 1];
  expect(last.msg).toBe('drill finished');
  return last.report as DrillReport;
};

describe('drill worker: PostgreSQL logical', () => {
  const pg = usePostgres();
  const tmp = useTempDir('tidemark-drill-');
  let spool: string;

  const configFor = (name: string, assertions?: TidemarkConfigInput['sources'][string]['drill']): TidemarkConfigInput => ({
    repository: `file://${tmp.path}/repo-${name}`,
    encryption: { key: 'env:TIDEMARK_TEST_KEY' },
    sources: { app: { engine: 'postgres', url: pg.url('app'), rto: '10m', rpo: '1d', ...(assertions ? { drill: assertions } : {}) } },
  });
  const env = (config: TidemarkConfigInput) => ({ TIDEMARK_CONFIG_JSON: JSON.stringify(config), TIDEMARK_SPOOL: spool });
  const backup = (config: TidemarkConfigInput) => runBackup(parseConfig(JSON.stringify(config), 'test'), 'app', { type: 'logical', progress });
  const drill = (config: TidemarkConfigInput, id: string, extra: string[] = []) =>
    finished(spawnWorker(['drill', 'app', '--id', id, ...(extra.includes('--target') ? [] : ['--target', 'latest']), '--kind', 'manual', '--started-at', new Date().toISOString(), ...extra], env(config)));

  beforeAll(async () => {
    chmodSync(tmp.path, 0o755);
    spool = join(tmp.path, 'spool');
    await pg.createDatabase('app');
    await loadSampleData(pg.url('app'), { pgbenchScale: 1, toastMegabytes: 2 });
  }, 300_000);

  it('passes: recorded checksums equal, pg_amcheck clean, the assertion holds, RTO and RPO measured, report written once, nothing left', async () => {
    const config = configFor('pass', { assertions: [{ name: 'accounts', sql: 'select count(*) from pgbench_accounts', expect: 100000 }] });
    const made = await backup(config);
    const run = await drill(config, '20261201T080000Z-aaaaaa');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = reportOf(run);
    expect(report).toMatchObject({ ok: true, source: 'app', engine: 'postgres', method: 'pg-logical', kind: 'manual', backupId: made.id, cleanedUp: true, rtoObjectiveSeconds: 600, rpoObjectiveSeconds: 86400 });
    expect(report.error).toBeUndefined();
    const checks = Object.fromEntries(report.checks.map((c) => [c.name, c]));
    expect(checks['recorded checksums']).toMatchObject({ ok: true });
    expect(checks['recorded checksums'].detail).toMatch(/^\d+ tables equal to backup \S+'s record \(\d+ exact\)$/);
    expect(checks['pg_amcheck']).toMatchObject({ ok: true });
    expect(checks['assertion: accounts']).toMatchObject({ ok: true });
    expect(checks['restored point']).toMatchObject({ ok: true });
    expect(checks['rto objective']).toMatchObject({ ok: true });
    expect(report.rtoSeconds).toBeGreaterThan(0);
    expect(report.rpoSeconds).toBeGreaterThan(0);
    expect(report.rpoSeconds!).toBeLessThan(600);
    // The immutable record in the repository is the one printed.
    const stored = JSON.parse(readFileSync(join(tmp.path, 'repo-pass', 'app', 'drills', '20261201T080000Z-aaaaaa.json'), 'utf8'));
    expect(stored).toEqual(report);
    expect(existsSync(join(spool, 'drills', '20261201T080000Z-aaaaaa'))).toBe(false);

    // A second drill predicts its RTO from the first.
    const again = reportOf(await drill(config, '20261201T080100Z-bbbbbb'));
    expect(again.ok).toBe(true);
    expect(again.predictedRtoSeconds).toBeGreaterThan(0);
  });

  it('bounded checksums: above drill.tableChecksums.exactMiB a table is hashed on key ranges of about sampleMiB, recorded as such, and the drill repeats it', async () => {
    const config = configFor('sampled', { tableChecksums: { exactMiB: 1, sampleMiB: 1 } });
    const made = await backup(config);
    const manifest = JSON.parse(readFileSync(join(tmp.path, 'repo-sampled', 'app', 'backups', made.id, 'manifest.json'), 'utf8')).manifest;
    const recorded = manifest.details.tableChecksums;
    expect(recorded).toMatchObject({ method: 'row-hashtext-sum/1', exactBytes: 1024 * 1024 });
    // pgbench_accounts at scale 1 is ~13 MiB: 16 ranges of aid together about 1 MiB of it.
    const accounts = recorded.tables['public.pgbench_accounts'];
    expect(accounts).toMatchObject({ sample: { key: ['aid'], ranges: expect.any(Array) } });
    expect(accounts.sample.ranges).toHaveLength(16);
    expect(accounts.rows).toBeGreaterThan(100000 / 20);
    expect(accounts.rows).toBeLessThan(100000 / 8);
    expect(recorded.tables['public.pgbench_branches']).toEqual({ rows: 1, sum: expect.stringMatching(/^-?\d+$/) });
    const report = reportOf(await drill(config, '20261201T080050Z-ffffff'));
    expect(report.ok).toBe(true);
    expect(report.checks.find((c) => c.name === 'recorded checksums')!.detail).toMatch(/equal to backup \S+'s record \(\d+ exact, \d+ on a key sample\)/);
  });

  it('a random time on a source without continuous archive lands on the newest backup before it', async () => {
    const config = configFor('random');
    const made = await backup(config);
    const drawn = new Date(Date.now() + 1000).toISOString();
    const report = reportOf(await drill(config, '20261201T080150Z-abcdef', ['--target', drawn, '--random']));
    expect(report).toMatchObject({ ok: true, method: 'pg-logical', backupId: made.id, target: { kind: 'time', random: true } });
    expect(report.target.kind === 'time' && report.target.at < drawn).toBe(true);
    expect(report.checks.find((c) => c.name === 'recorded checksums')?.ok).toBe(true);
  });

  it('an assertion that fails: exit 4, report ok:false naming it, no server left, scratch dir removed', async () => {
    const config = configFor('fail', { assertions: [{ name: 'impossible', sql: 'select count(*) from pgbench_branches', expect: 42 }] });
    await backup(config);
    const id = '20261201T080200Z-cccccc';
    const run = await drill(config, id);
    expect(run.code).toBe(4);
    const report = reportOf(run);
    expect(report.ok).toBe(false);
    expect(report.cleanedUp).toBe(true);
    expect(report.rtoSeconds).toBeUndefined();
    expect(report.checks.find((c) => c.name === 'assertion: impossible')).toMatchObject({ ok: false, detail: 'got "1", expected 42' });
    expect(report.error).toMatch(/^check failed: assertion: impossible/);
    expect(existsSync(join(spool, 'drills', id))).toBe(false);
    expect(processesUnder(join(spool, 'drills', id))).toEqual([]);
  });

  it('a corrupted dump: the drill fails naming the object, the report says so, teardown ran', async () => {
    const config = configFor('corrupt');
    const made = await backup(config);
    const dump = join(tmp.path, 'repo-corrupt', 'app', 'backups', made.id, 'dump');
    const bytes = readFileSync(dump);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    writeFileSync(dump, bytes);
    const id = '20261201T080300Z-dddddd';
    const run = await drill(config, id);
    expect(run.code).toBe(3);
    const report = reportOf(run);
    expect(report).toMatchObject({ ok: false, cleanedUp: true, backupId: made.id });
    expect(report.error).toMatch(new RegExp(`object dump`));
    expect(existsSync(join(spool, 'drills', id))).toBe(false);
    expect(processesUnder(join(spool, 'drills', id))).toEqual([]);
  });

  it('the worker SIGKILLed mid-restore leaves its server; drill-cleanup stops it and removes the dir', async () => {
    await pg.createDatabase('big');
    await loadSampleData(pg.url('big'), { pgbenchScale: 4, toastMegabytes: 40 });
    const config: TidemarkConfigInput = { ...configFor('killed'), sources: { app: { engine: 'postgres', url: pg.url('big') } } };
    await backup(config);
    const id = '20261201T080400Z-eeeeee';
    const scratch = join(spool, 'drills', id);
    const child = spawnWorker(['drill', 'app', '--id', id, '--target', 'latest', '--kind', 'manual', '--started-at', new Date().toISOString()], env(config));
    const done = finished(child);
    await restoreUnderWay(scratch, child);
    child.kill('SIGKILL');
    await done;
    const postmaster = Number(readFileSync(join(scratch, 'pg', 'pgdata', 'postmaster.pid'), 'utf8').split('\n')[0]);
    expect(processesUnder(scratch)).toContain(postmaster); // left behind, as on a dead Fargate task's host

    const cleanup = await finished(spawnWorker(['drill-cleanup', 'app', '--id', id], env(config)));
    expect(cleanup.code).toBe(0);
    expect(cleanup.lines[cleanup.lines.length - 1]).toMatchObject({ msg: 'drill cleaned up', stopped: 1, removed: true });
    expect(existsSync(scratch)).toBe(false);
    expect(processesUnder(scratch)).toEqual([]);
    expect(existsSync(`/proc/${postmaster}`)).toBe(false);

    const again = await finished(spawnWorker(['drill-cleanup', 'app', '--id', id], env(config)));
    expect(again.lines[again.lines.length - 1]).toMatchObject({ msg: 'drill cleaned up', stopped: 0, removed: false });
  });

  it('SIGTERM mid-restore (ECS stopping the task): the drill aborts, tears down, and still writes its report', async () => {
    const config: TidemarkConfigInput = { ...configFor('killed'), sources: { app: { engine: 'postgres', url: pg.url('big') } } }; // the backup of the test above
    const id = '20261201T080500Z-ababab';
    const scratch = join(spool, 'drills', id);
    const child = spawnWorker(['drill', 'app', '--id', id, '--target', 'latest', '--kind', 'manual', '--started-at', new Date().toISOString()], env(config));
    const done = finished(child);
    await restoreUnderWay(scratch, child);
    child.kill('SIGTERM');
    const run = await done;
    expect(run.code).toBe(1);
    const report = reportOf(run);
    expect(report).toMatchObject({ ok: false, cleanedUp: true, error: 'interrupted by SIGTERM' });
    expect(existsSync(scratch)).toBe(false);
    expect(processesUnder(scratch)).toEqual([]);
    expect(existsSync(join(tmp.path, 'repo-killed', 'app', 'drills', `${id}.json`))).toBe(true);
  });
});

describe('drill worker: drill-check (an instance restored by someone else, e.g. RDS) and verify', () => {
  const PASSWORD = 'drill-check-password-9c1e77';
  const pg = usePostgres({ auth: { method: 'scram-sha-256', user: 'app_owner', password: PASSWORD } });
  const tmp = useTempDir('tidemark-drill-check-');
  let config: TidemarkConfigInput;
  const env = () => ({ TIDEMARK_CONFIG_JSON: JSON.stringify(config), TIDEMARK_DRILL_PW: PASSWORD, TIDEMARK_SPOOL: join(tmp.path, 'spool') });

  beforeAll(async () => {
    process.env.TIDEMARK_DRILL_PW = PASSWORD; // the in-process backup reads it too
    await pg.createDatabase('app');
    await pg.sql('create table t (id int primary key); insert into t select generate_series(1, 42)', 'app');
    config = {
      repository: `file://${tmp.path}/repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: {
        app: {
          engine: 'postgres',
          url: `postgres://app_owner@127.0.0.1:${pg.port}/app`,
          password: 'env:TIDEMARK_DRILL_PW',
          drill: { assertions: [{ name: 'forty-two', sql: 'select count(*) from t', expect: 42 }] },
        },
      },
    };
    await runBackup(parseConfig(JSON.stringify(config), 'test'), 'app', { type: 'logical', progress });
  }, 300_000);

  it('drill-check connects with the source’s password (never printed), runs pg_amcheck and the assertions, writes the report', async () => {
    const target = new Date(Date.now() - 60_000).toISOString();
    const run = await finished(
      spawnWorker(['drill-check', 'app', '--id', '20261201T081000Z-a1a1a1', '--endpoint', `127.0.0.1:${pg.port}`, '--target', target, '--started-at', new Date().toISOString()], env()),
    );
    expect(JSON.stringify(run.lines) + run.stderr).not.toContain(PASSWORD);
    expect(run.code).toBe(0);
    const report = reportOf(run);
    expect(report).toMatchObject({ ok: true, method: 'rds', restoredPoint: target, cleanedUp: false });
    expect(report.checks.map((c) => [c.name, c.ok])).toEqual([
      ['restored point', true],
      ['pg_amcheck', true],
      ['assertion: forty-two', true],
    ]);
    expect(report.rpoSeconds).toBe(0);
    expect(existsSync(join(tmp.path, 'repo', 'app', 'drills', '20261201T081000Z-a1a1a1.json'))).toBe(true);
  });

  it('verify reads every object back: exit 0, one result line', async () => {
    const run = await finished(spawnWorker(['verify', 'app'], env()));
    expect(run.code).toBe(0);
    expect(run.lines[run.lines.length - 1]).toMatchObject({ msg: 'verify finished', result: { ok: true, backups: [expect.objectContaining({ ok: true })] } });
  });

  it('usage errors exit 2 with one line', async () => {
    const run = await finished(spawnWorker(['drill', 'app', '--id', '../x', '--target', 'latest'], env()));
    expect(run.code).toBe(2);
    expect(run.lines[run.lines.length - 1]).toMatchObject({ level: 'error', msg: expect.stringContaining('--id ../x') });
  });
});
