import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BACKUP_TYPES } from '../../lib/core/engines/backup-types';
import { bundleCli } from '../../lib/local/cli-bundle';
import { DATA_NODE_FLAGS } from '../../lib/local/node-flags';
import { usePostgres } from '../harness/postgres';
import { ROOT, useTempDir, writeConfig, type CliResult } from '../harness/tidemark';

/**
 * The CLI as `npm run build` ships it (dist/tidemark.js: the launcher and its esbuild bundle), run
 * by node as its own process: help, the one-line errors and their exit codes, and a backup.
 */
describe('the bundled CLI', () => {
  const pg = usePostgres({ databases: ['app'] });
  const tmp = useTempDir('tidemark-cli-bundle-');
  let cli = '';

  beforeAll(() => {
    cli = bundleCli(ROOT, join(tmp.path, 'dist'));
  });

  async function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
    const started = Date.now();
    const child = spawn(process.execPath, [cli, ...args], { cwd: tmp.path, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const [code] = (await once(child, 'close')) as [number | null];
    return { code, stdout, stderr, seconds: (Date.now() - started) / 1000 };
  }

  it('--help prints the commands on stdout and exits 0; backup --help lists every backup type', async () => {
    const help = await run(['--help']);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(/^Usage: tidemark \[options\] \[command\]/);
    for (const command of ['init', 'backup', 'list', 'restore', 'verify']) expect(help.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));

    const backupHelp = await run(['backup', '--help']);
    expect(backupHelp.code).toBe(0);
    expect(backupHelp.stdout).toContain(`(choices: ${BACKUP_TYPES.map((t) => `"${t}"`).join(', ')})`);
  });

  it('runs as its own executable, its shebang starting node with DATA_NODE_FLAGS, as the image starts the worker', async () => {
    expect(readFileSync(cli, 'utf8').split('\n')[0]).toBe(`#!/usr/bin/env -S node ${DATA_NODE_FLAGS.join(' ')}`);
    const child = spawn(cli, ['--help'], { cwd: tmp.path, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    const [code] = (await once(child, 'close')) as [number | null];
    expect(code).toBe(0);
    expect(stdout).toMatch(/^Usage: tidemark /);
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(readFileSync(join(ROOT, 'containers/worker/Dockerfile'), 'utf8'))?.[1];
    expect(JSON.parse(entrypoint ?? 'null')).toEqual(['node', ...DATA_NODE_FLAGS, '/app/worker.js']);
  });

  it('fails with one line and exit code 2 on a missing or invalid config, and on a usage error', async () => {
    const missing = await run(['-c', 'nowhere.yaml', 'list', 'app']);
    expect(missing).toMatchObject({ code: 2, stdout: '' });
    expect(missing.stderr).toBe('tidemark: config file not found: nowhere.yaml (create one with: tidemark init)\n');

    writeFileSync(join(tmp.path, 'bad.yaml'), 'repository: file:///tmp/x\nsources: { app: { engine: oracle, url: "x" } }\n');
    const invalid = await run(['-c', 'bad.yaml', 'list', 'app']);
    expect(invalid).toMatchObject({ code: 2, stdout: '' });
    expect(invalid.stderr).toMatch(/^tidemark: bad\.yaml: [^\n]+\n$/);

    const usage = await run(['backup', 'app']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/required option '-t, --type <type>' not specified/);
  });

  it('takes a logical backup and lists it', async () => {
    const config = writeConfig(tmp.path, 'tidemark.yaml', {
      repository: `file://${tmp.path}/repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: pg.url('app') } },
    }).path;
    const backup = await run(['-c', config, '--json', 'backup', 'app', '--type', 'logical']);
    expect(backup.code).toBe(0);
    const { id } = JSON.parse(backup.stdout) as { id: string };
    const list = await run(['-c', config, '--json', 'list', 'app']);
    expect(list.code).toBe(0);
    expect((JSON.parse(list.stdout) as { backups: { id: string }[] }).backups.map((b) => b.id)).toEqual([id]);
  });

  const [major, minor] = process.versions.node.split('.').map(Number);
  const hasCompileCache = major > 22 || (major === 22 && minor >= 1);
  (hasCompileCache ? it : it.skip)('keeps a compile cache in the temp dir on Node 22.1 and later', async () => {
    const tmpdir = join(tmp.path, 'os-tmp');
    mkdirSync(tmpdir);
    const env = { TMPDIR: tmpdir, NODE_COMPILE_CACHE: undefined, NODE_DISABLE_COMPILE_CACHE: undefined };
    expect((await run(['--help'], env)).code).toBe(0);
    const cache = join(tmpdir, 'node-compile-cache');
    expect(existsSync(cache) && readdirSync(cache).length > 0).toBe(true);
  });
});
