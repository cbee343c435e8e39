import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runList } from '../../lib/core/commands/list';
import { TidemarkConfigSchema, type TidemarkConfigInput } from '../../lib/core/config/schema';
import { JsonProgress } from '../../lib/core/json-progress';
import { loadSampleData } from '../../lib/local/sample-postgres';
import { usePostgres } from '../harness/postgres';
import { ROOT, useTempDir, waitForUploadInFlight, writeConfig } from '../harness/tidemark';
import { testWorker } from '../harness/bundles';

/**
 * The worker entry as ECS runs it: its own process, argv from the task's command, the config in
 * TIDEMARK_CONFIG_JSON and the password in the env var an ECS secret fills. Once through tsx and
 * once as the esbuild bundle the Dockerfile builds (with the Dockerfile's own esbuild line).
 */

/** Trust auth ignores it; it must never show up in the output. */
const PASSWORD = 'db-password-never-logged-7f3a9c';

interface WorkerRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

type LogLine = { level: string; msg: string; [key: string]: unknown };

/** Every stdout line parsed as JSON: a line that is not JSON fails the test. */
function logLines(stdout: string): LogLine[] {
  const lines = stdout.trimEnd().split('\n').map((line) => JSON.parse(line) as LogLine);
  for (const line of lines) {
    expect(typeof line.level).toBe('string');
    expect(typeof line.msg).toBe('string');
  }
  return lines;
}

function spawnWorker(entry: string[], args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  const base = { ...process.env };
  delete base.TIDEMARK_CONFIG;
  delete base.TIDEMARK_CONFIG_JSON;
  return spawn(process.execPath, [...entry, ...args], { cwd: ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

async function finished(child: ChildProcess): Promise<WorkerRun> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

const runWorker = (entry: string[], args: string[], env: NodeJS.ProcessEnv) => finished(spawnWorker(entry, args, env));

describe('JsonProgress: the worker’s progress lines', () => {
  it('writes one JSON line per step event, and at most one progress line per interval', () => {
    let now = 1_000;
    const out: string[] = [];
    const progress = new JsonProgress({ write: (line) => out.push(line), fields: { source: 'app', type: 'logical' }, now: () => now });
    progress.start('dump', 1000);
    for (; now <= 36_000; now += 100) progress.advance(2);
    progress.stop();
    progress.stop(); // a second stop has nothing to report
    progress.note('verifying');

    for (const line of out) expect(line).toMatch(/^\{[^\n]*\}\n$/);
    const lines = out.map((line) => JSON.parse(line));
    expect(lines.map((l) => l.msg)).toEqual(['dump started', 'dump progress', 'dump progress', 'dump progress', 'dump ended', 'verifying']);
    for (const line of lines) expect(line).toMatchObject({ level: 'info', source: 'app', type: 'logical', time: expect.any(String) });
    expect(lines[0]).toMatchObject({ step: 'dump', totalBytes: 1000 });
    expect(lines[1]).toMatchObject({ step: 'dump', bytes: 202, totalBytes: 1000, percent: 20, bytesPerSecond: 20 });
    expect(lines[3]).toMatchObject({ bytes: 602, percent: 60 });
    expect(lines[4]).toMatchObject({ step: 'dump', bytes: 702, seconds: 35.1 });
  });

  it('caps the percentage at 100 when the size was underestimated, and ignores bytes outside a step', () => {
    let now = 0;
    const out: string[] = [];
    const progress = new JsonProgress({ write: (line) => out.push(line), intervalMs: 10, now: () => now });
    progress.advance(5);
    progress.start('dump', 10);
    now = 20;
    progress.advance(50);
    expect(out.map((line) => JSON.parse(line))).toEqual([
      expect.objectContaining({ msg: 'dump started' }),
      expect.objectContaining({ msg: 'dump progress', bytes: 50, percent: 100 }),
    ]);
  });
});

describe('worker entry (containers/worker/main.ts)', () => {
  const pg = usePostgres();
  const tmp = useTempDir('tidemark-worker-');
  const TS_ENTRY = ['--import', 'tsx', join(ROOT, 'containers/worker/main.ts')];
  let bundleEntry: string[];

  const configFor = (name: string, url = pg.url('app')): TidemarkConfigInput => ({
    repository: `file://${tmp.path}/${name}-repo`,
    encryption: { key: 'env:TIDEMARK_TEST_KEY' },
    sources: { app: { engine: 'postgres', url, password: 'env:TIDEMARK_SECRET_APP' } },
  });
  const onAws = (config: TidemarkConfigInput) => ({ TIDEMARK_CONFIG_JSON: JSON.stringify(config), TIDEMARK_SECRET_APP: PASSWORD });
  const listed = async (config: TidemarkConfigInput) => (await runList(TidemarkConfigSchema.parse(config), 'app')).backups.map((b) => b.id);

  beforeAll(async () => {
    await pg.createDatabase('app');
    await loadSampleData(pg.url('app'), { pgbenchScale: 1, toastMegabytes: 2 });
    // Big enough that the dump is still streaming when SIGTERM arrives.
    await pg.createDatabase('bulk');
    await loadSampleData(pg.url('bulk'), { pgbenchScale: 3, toastMegabytes: 60 });
    // The bundle the image's ENTRYPOINT runs, built with the Dockerfile's own esbuild line.
    expect(readFileSync(join(ROOT, 'containers/worker/Dockerfile'), 'utf8')).toMatch(/^RUN npx esbuild .*--outfile=\/app\/worker\.js\b/m);
    bundleEntry = [testWorker()];
  }, 240_000);

  it.each([
    ['through tsx', () => TS_ENTRY, 'tsx'],
    ['as the Dockerfile’s esbuild bundle', () => bundleEntry, 'bundle'],
  ])('backup app --type logical %s: exit 0, JSON lines only, the result last, listed', async (_how, entry, name) => {
    const config = configFor(name);
    const run = await runWorker(entry(), ['backup', 'app', '--type', 'logical'], onAws(config));
    expect(run.stderr).not.toContain(PASSWORD);
    expect(run.code).toBe(0);
    const lines = logLines(run.stdout);
    expect(run.stdout).not.toContain(PASSWORD);
    for (const line of lines) expect(line).toMatchObject({ source: 'app', type: 'logical' });
    expect(lines[0]).toMatchObject({ level: 'info', msg: 'backup started', config: 'TIDEMARK_CONFIG_JSON' });
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['dump started', 'dump ended']));

    const last = lines[lines.length - 1];
    expect(last).toMatchObject({ level: 'info', msg: 'backup committed' });
    const result = last.result as { id: string; type: string; bytes: number; storedBytes: number; seconds: number };
    expect(Object.keys(result).sort()).toEqual(['bytes', 'id', 'seconds', 'storedBytes', 'type']);
    expect(result).toMatchObject({ type: 'logical', bytes: expect.any(Number), storedBytes: expect.any(Number), seconds: expect.any(Number) });
    expect(result.bytes).toBeGreaterThan(1024 * 1024);
    expect(await listed(config)).toEqual([result.id]);
  });

  it('backup app --type full, then incr, as the Dockerfile’s bundle: physical backups, the incr on the full', async () => {
    const config = configFor('physical');
    const ids: string[] = [];
    for (const type of ['full', 'incr']) {
      const run = await runWorker(bundleEntry, ['backup', 'app', '--type', type], onAws(config));
      expect(run.code).toBe(0);
      expect(run.stdout + run.stderr).not.toContain(PASSWORD);
      const lines = logLines(run.stdout);
      expect(lines[lines.length - 1]).toMatchObject({ level: 'info', msg: 'backup committed', result: { type } });
      ids.push((lines[lines.length - 1].result as { id: string }).id);
    }
    const backups = (await runList(TidemarkConfigSchema.parse(config), 'app')).backups;
    expect(backups.map((b) => [b.id, b.type, b.parent])).toEqual([
      [ids[0], 'full', undefined],
      [ids[1], 'incr', ids[0]],
    ]);
  });

  it('reads the config file TIDEMARK_CONFIG names when TIDEMARK_CONFIG_JSON is not set (local runs)', async () => {
    const file = writeConfig(tmp.path, 'local.yaml', configFor('local'));
    const run = await runWorker(TS_ENTRY, ['backup', 'app', '--type', 'logical'], { TIDEMARK_CONFIG: file.path, TIDEMARK_SECRET_APP: PASSWORD });
    expect(run.code).toBe(0);
    const lines = logLines(run.stdout);
    expect(lines[0]).toMatchObject({ msg: 'backup started', config: file.path });
    expect(await listed(configFor('local'))).toEqual([(lines[lines.length - 1].result as { id: string }).id]);
  });

  it('an unreachable database exits non-zero with one JSON error line naming it', async () => {
    const config = configFor('refused', 'postgres://postgres@127.0.0.1:1/app');
    const run = await runWorker(bundleEntry, ['backup', 'app', '--type', 'logical'], onAws(config));
    expect(run.code).toBe(1);
    const lines = logLines(run.stdout);
    expect(lines.filter((l) => l.level === 'error')).toEqual([
      expect.objectContaining({ msg: "source 'app': cannot connect to 127.0.0.1:1 as postgres: connection refused", error: 'DatabaseUnreachable', source: 'app' }),
    ]);
    expect(lines[lines.length - 1].stack).toBeUndefined(); // a user's problem, not a bug: no stack
    expect(await listed(config)).toEqual([]);
  });

  it('stream app archives WAL until SIGTERM, then stops cleanly with exit 0', async () => {
    const config = configFor('stream');
    const child = spawnWorker(bundleEntry, ['stream', 'app'], { ...onAws(config), TIDEMARK_SPOOL: join(tmp.path, 'spool') });
    const run = finished(child);
    let started = false;
    child.stdout!.on('data', (d: Buffer) => (started ||= d.toString().includes('streamer started')));
    for (const deadline = Date.now() + 60_000; !started && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 100));
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
      if ((await pg.sql("select count(*) from pg_replication_slots where slot_name = 'tidemark_app' and active")) === '1') break;
    }
    await pg.sql('create table if not exists stream_probe (x int); insert into stream_probe values (1); select pg_switch_wal();', 'app');
    // A completed segment (not only a partial) is archived before the stop.
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
      const runs = (await runList(TidemarkConfigSchema.parse(config), 'app').catch(() => undefined))?.archive?.runs ?? [];
      if (runs.some((r) => r.files > (r.endsInPartial ? 1 : 0))) break;
    }
    child.kill('SIGTERM');
    const { code, stdout } = await run;
    expect(code).toBe(0);
    // Log lines and EMF metric lines (which CloudWatch turns into metrics) share stdout.
    const metrics = stdout.split('\n').filter((l) => l.startsWith('{"_aws"'));
    expect(metrics.length).toBeGreaterThan(0);
    const lines = logLines(stdout.split('\n').filter((l) => !l.startsWith('{"_aws"')).join('\n'));
    expect(lines.filter((l) => l.level === 'error')).toEqual([]);
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['streamer started', 'streamer stopped; everything received is archived']));
    expect(stdout).not.toContain(PASSWORD);
    expect((await runList(TidemarkConfigSchema.parse(config), 'app')).archive?.objects).toBeGreaterThan(0);
  });

  it.each<[string, string[], NodeJS.ProcessEnv, RegExp]>([
    ['no config at all', ['backup', 'app', '--type', 'logical'], {}, /^no config: set TIDEMARK_CONFIG_JSON .* or TIDEMARK_CONFIG/],
    ['a config that is not JSON', ['backup', 'app', '--type', 'logical'], { TIDEMARK_CONFIG_JSON: '{"repository": ' }, /^TIDEMARK_CONFIG_JSON:1:\d+: /],
    ['a missing --type', ['backup', 'app'], {}, /^backup app: --type is required \(full, diff, incr, logical\)$/],
    ['an unknown command', ['restore', 'app'], {}, /^usage: backup <source> --type/],
  ])('%s exits 2 with one JSON error line', async (_name, args, env, message) => {
    const run = await runWorker(bundleEntry, args, env);
    expect(run.code).toBe(2);
    const lines = logLines(run.stdout);
    expect(lines).toHaveLength(1);
    expect(lines[0].level).toBe('error');
    expect(lines[0].msg).toMatch(message);
  });

  it('SIGTERM during a physical backup exits 143, ends its base backup connection and commits nothing', async () => {
    const config = configFor('sigterm-physical');
    const backups = join(tmp.path, 'sigterm-physical-repo/app/backups');
    const child = spawnWorker(bundleEntry, ['backup', 'app', '--type', 'full'], onAws(config));
    const run = finished(child);
    expect(await waitForUploadInFlight(backups)).toBe(true);
    child.kill('SIGTERM');

    const { code, stdout } = await run;
    expect(code).toBe(143);
    const lines = logLines(stdout);
    expect(lines[lines.length - 1]).toMatchObject({ level: 'error', msg: 'stopped by SIGTERM: nothing was committed', type: 'full' });
    expect((await runList(TidemarkConfigSchema.parse(config), 'app')).backups).toEqual([]);
    // The base backup's replication connection was closed: its walsender leaves the server.
    const sending = () => pg.sql("select count(*) from pg_stat_activity where backend_type = 'walsender'");
    for (let i = 0; i < 50 && (await sending()) !== '0'; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await sending()).toBe('0');
  });

  it('SIGTERM while the dump streams exits 143, kills pg_dump and commits nothing', async () => {
    const config = configFor('sigterm', pg.url('bulk'));
    const backups = join(tmp.path, 'sigterm-repo/app/backups');
    const child = spawnWorker(bundleEntry, ['backup', 'app', '--type', 'logical'], onAws(config));
    const run = finished(child);
    expect(await waitForUploadInFlight(backups)).toBe(true);
    child.kill('SIGTERM');

    const { code, stdout } = await run;
    expect(code).toBe(143);
    const lines = logLines(stdout);
    expect(lines.some((l) => l.level === 'warn' && /^SIGTERM: stopping/.test(l.msg))).toBe(true);
    expect(lines[lines.length - 1]).toMatchObject({ level: 'error', msg: 'stopped by SIGTERM: nothing was committed', source: 'app', type: 'logical' });
    expect(lines.some((l) => l.msg === 'backup committed')).toBe(false);

    const after = await runList(TidemarkConfigSchema.parse(config), 'app');
    expect(after.backups).toEqual([]);
    // pg_dump was killed, not left running: its session leaves the server.
    const dumping = () => pg.sql("select count(*) from pg_stat_activity where datname = 'bulk' and application_name = 'tidemark'");
    for (let i = 0; i < 50 && (await dumping()) !== '0'; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await dumping()).toBe('0');
  });
});
