import { chmodSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { runBackup } from '../../lib/core/commands/backup';
import { runList } from '../../lib/core/commands/list';
import { runRestore } from '../../lib/core/commands/restore';
import { runVerify } from '../../lib/core/commands/verify';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import { fingerprintDatabaseAt } from '../../lib/core/engines/postgres/fingerprint';
import type { PgPhysicalDetails } from '../../lib/core/engines/postgres/physical/details';
import { pageChecksum, pageChecksumIsSimd, pageChecksumJs, PAGES_PER_SEGMENT, pageLsn, relationSegment } from '../../lib/core/engines/postgres/physical/page-checksum';
import { pgBin } from '../../lib/core/engines/postgres/tools';
import { BackupNotFound, EncryptionKeyError, IntegrityError, TargetNotEmpty, UsageError } from '../../lib/core/errors';
import { runTool } from '../../lib/core/process/tool';
import { silentProgress as progress } from '../../lib/core/progress';
import { Repository } from '../../lib/core/repository/repository';
import { freePort } from '../../lib/core/free-port';
import { loadSampleData } from '../../lib/local/sample-postgres';
import { usePostgres } from '../harness/postgres';
import { useS3 } from '../harness/s3';
import { runCli, useTempDir, writeConfig } from '../harness/tidemark';
import { serverUserWhenRoot } from '../../lib/core/process/os-user';

jest.setTimeout(600_000);

/** As root, restored servers run as `postgres` (PostgreSQL refuses root). */
const serverUser = () => serverUserWhenRoot('postgres');

async function stopDataDir(dir: string): Promise<void> {
  await runTool(join(pgBin('pg_ctl')), ['-D', dir, '-m', 'fast', '-w', 'stop'], { cwd: dir, ...serverUser() }).catch(() => undefined);
}

describe('PostgreSQL physical backups: full, diff, incr, and restore into a data directory', () => {
  // No autovacuum: a vacuum of an earlier test's leftovers between two backups would make the
  // incremental-size measurement depend on timing.
  const source = usePostgres({ dataChecksums: true, settings: { autovacuum: 'off' } });
  // Another cluster, with a system identifier of its own: initdb, not the run's template.
  const other = usePostgres({ dataChecksums: true, templates: undefined });
  const secured = usePostgres({ auth: { method: 'scram-sha-256', user: 'backup', password: 'phys-Pässword:with\\odd\'chars' } });
  const s3 = useS3();
  const tmp = useTempDir();
  const started: string[] = [];
  let restores = 0;

  const configFor = (name: string, extra: Partial<{ repository: unknown; key: string; url: string }> = {}) =>
    writeConfig(tmp.path, `${name}.yaml`, {
      repository: (extra.repository as string) ?? `file://${tmp.path}/${name}-repo`,
      encryption: { key: extra.key ?? 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: extra.url ?? source.url('app') } },
    });

  const freshDir = () => join(tmp.path, `restore-${++restores}`);

  /** Restores `id` into a new directory, starts it, and returns the fingerprint of its `app` database. */
  async function restoreAndFingerprint(config: TidemarkConfig, id: string, check?: (port: number) => Promise<void>) {
    const dir = freshDir();
    const port = await freePort();
    await runRestore(config, 'app', { to: dir, backup: id, start: true, port, progress });
    started.push(dir);
    try {
      const url = `postgres://postgres@127.0.0.1:${port}/app`;
      expect(await runTool(pgBin('psql'), ['-X', '-A', '-t', '-d', url, '-c', 'select pg_is_in_recovery()'])).toBe('f\n');
      const fingerprint = await fingerprintDatabaseAt(url);
      await check?.(port);
      return fingerprint;
    } finally {
      await stopDataDir(dir);
    }
  }

  beforeAll(async () => {
    chmodSync(tmp.path, 0o755); // restored servers run as postgres and must reach their directories
    await source.createDatabase('app');
    await loadSampleData(source.url('app'), { pgbenchScale: 5, toastMegabytes: 5 });
  }, 300_000);

  afterAll(async () => {
    for (const dir of started) await stopDataDir(dir);
  }, 120_000);

  it('computes the checksum PostgreSQL stored on every page of a real cluster, as WebAssembly SIMD and in JavaScript', async () => {
    await source.sql('CHECKPOINT'); // every page on disk, nothing half-written while we read
    const db = await source.sql("select oid from pg_database where datname = 'app'", 'app');
    const dir = join(source.dataDir, 'base', db);
    let checked = 0;
    for (const name of readdirSync(dir)) {
      const segment = relationSegment(`base/${db}/${name}`);
      if (segment === undefined) continue;
      const file = readFileSync(join(dir, name));
      for (let at = 0; at + 8192 <= file.length; at += 8192) {
        const page = file.subarray(at, at + 8192);
        if (pageLsn(page) === 0 && page.every((b) => b === 0)) continue; // a new page carries no checksum
        const blockNo = segment * PAGES_PER_SEGMENT + at / 8192;
        const stored = page.readUInt16LE(8);
        if (pageChecksum(page, blockNo) !== stored || pageChecksumJs(page, blockNo) !== stored) throw new Error(`${name} page ${at / 8192}: checksum differs from PostgreSQL's ${stored}`);
        checked++;
      }
    }
    expect(pageChecksumIsSimd).toBe(true);
    expect(checked).toBeGreaterThan(5000); // pgbench scale 5 and the documents: thousands of pages
  });

  it('full → diff → incr → incr through S3: each restores, started, equal to the source at its point', async () => {
    const { config } = configFor('s3', { repository: s3.repository('physical') });
    const points: { id: string; fingerprint: Awaited<ReturnType<typeof fingerprintDatabaseAt>> }[] = [];
    const changes = [
      `UPDATE pgbench_accounts SET abalance = abalance + 7 WHERE aid BETWEEN 1000 AND 3000`,
      `INSERT INTO documents SELECT g, 'late ' || g, repeat('x', 5000) FROM generate_series(100000, 100200) g`,
      `DELETE FROM pgbench_history; UPDATE pgbench_branches SET bbalance = bbalance - 1; CREATE TABLE added_later AS SELECT g AS id FROM generate_series(1, 10000) g`,
    ];
    for (const [i, type] of (['full', 'diff', 'incr', 'incr'] as const).entries()) {
      if (i > 0) await source.sql(changes[i - 1], 'app');
      const backup = await runBackup(config, 'app', { type, progress });
      expect(backup.type).toBe(type);
      points.push({ id: backup.id, fingerprint: await fingerprintDatabaseAt(source.url('app')) });
    }
    const listed = (await runList(config, 'app')).backups;
    expect(listed.map((b) => [b.type, b.parent, b.chain?.depth])).toEqual([
      ['full', undefined, undefined],
      ['diff', points[0].id, 1],
      ['incr', points[1].id, 2],
      ['incr', points[2].id, 3],
    ]);
    expect((await runVerify(config, 'app', { progress })).ok).toBe(true);

    for (const [i, point] of points.entries()) {
      const last = i === points.length - 1;
      const fingerprint = await restoreAndFingerprint(config, point.id, async (port) => {
        if (!last) return;
        // The engine's own verifier on the newest restore: heap and every index entry.
        const out = await runTool(pgBin('pg_amcheck'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '--install-missing', '--heapallindexed', '-d', 'app']);
        expect(out.trim()).toBe('');
      });
      expect(fingerprint).toEqual(point.fingerprint);
    }
  });

  it('a deleted pack of a middle backup fails verify and restore of every backup that needs it, the others still restore', async () => {
    const { config } = configFor('missing-pack');
    const full = await runBackup(config, 'app', { type: 'full', progress });
    await source.sql('UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid BETWEEN 20000 AND 24000', 'app');
    const middle = await runBackup(config, 'app', { type: 'incr', progress });
    await source.sql('INSERT INTO pgbench_history SELECT 1, 1, 1, 1, now(), null FROM generate_series(1, 1000)', 'app');
    const newest = await runBackup(config, 'app', { type: 'incr', progress });

    const middleDir = join(tmp.path, 'missing-pack-repo', 'app', 'backups', middle.id);
    const packs = readdirSync(middleDir).filter((f) => f.startsWith('pack-'));
    expect(packs.length).toBeGreaterThan(0);
    rmSync(join(middleDir, packs[0]));

    const verified = await runVerify(config, 'app', { progress });
    expect(verified.ok).toBe(false);
    const byId = new Map(verified.backups.map((b) => [b.id, b]));
    expect(byId.get(full.id)?.ok).toBe(true);
    for (const id of [middle.id, newest.id]) {
      expect(byId.get(id)?.ok).toBe(false);
      expect(byId.get(id)?.problems.join('\n')).toContain(`pack ${packs[0]} of backup ${middle.id}`);
    }
    for (const id of [middle.id, newest.id]) {
      const dir = freshDir();
      await expect(runRestore(config, 'app', { to: dir, backup: id, progress })).rejects.toThrow(
        new RegExp(`backup ${id} needs pack ${packs[0]} of backup ${middle.id}, which is missing`),
      );
      expect(existsSync(dir)).toBe(false); // refused before anything was written
    }
    const dir = freshDir();
    await runRestore(config, 'app', { to: dir, backup: full.id, progress });
    expect(existsSync(join(dir, 'PG_VERSION'))).toBe(true);
    // The restored directory is a complete backup: pg_verifybackup checks every file and the WAL.
    await runTool(pgBin('pg_verifybackup'), [dir]);
  });

  it('takes its base backup off the replication connection (PostgreSQL ≥ 15) or through pg_basebackup (older servers): both restore and verify', async () => {
    const { config } = configFor('both-ways');
    // Off the replication connection no PostgreSQL tool is needed: none is where the tools are looked for.
    const noTools = join(tmp.path, 'no-pg-tools');
    mkdirSync(noTools);
    process.env.TIDEMARK_PG_BINDIR = noTools;
    const direct = await runBackup(config, 'app', { type: 'full', progress }).finally(() => delete process.env.TIDEMARK_PG_BINDIR);
    const detailsOf = async (id: string) => (await (await Repository.open(config)).openBackup('app', { id })).manifest.details as PgPhysicalDetails;
    expect((await detailsOf(direct.id)).pgBasebackupMajor).toBeUndefined();
    process.env.TIDEMARK_BASEBACKUP_TOOL = '1';
    const viaTool = await runBackup(config, 'app', { type: 'full', progress }).finally(() => delete process.env.TIDEMARK_BASEBACKUP_TOOL);
    expect((await detailsOf(viaTool.id)).pgBasebackupMajor).toBeGreaterThanOrEqual(15);
    const files: string[][] = [];
    for (const backup of [direct, viaTool]) {
      const dir = freshDir();
      await runRestore(config, 'app', { to: dir, backup: backup.id, progress });
      // Every file the manifest lists, its size and CRC, and the WAL from start to stop.
      await runTool(pgBin('pg_verifybackup'), [dir]);
      files.push((readdirSync(dir, { recursive: true }) as string[]).filter((f) => !f.startsWith('pg_wal')).sort());
    }
    expect(files[0]).toEqual(files[1]);
    expect(files[0]).toEqual(expect.arrayContaining(['backup_label', 'backup_manifest', 'global/pg_control']));
  });

  it('a base backup the server ends (its walsender terminated) fails with the server\'s reason, commits nothing and leaves no walsender', async () => {
    const { config } = configFor('terminated');
    let terminated: Promise<string> | undefined;
    const terminating = {
      ...progress,
      // The base backup was just asked for: end its walsender now, while it checkpoints or streams.
      start: () => void (terminated ??= source.sql("select count(pg_terminate_backend(pid)) from pg_stat_activity where backend_type = 'walsender'", 'app')),
    };
    await expect(runBackup(config, 'app', { type: 'full', progress: terminating })).rejects.toThrow(
      /the server (failed the base backup: terminating connection due to administrator command|closed the connection during the base backup)/,
    );
    expect(await terminated).toBe('1');
    expect((await runList(config, 'app')).backups).toEqual([]);
    expect(await source.sql("select count(*) from pg_stat_activity where backend_type = 'walsender'", 'app')).toBe('0');
  });

  it('after a contiguous 1% update of pgbench_accounts, an incr stores at most 10% of the full’s bytes', async () => {
    const { config } = configFor('incr-size');
    // Nothing to build on yet: the incr asked for becomes a full, and says so.
    const notes: string[] = [];
    const full = await runBackup(config, 'app', { type: 'incr', progress: { ...progress, note: (m: string) => void notes.push(m) } });
    expect(full.type).toBe('full');
    expect(notes).toContainEqual(expect.stringMatching(/^no physical backup of source 'app' to build on: taking a full backup instead$/));
    // scale 5: 500,000 accounts; 1% is 5,000 consecutive aids
    await source.sql('UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid BETWEEN 300001 AND 305000', 'app');
    const incr = await runBackup(config, 'app', { type: 'incr', progress });
    process.stderr.write(`full ${full.storedBytes} B stored, incr after 1% update ${incr.storedBytes} B (${((100 * incr.storedBytes) / full.storedBytes).toFixed(1)}%)\n`);
    expect(incr.storedBytes).toBeLessThanOrEqual(full.storedBytes * 0.1);
  });

  it('records a page that fails its checksum, completes the backup, and list and verify warn about it', async () => {
    // Autovacuum off for it: a vacuum would set hint bits on the page, dirty it and, at the next
    // checkpoint, write the server's good copy over the damage (the Node 22 run of 2026-12-01 saw it).
    await other.sql('CREATE TABLE victim WITH (autovacuum_enabled = false) AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, 5000) g; CHECKPOINT;');
    const relation = await other.sql("select pg_relation_filepath('victim')");
    // Flip bytes in the middle of page 1 on disk; the page is clean in shared buffers, so the
    // server never writes over it and pg_basebackup reads the damaged bytes.
    const fd = openSync(join(other.dataDir, relation), 'r+');
    const bytes = Buffer.alloc(16);
    readSync(fd, bytes, 0, 16, 8192 + 4000);
    for (let i = 0; i < bytes.length; i++) bytes[i] ^= 0xff;
    writeSync(fd, bytes, 0, 16, 8192 + 4000);
    closeSync(fd);

    const { config } = configFor('corrupt', { url: other.url('postgres') });
    const backup = await runBackup(config, 'app', { type: 'full', progress });
    const repository = await Repository.open(config);
    const details = (await repository.openBackup('app', { id: backup.id })).manifest.details as PgPhysicalDetails;
    expect(details.dataChecksums).toBe(true);
    expect(details.checksumFailures).toEqual([{ file: relation, offset: 8192 }]);

    const listed = (await runList(config, 'app')).backups.find((b) => b.id === backup.id);
    expect(listed?.warnings?.join()).toContain(`${relation} at byte 8192`);
    const verified = await runVerify(config, 'app', { progress });
    expect(verified.ok).toBe(true); // the backup is intact; the source was damaged
    expect(verified.backups[0].warnings.join()).toContain(`${relation} at byte 8192`);
  });

  it('an incr checks again the pages its parent did not vouch for: a damaged parent, a page damaged since', async () => {
    // Runs after the test above: `victim`'s page 1 is still damaged, and the parent records it.
    const { config } = configFor('corrupt', { url: other.url('postgres') });
    const relation = await other.sql("select pg_relation_filepath('victim')");
    const failuresOf = async (id: string) =>
      ((await (await Repository.open(config)).openBackup('app', { id })).manifest.details as PgPhysicalDetails).checksumFailures;
    const again = await runBackup(config, 'app', { type: 'incr', progress });
    expect(again.type).toBe('incr');
    expect(await failuresOf(again.id)).toEqual([{ file: relation, offset: 8192 }]);

    // A clean parent, then a page damaged on disk without the server knowing: its block changed, so it is checked.
    await other.sql('DROP TABLE victim; CREATE TABLE victim2 WITH (autovacuum_enabled = false) AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, 5000) g; CHECKPOINT;');
    const clean = await runBackup(config, 'app', { type: 'full', progress });
    expect(await failuresOf(clean.id)).toEqual([]);
    const relation2 = await other.sql("select pg_relation_filepath('victim2')");
    const fd = openSync(join(other.dataDir, relation2), 'r+');
    const bytes = Buffer.alloc(16);
    readSync(fd, bytes, 0, 16, 2 * 8192 + 4000);
    for (let i = 0; i < bytes.length; i++) bytes[i] ^= 0xff;
    writeSync(fd, bytes, 0, 16, 2 * 8192 + 4000);
    closeSync(fd);
    const incr = await runBackup(config, 'app', { type: 'incr', progress });
    expect(await failuresOf(incr.id)).toEqual([{ file: relation2, offset: 2 * 8192 }]);
  });

  it('backs up a server that wants a password, on the replication connection and through pg_basebackup (its passfile): nothing shows it', async () => {
    process.env.TIDEMARK_PHYSICAL_PASSWORD = "phys-Pässword:with\\odd'chars";
    const { path } = writeConfig(tmp.path, 'secured.yaml', {
      repository: `file://${tmp.path}/secured-repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: secured.url('postgres', 'backup'), password: 'env:TIDEMARK_PHYSICAL_PASSWORD' } },
    });
    const run = await runCli(['--config', path, '--json', 'backup', 'app', '--type', 'full']);
    expect([run.code, run.stderr.includes('Pässword')]).toEqual([0, false]);
    expect(JSON.parse(run.stdout)).toMatchObject({ type: 'full' });
    const viaTool = await runCli(['--config', path, '--json', 'backup', 'app', '--type', 'full'], { TIDEMARK_BASEBACKUP_TOOL: '1' });
    expect([viaTool.code, viaTool.stderr.includes('Pässword')]).toEqual([0, false]);
    const wrong = await runCli(['--config', path, 'backup', 'app', '--type', 'full'], { TIDEMARK_PHYSICAL_PASSWORD: 'not-it' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr.trim().split('\n')).toHaveLength(1);
    expect(wrong.stderr).toMatch(/password authentication failed for user "backup"/);
  });

  it('refuses bad input with one line and writes nothing: a non-empty directory, an incr of another cluster, a wrong key', async () => {
    const { config, path } = configFor('bad-input');
    const full = await runBackup(config, 'app', { type: 'full', progress });

    const busy = freshDir();
    mkdirSync(busy);
    writeFileSync(join(busy, 'keep.txt'), 'mine');
    await expect(runRestore(config, 'app', { to: busy, backup: full.id, progress })).rejects.toThrow(TargetNotEmpty);
    expect(readdirSync(busy)).toEqual(['keep.txt']);
    const cli = await runCli(['--config', path, 'restore', 'app', '--to', busy, '--latest']);
    expect(cli.code).not.toBe(0);
    expect(cli.stderr.trim().split('\n')).toHaveLength(1);
    expect(cli.stderr).toContain('is not empty');
    const portless = await runCli(['--config', path, 'restore', 'app', '--to', freshDir(), '--start']);
    expect([portless.code, portless.stderr.trim()]).toEqual([2, 'tidemark: --start needs --port N (1-65535)']);

    const repo = join(tmp.path, 'bad-input-repo', 'app', 'backups');
    const before = readdirSync(repo).sort();
    const elsewhere = configFor('bad-input-other', { repository: `file://${tmp.path}/bad-input-repo`, url: other.url('postgres') });
    await expect(runBackup(elsewhere.config, 'app', { type: 'incr', progress })).rejects.toThrow(UsageError);
    await expect(runBackup(elsewhere.config, 'app', { type: 'incr', progress })).rejects.toThrow(/another cluster \(system identifier \d+\)/);
    expect(readdirSync(repo).sort()).toEqual(before);

    process.env.TIDEMARK_WRONG_KEY = 'a-different-key-0123456789abcdefghijklmnopq';
    const wrong = configFor('bad-input-key', { repository: `file://${tmp.path}/bad-input-repo`, key: 'env:TIDEMARK_WRONG_KEY' });
    const target = freshDir();
    await expect(runRestore(wrong.config, 'app', { to: target, backup: full.id, progress })).rejects.toThrow(EncryptionKeyError);
    expect(existsSync(target)).toBe(false);

    await expect(runRestore(config, 'app', { to: freshDir(), backup: '20990101T000000.000Z-000000', progress })).rejects.toThrow(BackupNotFound);

    // A damaged pack: the restore fails on it and leaves no half-written directory behind.
    const pack = join(repo, full.id, 'pack-00001');
    const fd = openSync(pack, 'r+');
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, 100_000);
    byte[0] ^= 0x40;
    writeSync(fd, byte, 0, 1, 100_000);
    closeSync(fd);
    const damaged = freshDir();
    await expect(runRestore(config, 'app', { to: damaged, backup: full.id, progress })).rejects.toThrow(IntegrityError);
    expect(existsSync(damaged)).toBe(false);
    expect((await runVerify(config, 'app', { backup: full.id, progress })).ok).toBe(false);
  });
});
