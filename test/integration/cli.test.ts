import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runList } from '../../lib/core/commands/list';
import { parseConfig } from '../../lib/core/config/load';
import { loadSampleData } from '../../lib/local/sample-postgres';
import { usePostgres } from '../harness/postgres';
import { runCli, spawnCli, useTempDir, waitForUploadInFlight, writeConfig } from '../harness/tidemark';

/** The CLI as scripts use it: `--json` shapes of DESIGN.md §5, `init`, exit codes. */
describe('tidemark CLI', () => {
  const pg = usePostgres({ databases: ['app'] });
  const tmp = useTempDir();
  let config: string;

  beforeAll(async () => {
    await pg.sql('CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g;', 'app');
    config = writeConfig(tmp.path, 'tidemark.yaml', {
      repository: `file://${tmp.path}/repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: pg.url('app') } },
    }).path;
  });

  it('backup --json, list --json and verify --json print the documented shapes on stdout only', async () => {
    const backup = await runCli(['--json', '-c', config, 'backup', 'app', '--type', 'logical']);
    expect(backup.code).toBe(0);
    const b = JSON.parse(backup.stdout);
    expect(Object.keys(b).sort()).toEqual(['bytes', 'id', 'seconds', 'storedBytes', 'type']);
    expect(b).toMatchObject({ type: 'logical', id: expect.stringMatching(/^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}$/) });

    const list = await runCli(['-c', config, 'list', 'app', '--json']);
    expect(list.code).toBe(0);
    const l = JSON.parse(list.stdout);
    expect(l.backups).toEqual([
      expect.objectContaining({ id: b.id, type: 'logical', startedAt: expect.any(String), finishedAt: expect.any(String), bytes: b.bytes }),
    ]);
    expect(l.window).toEqual({ from: l.backups[0].restorePoint, to: l.backups[0].restorePoint });

    const verify = await runCli(['-c', config, '--json', 'verify', 'app']);
    expect(verify.code).toBe(0);
    expect(JSON.parse(verify.stdout)).toEqual({ ok: true, backups: [expect.objectContaining({ id: b.id, ok: true, objects: 2 })] });

    const human = await runCli(['-c', config, 'backup', 'app', '--type', 'logical']);
    expect(human.stdout.trim()).toMatch(/^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}$/); // just the id, for $(tidemark backup …)
  });

  it('init writes a commented config that validates, and refuses to overwrite it', async () => {
    const path = join(tmp.path, 'new.yaml');
    const first = await runCli(['-c', path, 'init']);
    expect(first.code).toBe(0);
    expect(existsSync(path)).toBe(true);
    const text = readFileSync(path, 'utf8');
    expect(text).toMatch(/^# /m);
    expect(() => parseConfig(text, path)).not.toThrow();
    const second = await runCli(['-c', path, 'init']);
    expect(second.code).toBe(2);
    expect(second.stderr.trim()).toBe(`tidemark: ${path} already exists (use --force to overwrite it)`);
  });

  it('usage errors exit 2 with help, an unknown backup type is refused before anything runs', async () => {
    const noType = await runCli(['-c', config, 'backup', 'app']);
    expect(noType.code).toBe(2);
    expect(noType.stderr).toMatch(/required option '-t, --type <type>' not specified/);
    const badType = await runCli(['-c', config, 'backup', 'app', '--type', 'weekly']);
    expect(badType.code).toBe(2);
    expect(badType.stderr).toMatch(/argument 'weekly' is invalid\. Allowed choices are full, diff, incr, logical/);
    // Recovery targets: a malformed one, one before the window, one that needs an archive this source lacks.
    const noZone = await runCli(['-c', config, 'restore', 'app', '--to', pg.url('x'), '--time', '2026-11-24 00:00']);
    expect([noZone.code, noZone.stderr.trim()]).toEqual([2, 'tidemark: --time 2026-11-24 00:00: expected an ISO time with a zone, e.g. 2026-12-01T02:14:00Z or 2026-12-01 03:14:00+01:00']);
    const early = await runCli(['-c', config, 'restore', 'app', '--to', pg.url('x'), '--time', '2020-11-24T00:00:00Z']);
    expect(early.code).toBe(2);
    expect(early.stderr.trim()).toMatch(/^tidemark: --time 2020-11-24T00:00:00.000Z is outside the restorable window of source 'app' \(\S+ … \S+\); see: tidemark list app$/);
    const lsn = await runCli(['-c', config, 'restore', 'app', '--to', pg.url('x'), '--lsn', '0/1A2B3C']);
    expect(lsn.code).toBe(2);
    expect(lsn.stderr.trim()).toMatch(/^tidemark: --lsn 0\/1A2B3C needs continuous archiving \(WAL or binlog\), which source 'app' does not have/);
  });

  describe('exit codes (README: 1 failed, 2 config or usage, 3 damage found, 130 interrupted)', () => {
    const configFor = (name: string, extra: { key?: string; url?: string; source?: string } = {}) =>
      writeConfig(tmp.path, `${name}.yaml`, {
        repository: `file://${tmp.path}/${name}-repo`,
        encryption: { key: extra.key ?? 'env:TIDEMARK_TEST_KEY' },
        sources: { app: { engine: 'postgres', url: extra.url ?? pg.url(extra.source ?? 'app') } },
      });
    const oneLine = (stderr: string) => expect(stderr.trimEnd().split('\n')).toHaveLength(1);

    beforeAll(async () => {
      // Big enough (~100 MB of dump, about a second to back up) that the backup is still streaming
      // when the signal arrives.
      await pg.createDatabase('big');
      await loadSampleData(pg.url('big'), { pgbenchScale: 0, toastMegabytes: 100 });
    });

    it('1 when the operation fails: unreachable database, wrong key', async () => {
      const refused = await runCli(['-c', configFor('refused', { url: 'postgres://postgres@127.0.0.1:1/app' }).path, 'backup', 'app', '--type', 'logical']);
      expect(refused.code).toBe(1);
      oneLine(refused.stderr);
      expect(refused.stderr).toMatch(/^tidemark: source 'app': cannot connect to 127\.0\.0\.1:1/);

      const keyed = configFor('keyed');
      expect((await runCli(['-c', keyed.path, 'backup', 'app', '--type', 'logical'])).code).toBe(0);
      const otherKey = { TIDEMARK_OTHER_KEY: 'another-key-that-is-long-enough-0123456789' };
      const wrong = await runCli(['-c', configFor('keyed', { key: 'env:TIDEMARK_OTHER_KEY' }).path, 'backup', 'app', '--type', 'logical'], otherKey);
      expect(wrong.code).toBe(1);
      oneLine(wrong.stderr);
      expect(wrong.stderr).toMatch(/^tidemark: wrong encryption key/);
    });

    it('2 for a config or usage error', async () => {
      const missing = await runCli(['-c', join(tmp.path, 'nope.yaml'), 'list', 'app']);
      expect(missing.code).toBe(2);
      expect(missing.stderr.trim()).toMatch(/^tidemark: config file not found: .*nope\.yaml/);
      const unknownSource = await runCli(['-c', config, 'list', 'billing']);
      expect(unknownSource.code).toBe(2);
      expect(unknownSource.stderr.trim()).toBe("tidemark: unknown source 'billing' (configured: app)");
    });

    it('3 when verify finds a corrupt object', async () => {
      const cfg = configFor('damaged');
      const backup = await runCli(['-c', cfg.path, 'backup', 'app', '--type', 'logical']);
      expect(backup.code).toBe(0);
      const dump = join(tmp.path, 'damaged-repo/app/backups', backup.stdout.trim(), 'dump');
      const bytes = readFileSync(dump);
      bytes[Math.floor(bytes.length / 2)] ^= 0x40;
      writeFileSync(dump, bytes);

      const verify = await runCli(['-c', cfg.path, 'verify', 'app']);
      expect(verify.code).toBe(3);
      expect(verify.stdout).toMatch(new RegExp(`^FAILED  ${backup.stdout.trim()}  `));
    });

    it.each(['SIGINT', 'SIGTERM'] as const)('130 with one line when %s arrives mid-stream, and nothing is committed', async (signal) => {
      const cfg = configFor(`interrupted-${signal}`, { source: 'big' });
      const child = spawnCli(['-c', cfg.path, 'backup', 'app', '--type', 'logical']);
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr += d));
      const closed = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
      expect(await waitForUploadInFlight(join(tmp.path, `interrupted-${signal}-repo/app/backups`))).toBe(true);
      child.kill(signal);

      const [code] = await closed;
      expect(code).toBe(130);
      // Progress lines aside: the notice when the signal lands, then one line saying why it stopped.
      expect(stderr.split('\n').filter((line) => line.startsWith('tidemark:'))).toEqual([
        `tidemark: ${signal}: stopping`,
        `tidemark: interrupted by ${signal}`,
      ]);
      expect(stderr.trimEnd().split('\n').at(-1)).toBe(`tidemark: interrupted by ${signal}`);
      expect((await runList(cfg.config, 'app')).backups).toEqual([]);
    });
  });
});
