import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBackup } from '../../lib/core/commands/backup';
import { runList } from '../../lib/core/commands/list';
import { TidemarkConfigSchema, type TidemarkConfigInput } from '../../lib/core/config/schema';
import { fingerprintDatabaseAt } from '../../lib/core/engines/postgres/fingerprint';
import { silentProgress as progress } from '../../lib/core/progress';
import { loadSampleData } from '../../lib/local/sample-postgres';
import { usePostgres } from '../harness/postgres';
import { ROOT, useTempDir, writeConfig } from '../harness/tidemark';
import { useToolRecorder, watchProcesses, type ProcessWatchReport, type RecordedToolRun } from '../harness/tool-runs';
import { testCli, testWorker } from '../harness/bundles';

/*
 * Passwords against clusters that demand them (SCRAM over TCP): the config's env: and file:
 * references for backups (CLI and worker), the --to URL for restores. Wherever the password goes,
 * it must not be seen: in no tool's arguments or environment, no output line, no stored byte.
 */

// Distinctive cores, so a search means something; around them the characters that need escaping
// in a URL (: @ / %) and in a passfile (: \).
const SOURCE_CORE = 'SrcPw9f3Kq7Zt1xJ';
const TARGET_CORE = 'TgtPw4m8Lc2Wn6yH';
const WRONG_CORE = 'WrongPw5s0Bd8Ve3';
const SOURCE_PASSWORD = `s:${SOURCE_CORE}\\@/%'x`;
const TARGET_PASSWORD = `t@${TARGET_CORE}:/\\%`;
const WRONG_PASSWORD = `w:${WRONG_CORE}`;
const NEEDLES = [SOURCE_CORE, TARGET_CORE, WRONG_CORE];

const USER = 'tidemark_app';
const RESTORER = 'restorer';

const holdsSecret = (text: string) => NEEDLES.some((n) => text.includes(n));

interface AuditedRun {
  readonly pid: number;
  readonly cmdline: string;
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly tools: readonly RecordedToolRun[];
  readonly processes: ProcessWatchReport;
}

/** Every file under `dir` (recursively), and those whose bytes hold a secret. */
function filesHoldingSecrets(dir: string): { searched: string[]; holding: string[] } {
  const searched: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else searched.push(path);
    }
  };
  walk(dir);
  const holding = searched.filter((path) => {
    const bytes = readFileSync(path);
    return NEEDLES.some((n) => bytes.includes(n));
  });
  return { searched, holding };
}

describe('PostgreSQL with passwords (scram-sha-256)', () => {
  const source = usePostgres({ auth: { method: 'scram-sha-256', user: USER, password: SOURCE_PASSWORD }, databases: ['app'] });
  const target = usePostgres({ auth: { method: 'scram-sha-256', user: RESTORER, password: TARGET_PASSWORD } });
  const tools = useToolRecorder();
  const tmp = useTempDir('tidemark-pw-');

  const sourceUrl = () => source.url('app', USER, SOURCE_PASSWORD);
  const targetUrl = (db: string, password = TARGET_PASSWORD) => target.url(db, RESTORER, password);
  const configFor = (name: string, password: string | undefined): TidemarkConfigInput => ({
    repository: `file://${tmp.path}/${name}-repo`,
    encryption: { key: 'env:TIDEMARK_TEST_KEY' },
    sources: { app: { engine: 'postgres', url: source.url('app', USER), ...(password ? { password } : {}) } },
  });

  // The CLI and the worker run as built JavaScript, as they ship: under tsx, its esbuild service
  // would be one more child, outside Tidemark's control, that inherits the environment.
  let cliEntry = '';
  let workerEntry = '';

  /** Runs a Tidemark entry (CLI or worker) as its own process, with the tool wrappers and the /proc watch. */
  async function audited(entry: string, args: string[], env: NodeJS.ProcessEnv): Promise<AuditedRun> {
    const base = { ...process.env };
    delete base.TIDEMARK_CONFIG;
    delete base.TIDEMARK_CONFIG_JSON;
    const argv = [entry, ...args];
    const child = spawn(process.execPath, argv, {
      cwd: ROOT,
      env: { ...base, ...tools.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const watch = watchProcesses(child.pid!, NEEDLES);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const [code] = (await once(child, 'close')) as [number | null];
    const cmdline = [process.execPath, ...argv].join(' ');
    return { pid: child.pid!, cmdline, code, stdout, stderr, tools: tools.take(), processes: await watch.stop() };
  }

  const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => audited(cliEntry, args, env);
  const worker = (args: string[], env: NodeJS.ProcessEnv) => audited(workerEntry, args, env);

  /**
   * Nothing holds a password but, where `own` says so, the Tidemark process itself: its environment
   * when the password came in an env: reference, its arguments when it came in the --to URL.
   */
  function expectNoPasswordOutside(run: AuditedRun, own: 'environ' | 'cmdline' | 'nothing'): void {
    expect(holdsSecret(run.stdout)).toBe(false);
    expect(holdsSecret(run.stderr)).toBe(false);
    const passfiles: string[] = [];
    for (const tool of run.tools) {
      expect({ tool: tool.tool, args: tool.args.filter(holdsSecret) }).toEqual({ tool: tool.tool, args: [] });
      const leaked = Object.entries(tool.environ).filter(([k, v]) => holdsSecret(`${k}=${v}`)).map(([k]) => k);
      expect({ tool: tool.tool, leaked }).toEqual({ tool: tool.tool, leaked: [] });
      expect(tool.environ).not.toHaveProperty('PGPASSWORD');
      if (tool.environ.PGPASSFILE) {
        passfiles.push(tool.environ.PGPASSFILE);
        expect(tool.passfileExisted).toBe(true);
        expect(tool.environ.PGPASSFILE.startsWith(`${tools.tmpdir}/`)).toBe(true);
      }
    }
    // The passfiles are gone once the run is over, whatever its outcome.
    expect(passfiles.filter((f) => existsSync(f))).toEqual([]);
    // Node ≥ 22.1 keeps the CLI bundle's compiled code in the temp dir (cli-bundle.ts,
    // enableCompileCache): bytecode of our own code, which must hold no password either.
    const cache = join(tools.tmpdir, 'node-compile-cache');
    const cached = existsSync(cache) ? readdirSync(cache, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()) : [];
    expect(cached.filter((e) => holdsSecret(readFileSync(join(e.parentPath, e.name), 'latin1'))).map((e) => e.name)).toEqual([]);
    expect(readdirSync(tools.tmpdir).filter((name) => name !== 'node-compile-cache')).toEqual([]);
    expect(run.processes.samples).toBeGreaterThan(0);
    // A fork of the Tidemark process that has not yet exec'd its tool is still the Tidemark process.
    const elsewhere = run.processes.sightings.filter((s) => !(s.in === own && (s.pid === run.pid || s.cmdline === run.cmdline)));
    expect(elsewhere).toEqual([]);
  }

  /** The tools that must log in (not `--version` runs) got the password through a passfile. */
  function expectLoggedInWithPassfile(run: AuditedRun, expected: string[]): void {
    const logins = run.tools.filter((t) => expected.includes(t.tool) && !t.args.includes('--version'));
    expect([...new Set(logins.map((t) => t.tool))].sort()).toEqual([...expected].sort());
    for (const t of logins) expect({ tool: t.tool, passfile: t.passfileExisted }).toEqual({ tool: t.tool, passfile: true });
  }

  const passwordFile = () => join(tmp.path, 'app.password');
  /** A backup made in this process, for tests that need one to exist. */
  const existing = () => configFor('existing', `file:${passwordFile()}`);

  beforeAll(async () => {
    cliEntry = testCli();
    workerEntry = testWorker();
    writeFileSync(passwordFile(), `${SOURCE_PASSWORD}\n`, { mode: 0o600 });
    await loadSampleData(sourceUrl(), { pgbenchScale: 1, toastMegabytes: 20 });
    await runBackup(TidemarkConfigSchema.parse(existing()), 'app', { type: 'logical', progress });
  }, 180_000);

  it('the clusters let nobody in over TCP without the right password', async () => {
    expect(await source.sql('select distinct type || \' \' || auth_method from pg_hba_file_rules order by 1')).toBe('host scram-sha-256\nlocal trust');
    await expect(fingerprintDatabaseAt(source.url('app', USER))).rejects.toThrow(/password/);
    await expect(fingerprintDatabaseAt(source.url('app', USER, WRONG_PASSWORD))).rejects.toThrow(/password authentication failed for user "tidemark_app"/);
    await expect(fingerprintDatabaseAt(source.url('app'))).rejects.toThrow(/password/); // postgres has none
    await expect(fingerprintDatabaseAt(target.url('postgres', RESTORER, SOURCE_PASSWORD))).rejects.toThrow(/password authentication failed/);
    expect(Object.keys((await fingerprintDatabaseAt(sourceUrl())).tables).length).toBeGreaterThanOrEqual(10);
  });

  it('backup with password: env:NAME and restore with the password in --to: the data arrives, the password shows nowhere', async () => {
    const config = writeConfig(tmp.path, 'env.yaml', configFor('env', 'env:TIDEMARK_APP_PASSWORD'));
    const backup = await cli(['-c', config.path, '--json', 'backup', 'app', '--type', 'logical'], { TIDEMARK_APP_PASSWORD: SOURCE_PASSWORD });
    expect(backup.stderr).not.toMatch(/^tidemark: /m);
    expect(backup.code).toBe(0);
    expectNoPasswordOutside(backup, 'environ');
    expectLoggedInWithPassfile(backup, ['pg_dump', 'pg_dumpall']);
    expect(backup.tools.map((t) => t.tool)).toEqual(expect.arrayContaining(['zstd']));
    expect([...backup.processes.programs]).toEqual(expect.arrayContaining(['zstd']));
    const { id } = JSON.parse(backup.stdout) as { id: string };

    // The restore target's password can only come in the --to URL, so it is in the CLI's own argv.
    const restore = await cli(['-c', config.path, 'restore', 'app', '--backup', id, '--to', targetUrl('restored')]);
    expect(restore.stderr).not.toMatch(/^tidemark: /m);
    expect(restore.code).toBe(0);
    expect(restore.stdout).toMatch(new RegExp(`^restored ${id} into restorer@127\\.0\\.0\\.1:\\d+/restored in `));
    expectNoPasswordOutside(restore, 'cmdline');
    // psql creates the backup's roles the target lacks (tidemark_app), pg_restore the rest.
    expectLoggedInWithPassfile(restore, ['pg_restore', 'psql']);
    expect(await fingerprintDatabaseAt(targetUrl('restored'))).toEqual(await fingerprintDatabaseAt(sourceUrl()));

    const repository = filesHoldingSecrets(join(tmp.path, 'env-repo'));
    expect(repository.searched.filter((f) => f.endsWith('/manifest.json'))).toHaveLength(1);
    expect(repository.searched.some((f) => f.endsWith('/dump'))).toBe(true);
    expect(repository.holding).toEqual([]);
  });

  it.each([
    ['env:', 'environ' as const],
    ['file:', 'nothing' as const],
  ])('restore with --to-password %s: the target password is in no argument, not even the CLI’s', async (kind, own) => {
    const config = writeConfig(tmp.path, `to-${kind.slice(0, -1)}.yaml`, configFor(`to-${kind.slice(0, -1)}`, `file:${passwordFile()}`));
    const backup = await cli(['-c', config.path, '--json', 'backup', 'app', '--type', 'logical']);
    expect(backup.code).toBe(0);
    const db = `restored_${kind.slice(0, -1)}`;
    const ref = kind === 'env:' ? 'env:TIDEMARK_TARGET_PASSWORD' : `file:${join(tmp.path, 'target-password')}`;
    writeFileSync(join(tmp.path, 'target-password'), `${TARGET_PASSWORD}\n`, { mode: 0o600 });
    const env = kind === 'env:' ? { TIDEMARK_TARGET_PASSWORD: TARGET_PASSWORD } : {};
    const restore = await cli(['-c', config.path, 'restore', 'app', '--to', target.url(db, RESTORER), '--to-password', ref], env);
    expect(restore.stderr).not.toMatch(/^tidemark: /m);
    expect(restore.code).toBe(0);
    expectNoPasswordOutside(restore, own);
    expectLoggedInWithPassfile(restore, ['pg_restore']); // psql only runs when the target lacks a role
    expect(await fingerprintDatabaseAt(targetUrl(db))).toEqual(await fingerprintDatabaseAt(sourceUrl()));
    // Given twice is refused before anything happens.
    const twice = await cli(['-c', config.path, 'restore', 'app', '--to', targetUrl(`${db}_twice`), '--to-password', ref], env);
    expect([twice.code, twice.stderr.trim()]).toEqual([2, 'tidemark: the target password is given twice: keep it in --to-password and out of the --to URL']);
  });

  it('backup with password: file:/path: the password shows nowhere, not even in the CLI’s environment', async () => {
    const config = writeConfig(tmp.path, 'file.yaml', configFor('file', `file:${passwordFile()}`));
    const backup = await cli(['-c', config.path, '--json', 'backup', 'app', '--type', 'logical']);
    expect(backup.stderr).not.toMatch(/^tidemark: /m);
    expect(backup.code).toBe(0);
    expectNoPasswordOutside(backup, 'nothing');
    expectLoggedInWithPassfile(backup, ['pg_dump', 'pg_dumpall']);
    expect((await runList(config.config, 'app')).backups.map((b) => b.id)).toEqual([(JSON.parse(backup.stdout) as { id: string }).id]);
    expect(filesHoldingSecrets(join(tmp.path, 'file-repo')).holding).toEqual([]);
  });

  describe('a wrong or missing password: one line on stderr, a non-zero exit, nothing stored or created', () => {
    it.each<[string, () => { args: string[]; env: NodeJS.ProcessEnv }, RegExp]>([
      [
        'backup, password: env:NAME',
        () => ({
          args: ['-c', writeConfig(tmp.path, 'wrong-env.yaml', configFor('wrong-env', 'env:TIDEMARK_APP_PASSWORD')).path, 'backup', 'app', '--type', 'logical'],
          env: { TIDEMARK_APP_PASSWORD: WRONG_PASSWORD },
        }),
        /^tidemark: source 'app': cannot connect to 127\.0\.0\.1:\d+ as tidemark_app: password authentication failed for user "tidemark_app"$/,
      ],
      [
        'backup, password: file:/path',
        () => {
          writeFileSync(join(tmp.path, 'wrong.password'), WRONG_PASSWORD);
          const config = writeConfig(tmp.path, 'wrong-file.yaml', configFor('wrong-file', `file:${join(tmp.path, 'wrong.password')}`));
          return { args: ['-c', config.path, 'backup', 'app', '--type', 'logical'], env: {} };
        },
        /^tidemark: source 'app': cannot connect to 127\.0\.0\.1:\d+ as tidemark_app: password authentication failed for user "tidemark_app"$/,
      ],
      [
        'backup, no password configured',
        () => ({ args: ['-c', writeConfig(tmp.path, 'none.yaml', configFor('none', undefined)).path, 'backup', 'app', '--type', 'logical'], env: {} }),
        /^tidemark: source 'app': cannot connect to 127\.0\.0\.1:\d+ as tidemark_app: the server asks for a password and none was given$/,
      ],
      [
        'restore, wrong password in --to',
        () => ({ args: ['-c', writeConfig(tmp.path, 'existing.yaml', existing()).path, 'restore', 'app', '--to', targetUrl('never_created', WRONG_PASSWORD)], env: {} }),
        /^tidemark: restore target: cannot connect to 127\.0\.0\.1:\d+ as restorer: password authentication failed for user "restorer"$/,
      ],
      [
        'restore, no password in --to',
        () => ({ args: ['-c', writeConfig(tmp.path, 'existing.yaml', existing()).path, 'restore', 'app', '--to', target.url('never_created', RESTORER)], env: {} }),
        /^tidemark: restore target: cannot connect to 127\.0\.0\.1:\d+ as restorer: the server asks for a password and none was given$/,
      ],
    ])('%s', async (_name, setup, message) => {
      const { args, env } = setup();
      const run = await cli(args, env);
      expect(run.stdout).toBe('');
      expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(run.stderr.trimEnd()).toMatch(message);
      expect(run.code).toBe(1);
      expectNoPasswordOutside(run, args.includes('restore') ? 'cmdline' : 'environ');
      expect(await target.sql("select count(*) from pg_database where datname = 'never_created'")).toBe('0');
    });

    it('leaves no backup behind', () => {
      // Nothing is written before the source answered: not even the repository's marker.
      for (const name of ['wrong-env', 'wrong-file', 'none']) expect({ name, exists: existsSync(join(tmp.path, `${name}-repo`)) }).toEqual({ name, exists: false });
    });
  });

  describe('worker entry (containers/worker/main.ts), the password in the env var an ECS secret fills', () => {
    const onAws = (name: string, password: string) => ({
      TIDEMARK_CONFIG_JSON: JSON.stringify(configFor(name, 'env:TIDEMARK_SECRET_APP')),
      TIDEMARK_SECRET_APP: password,
    });
    const jsonLines = (stdout: string) => stdout.trimEnd().split('\n').map((line) => JSON.parse(line) as { level: string; msg: string; error?: string });

    it('backs up, and the password reaches no tool, no log line and no stored byte', async () => {
      const run = await worker(['backup', 'app', '--type', 'logical'], onAws('worker', SOURCE_PASSWORD));
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const lines = jsonLines(run.stdout);
      expect(lines[lines.length - 1]).toMatchObject({ level: 'info', msg: 'backup committed' });
      expectNoPasswordOutside(run, 'environ');
      expectLoggedInWithPassfile(run, ['pg_dump', 'pg_dumpall']);
      // ECS's secret variable is not passed on to the tools.
      for (const tool of run.tools) expect(tool.environ).not.toHaveProperty('TIDEMARK_SECRET_APP');
      expect(filesHoldingSecrets(join(tmp.path, 'worker-repo')).holding).toEqual([]);
    });

    it('a wrong password exits 1 with one JSON error line naming the problem', async () => {
      const run = await worker(['backup', 'app', '--type', 'logical'], onAws('worker-wrong', WRONG_PASSWORD));
      expect(run.code).toBe(1);
      const errors = jsonLines(run.stdout).filter((l) => l.level === 'error');
      expect(errors).toEqual([
        expect.objectContaining({
          msg: expect.stringMatching(/^source 'app': cannot connect to 127\.0\.0\.1:\d+ as tidemark_app: password authentication failed for user "tidemark_app"$/),
          error: 'DatabaseUnreachable',
        }),
      ]);
      expectNoPasswordOutside(run, 'environ');
    });
  });
});
