import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBackup } from '../../lib/core/commands/backup';
import { runRestore } from '../../lib/core/commands/restore';
import { pgBin } from '../../lib/core/engines/postgres/tools';
import { IntegrityError } from '../../lib/core/errors';
import { runTool } from '../../lib/core/process/tool';
import { silentProgress as progress } from '../../lib/core/progress';
import { loadSampleData } from '../../lib/local/sample-postgres';
import { usePostgres } from '../harness/postgres';
import { node22 } from '../harness/bundles';
import { runCli, useTempDir, writeConfig } from '../harness/tidemark';

jest.setTimeout(300_000);

/**
 * A physical restore of a damaged pack fails with the object named, and the target is left as it
 * was found. Two ways into place (restore.ts): where node has no zstd of its own (Node 20, this
 * process) a pack's blocks come out of its plaintext only once the whole pack has passed every
 * check; on Node 22 (the worker image's runtime: the CLI run on it below) they stream into place as
 * they pass their GCM tags, and a pack that fails later fails the restore, whose clean-up empties
 * the target. pg_verifybackup checks every restored file against the backup's own manifest.
 */
describe('physical restore of a damaged pack', () => {
  const source = usePostgres({ dataChecksums: true, settings: { autovacuum: 'off' } });
  const tmp = useTempDir();
  let full = '';
  let incr = '';

  const repoOf = (name: string) => join(tmp.path, `${name}-repo`);
  const configFileFor = (name: string) =>
    writeConfig(tmp.path, `${name}.yaml`, {
      repository: `file://${repoOf(name)}`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: source.url('app') } },
    });
  const configFor = (name: string) => configFileFor(name).config;

  /** A copy of the good repository with one byte of the full backup's first pack flipped at `at(size)`. */
  function damagedCopy(name: string, at: (size: number) => number): void {
    cpSync(repoOf('good'), repoOf(name), { recursive: true });
    const pack = join(repoOf(name), 'app', 'backups', full, 'pack-00001');
    const bytes = readFileSync(pack);
    bytes[at(bytes.length)] ^= 0x01;
    writeFileSync(pack, bytes);
  }

  beforeAll(async () => {
    await source.createDatabase('app');
    await loadSampleData(source.url('app'), { pgbenchScale: 1, toastMegabytes: 2 });
    const config = configFor('good');
    full = (await runBackup(config, 'app', { type: 'full', progress })).id;
    await source.sql('UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid BETWEEN 1000 AND 3000', 'app');
    incr = (await runBackup(config, 'app', { type: 'incr', progress })).id;
    expect(readdirSync(join(repoOf('good'), 'app', 'backups', full)).filter((f) => f.startsWith('pack-')).length).toBeGreaterThan(0);
  }, 300_000);

  it('restores the chain whole: pg_verifybackup checks every file against the backup manifest', async () => {
    const dir = join(tmp.path, 'restored');
    await runRestore(configFor('good'), 'app', { to: dir, backup: incr, progress });
    await runTool(pgBin('pg_verifybackup'), [dir]);
    expect(readdirSync(dir)).not.toContain('.tidemark-restore'); // the scratch space went with the work lists
  });

  it('fails when a byte in the middle of a pack is flipped, naming the pack, and leaves an empty target empty', async () => {
    damagedCopy('middle', (size) => Math.floor(size / 2));
    const dir = join(tmp.path, 'into-empty');
    mkdirSync(dir);
    const restore = runRestore(configFor('middle'), 'app', { to: dir, backup: incr, progress });
    await expect(restore).rejects.toThrow(IntegrityError);
    await expect(restore).rejects.toThrow(new RegExp(`backup ${full} object pack-00001: segment \\d+ failed authentication`));
    expect(readdirSync(dir)).toEqual([]);
  });

  it('fails when the final tag of a pack is damaged, and a target that did not exist is not left behind', async () => {
    damagedCopy('tail', (size) => size - 1);
    const dir = join(tmp.path, 'into-new');
    const restore = runRestore(configFor('tail'), 'app', { to: dir, backup: incr, progress });
    await expect(restore).rejects.toThrow(new RegExp(`backup ${full} object pack-00001: segment \\d+ failed authentication: the object is corrupted or truncated`));
    expect(existsSync(dir)).toBe(false);
  });

  describe('on Node 22: packs stream into place (zlib\'s zstd)', () => {
    const restoreOn22 = (name: string, dir: string) => runCli(['restore', 'app', '--backup', incr, '--to', dir, '--config', configFileFor(name).path], {}, undefined, node22());

    it('restores the chain whole, equal to the restore that goes through scratch files', async () => {
      // This process's restore to compare with, made here: the test does not lean on another's directory.
      const reference = join(tmp.path, 'reference-22');
      await runRestore(configFor('good'), 'app', { to: reference, backup: incr, progress });
      const dir = join(tmp.path, 'restored-22');
      const run = await restoreOn22('good', dir);
      expect([run.code, run.stderr]).toEqual([0, expect.any(String)]);
      await runTool(pgBin('pg_verifybackup'), [dir]);
      expect(readdirSync(dir)).not.toContain('.tidemark-restore');
      // Byte for byte what this process's restore (Node 20's scratch files, or the same path on 22) wrote.
      await runTool('diff', ['-r', '-q', reference, dir]);
    });

    it('fails on a flipped byte in the middle of a pack, naming it, and leaves an empty target empty', async () => {
      damagedCopy('middle-22', (size) => Math.floor(size / 2));
      const dir = join(tmp.path, 'into-empty-22');
      mkdirSync(dir);
      const run = await restoreOn22('middle-22', dir);
      expect(run.code).not.toBe(0);
      expect(run.stderr.trimEnd().split('\n').pop()).toMatch(new RegExp(`backup ${full} object pack-00001: segment \\d+ failed authentication`));
      expect(readdirSync(dir)).toEqual([]);
    });

    it('fails on a damaged final tag, naming the pack, and removes the target it made', async () => {
      damagedCopy('tail-22', (size) => size - 1);
      const dir = join(tmp.path, 'into-new-22');
      const run = await restoreOn22('tail-22', dir);
      expect(run.code).not.toBe(0);
      expect(run.stderr.trimEnd().split('\n').pop()).toMatch(new RegExp(`backup ${full} object pack-00001: segment \\d+ failed authentication: the object is corrupted or truncated`));
      expect(existsSync(dir)).toBe(false);
    });
  });
});
