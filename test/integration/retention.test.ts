import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBackup } from '../../lib/core/commands/backup';
import { runList } from '../../lib/core/commands/list';
import { runRestore } from '../../lib/core/commands/restore';
import { runRetention, type RetentionResult } from '../../lib/core/commands/retention';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import { newBackupId } from '../../lib/core/repository/backup-id';
import { leaseBytes } from '../../lib/core/repository/lease';
import { openStore } from '../../lib/core/repository/open-store';
import { silentProgress as progress } from '../../lib/core/progress';
import { usePostgres } from '../harness/postgres';
import { useS3 } from '../harness/s3';
import { runCli, useTempDir, writeConfig } from '../harness/tidemark';

/**
 * Retention end to end on a folder and on s3rver: logical backups made through the real backup
 * path shrink to exactly the planned set, kept ones still restore, the leftovers of a backup that
 * died go, and the parts of a backup still running (its lease) stay.
 */
describe('tidemark retention', () => {
  const pg = usePostgres();
  const s3 = useS3();
  const tmp = useTempDir();

  beforeAll(async () => {
    await pg.createDatabase('app');
    await pg.sql('CREATE TABLE items (id int primary key, note text)', 'app');
  }, 60_000);

  const configFor = (name: string, repository: unknown, retention: Record<string, unknown>) =>
    writeConfig(tmp.path, `${name}.yaml`, {
      repository: repository as string,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      retention: { longTerm: { daily: 0, weekly: 0, monthly: 0, yearly: 0 }, ...retention } as never,
      sources: { app: { engine: 'postgres', url: pg.url('app') } },
    });

  /** `count` backups, a row more in each, so a restore shows which one it came from. */
  async function backups(config: TidemarkConfig, count: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) {
      await pg.sql(`INSERT INTO items SELECT coalesce(max(id), 0) + 1, 'row' FROM items`, 'app');
      ids.push((await runBackup(config, 'app', { type: 'logical', progress })).id);
    }
    return ids;
  }

  const rows = async (db: string) => Number(await pg.sql('select count(*) from items', db));

  /** A backup that died 3 days ago (no lease, no manifest) and one running now (its lease just written). */
  async function unfinished(config: TidemarkConfig): Promise<{ dead: string; running: string }> {
    const store = openStore(config.repository);
    const dead = newBackupId(new Date(Date.now() - 3 * 86_400_000));
    const running = newBackupId();
    await store.put(`app/backups/${dead}/dump`, Buffer.alloc(1000, 1));
    await store.put(`app/backups/${running}/lease.json`, leaseBytes(running, new Date().toISOString()));
    await store.put(`app/backups/${running}/dump`, Buffer.alloc(1000, 2));
    return { dead, running };
  }

  it.each([
    ['a folder', 'folder', 12, { logical: 5 }],
    ['S3', 's3', 10, { logical: 3 }],
  ])('shrinks %s to exactly the planned set; kept backups restore; only dead leftovers go', async (_kind, name, count, retention) => {
    const repository = name === 's3' ? s3.repository('retention') : `file://${tmp.path}/${name}-repo`;
    const cfg = configFor(name, repository, retention);
    const made = await backups(cfg.config, count);
    const { dead, running } = await unfinished(cfg.config);

    // The dry run plans: the newest `logical` backups stay, the rest and the dead leftovers go.
    const dry = await runRetention(cfg.config, 'app');
    const plan = dry.sources[0];
    const keep = made.slice(-retention.logical);
    expect(plan.keep.map((k) => k.id).sort()).toEqual(keep);
    expect(plan.delete.filter((d) => d.what === 'backup').map((d) => d.id).sort()).toEqual(made.slice(0, -retention.logical));
    expect(plan.delete.filter((d) => d.what === 'unfinished').map((d) => d.id)).toEqual([dead]);
    for (const d of plan.delete) expect(d.reason).not.toBe('');
    expect(plan.bytesFreed).toBeGreaterThan(0);
    // Nothing changed yet.
    expect((await runList(cfg.config, 'app')).backups).toHaveLength(count);

    if (name === 'folder') {
      // People get a table: what, why, bytes freed; and are told nothing happened.
      const table = await runCli(['retention', 'app', '--config', cfg.path]);
      expect(table.code).toBe(0);
      expect(table.stdout).toMatch(new RegExp(`^app: keeps ${retention.logical} backups; would delete \\d`, 'm'));
      expect(table.stdout).toMatch(new RegExp(`backup ${made[0]}\\s+[\\d.]+ [KM]?i?B\\s+logical backup .* is outside the policy`));
      expect(table.stdout).toMatch(new RegExp(`unfinished ${dead}\\s+.*parts of a backup that never finished`));
      expect(table.stdout).toMatch(/dry run: nothing was deleted \(use --apply\)$/m);
      const usage = await runCli(['retention', '--config', cfg.path]);
      expect([usage.code, usage.stderr.trim()]).toEqual([2, 'tidemark: name one source or give --all']);
    }

    // Apply (through the CLI on the folder, as operators run it): exactly the planned set is left.
    let applied: RetentionResult;
    if (name === 'folder') {
      const cli = await runCli(['retention', 'app', '--apply', '--json', '--config', cfg.path]);
      expect(cli.stderr).toBe('');
      expect(cli.code).toBe(0);
      applied = JSON.parse(cli.stdout) as RetentionResult;
    } else {
      applied = await runRetention(cfg.config, 'app', { apply: true });
    }
    expect(applied.applied).toBe(true);
    expect(applied.sources[0].delete.map((d) => d.id)).toEqual(plan.delete.map((d) => d.id));
    const after = await runList(cfg.config, 'app');
    expect(after.backups.map((b) => b.id)).toEqual(keep);
    expect(after.incomplete).toEqual([running]);
    const store = openStore(cfg.config.repository);
    expect((await store.list(`app/backups/${dead}/`)).objects).toEqual([]);
    expect((await store.list(`app/backups/${running}/`)).objects.map((o) => o.key.split('/').pop()).sort()).toEqual(['dump', 'lease.json']);
    // Each committed backup carries the lease it held while it ran.
    expect((await store.list(`app/backups/${keep[0]}/`)).objects.map((o) => o.key.split('/').pop())).toContain('lease.json');

    // Planning again right away finds nothing more to do.
    const again = await runRetention(cfg.config, 'app');
    expect(again.sources[0].delete).toEqual([]);

    // The oldest and the newest kept backups restore, each with its own rows.
    for (const id of [keep[0], keep[keep.length - 1]]) {
      const db = `r_${name}_${made.indexOf(id)}`;
      await runRestore(cfg.config, 'app', { to: pg.url(db), backup: id, progress });
      expect(await rows(db)).toBe(await rowsAt(made, id));
    }
  }, 240_000);

  /** Backups are made one after another with one row more each: the n-th holds the rows inserted before it. */
  async function rowsAt(made: string[], id: string): Promise<number> {
    const total = await rows('app');
    return total - (made.length - 1 - made.indexOf(id));
  }

  it('refuses an invalid policy before anything is read, naming the key', async () => {
    const cfg = join(tmp.path, 'bad.yaml');
    writeFileSync(
      cfg,
      [
        `repository: file://${tmp.path}/bad-repo`,
        'encryption: { key: env:TIDEMARK_TEST_KEY }',
        'tiers: { warmAfterDays: 60, coldAfterDays: 70 }',
        'sources: { app: { engine: postgres, url: "postgres://u@h:5432/app" } }',
      ].join('\n'),
    );
    mkdirSync(join(tmp.path, 'bad-repo'), { recursive: true });
    const cli = await runCli(['retention', '--all', '--config', cfg]);
    expect(cli.code).toBe(2);
    expect(cli.stderr).toMatch(/tiers\.coldAfterDays: .*STANDARD_IA at least 30 days/);
    expect(existsSync(join(tmp.path, 'bad-repo', 'app'))).toBe(false);
  }, 60_000);
});
