import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { runBackup } from '../../lib/core/commands/backup';
import { runList } from '../../lib/core/commands/list';
import { runRestore } from '../../lib/core/commands/restore';
import { runVerify } from '../../lib/core/commands/verify';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import { fingerprintDatabaseAt, type DatabaseFingerprint } from '../../lib/core/engines/postgres/fingerprint';
import { pgBin } from '../../lib/core/engines/postgres/tools';
import { EncryptionKeyError, IntegrityError, SecretError, TargetNotEmpty } from '../../lib/core/errors';
import { runTool } from '../../lib/core/process/tool';
import { silentProgress as progress } from '../../lib/core/progress';
import { loadSampleData } from '../../lib/local/sample-postgres';
import type { ThrowawayPostgres } from '../../lib/local/throwaway-postgres';
import { usePostgres } from '../harness/postgres';
import { useS3 } from '../harness/s3';
import { runCli, spawnCli, useTempDir, waitForUploadInFlight, writeConfig } from '../harness/tidemark';

/** The schema as pg_dump sees it, without the per-run \restrict key. */
async function schemaOf(cluster: ThrowawayPostgres, db: string): Promise<string> {
  const out = await runTool(pgBin('pg_dump'), ['--schema-only', '-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', db]);
  return out.replace(/^\\(un)?restrict .*$/gm, '');
}

/** The parts of a stored manifest the forgery tests edit. */
interface EditableManifest {
  restorePoint: { time: string };
  objects: { name: string; plainBytes: number }[];
}

const databaseExists = async (cluster: ThrowawayPostgres, db: string) =>
  (await cluster.sql(`select count(*) from pg_database where datname = '${db}'`)) === '1';

const tableCount = async (cluster: ThrowawayPostgres, db: string) =>
  Number(await cluster.sql(`select count(*) from pg_tables where schemaname not in ('pg_catalog', 'information_schema')`, db));

describe('PostgreSQL logical backup → verify → restore', () => {
  const source = usePostgres();
  const target = usePostgres();
  const s3 = useS3();
  const tmp = useTempDir();
  let onFolder: { path: string; config: TidemarkConfig };
  let onS3: { path: string; config: TidemarkConfig };
  let original: DatabaseFingerprint;

  const configFor = (name: string, extra: Partial<{ repository: unknown; key: string; url: string }> = {}) =>
    writeConfig(tmp.path, `${name}.yaml`, {
      repository: (extra.repository as string) ?? `file://${tmp.path}/${name}-repo`,
      encryption: { key: extra.key ?? 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: extra.url ?? source.url('app') } },
    });

  beforeAll(async () => {
    await source.createDatabase('app');
    await loadSampleData(source.url('app'), { pgbenchScale: 1, toastMegabytes: 50 });
    // A role the target cluster does not have: the restore must bring it along.
    await source.sql('CREATE ROLE app_owner NOLOGIN; ALTER TABLE documents OWNER TO app_owner;', 'app');
    original = await fingerprintDatabaseAt(source.url('app'));
    onFolder = configFor('folder');
    onS3 = configFor('s3', { repository: s3.repository('tidemark') });
  }, 180_000);

  it.each([
    ['a folder', () => onFolder, 'restored_from_folder'],
    ['S3', () => onS3, 'restored_from_s3'],
  ])('round-trips every table, sequence and large object through %s into a fresh cluster', async (_kind, cfg, db) => {
    const backup = await runBackup(cfg().config, 'app', { type: 'logical', progress });
    expect(backup.storedBytes).toBeLessThan(backup.bytes);
    expect((await runList(cfg().config, 'app')).backups.map((b) => b.id)).toContain(backup.id);
    expect((await runVerify(cfg().config, 'app', { progress })).ok).toBe(true);

    await runRestore(cfg().config, 'app', { to: target.url(db), backup: backup.id, progress });
    expect(await fingerprintDatabaseAt(target.url(db))).toEqual(original);
    expect(await schemaOf(target, db)).toEqual(await schemaOf(source, 'app'));
    expect(await target.sql("select count(*) from pg_roles where rolname = 'app_owner'")).toBe('1');
    expect(Object.keys(original.tables).length).toBeGreaterThanOrEqual(10);
    expect(original.largeObjects).toMatch(/^20:/);
  });

  it('restores only the table asked for, into an empty database or beside live data', async () => {
    await runBackup(onFolder.config, 'app', { type: 'logical', progress });
    await runRestore(onFolder.config, 'app', { to: target.url('only_accounts'), table: 'public.pgbench_accounts', progress });
    expect(await tableCount(target, 'only_accounts')).toBe(1);
    expect((await fingerprintDatabaseAt(target.url('only_accounts'))).tables['public.pgbench_accounts']).toBe(original.tables['public.pgbench_accounts']);

    // 3 a.m.: someone dropped a table in production; bring back just that one.
    await runRestore(onFolder.config, 'app', { to: target.url('live'), progress });
    await target.sql('DROP TABLE documents; UPDATE pgbench_branches SET bbalance = 42;', 'live');
    await runRestore(onFolder.config, 'app', { to: target.url('live'), table: 'documents', progress });
    const live = await fingerprintDatabaseAt(target.url('live'));
    expect(live.tables['public.documents']).toBe(original.tables['public.documents']);
    expect(live.tables['public.pgbench_branches']).not.toBe(original.tables['public.pgbench_branches']); // untouched

    await expect(runRestore(onFolder.config, 'app', { to: target.url('live'), table: 'documents', progress })).rejects.toThrow(TargetNotEmpty);
  });

  it('--force over a database holding other rows and an extra table brings back exactly the backup’s tables', async () => {
    const { id } = await runBackup(onFolder.config, 'app', { type: 'logical', progress });
    await runRestore(onFolder.config, 'app', { to: target.url('forced'), backup: id, progress });
    await target.sql(
      `DELETE FROM pgbench_accounts WHERE aid % 3 = 0;
       UPDATE pgbench_branches SET bbalance = 42;
       INSERT INTO documents VALUES (999999, 'not in the backup', 'x');
       SELECT setval('invoice_number', 7);
       SELECT lo_unlink(min(oid)) FROM pg_largeobject_metadata;
       CREATE TABLE scratch (id int PRIMARY KEY, note text);
       INSERT INTO scratch VALUES (1, 'kept');`,
      'forced',
    );
    const before = await fingerprintDatabaseAt(target.url('forced'));
    for (const table of ['public.pgbench_accounts', 'public.pgbench_branches', 'public.documents']) {
      expect(before.tables[table]).not.toBe(original.tables[table]);
    }
    expect(before.largeObjects).not.toBe(original.largeObjects);
    await expect(runRestore(onFolder.config, 'app', { to: target.url('forced'), backup: id, progress })).rejects.toThrow(TargetNotEmpty);

    await runRestore(onFolder.config, 'app', { to: target.url('forced'), backup: id, force: true, progress });
    const after = await fingerprintDatabaseAt(target.url('forced'));
    const { 'public.scratch': scratch, ...restored } = after.tables;
    expect(restored).toEqual(original.tables);
    expect(after.sequences).toEqual(original.sequences);
    expect(after.largeObjects).toBe(original.largeObjects);
    // Not in the backup, so not the backup's to replace.
    expect(scratch).toBe(before.tables['public.scratch']);
    // Indexes, constraints and the rest of the definitions came back too.
    await target.sql('DROP TABLE scratch', 'forced');
    expect(await schemaOf(target, 'forced')).toEqual(await schemaOf(source, 'app'));
  });

  describe('damage', () => {
    // A cluster without the backup's role app_owner, whose log shows every DDL statement run on it.
    const bare = usePostgres({ settings: { log_statement: 'ddl' } });
    let cfg: { path: string; config: TidemarkConfig };
    let folder: string;
    beforeAll(async () => {
      cfg = configFor('damage');
      const { id } = await runBackup(cfg.config, 'app', { type: 'logical', progress });
      folder = join(tmp.path, 'damage-repo/app/backups', id);
    });

    /** Applies `damage` to a stored file, runs `check`, then puts the original bytes back. */
    async function withDamage(file: string, damage: (bytes: Buffer) => Buffer, check: () => Promise<void>) {
      const path = join(folder, file);
      const good = readFileSync(path);
      writeFileSync(path, damage(Buffer.from(good)));
      try {
        await check();
      } finally {
        writeFileSync(path, good);
      }
    }

    it.each(['dump', 'globals.sql', 'manifest.json'])('verify finds one flipped byte in %s', async (file) => {
      for (const where of [0.0, 0.5, 0.999]) {
        await withDamage(
          file,
          (b) => {
            // In the manifest, flip a hex digit of a checksum; elsewhere any byte.
            const at = file === 'manifest.json' ? b.indexOf('Sha256') + 12 : Math.min(b.length - 1, Math.floor(b.length * where));
            b[at] ^= file === 'manifest.json' ? 0x01 : 0x40;
            return b;
          },
          async () => {
            const result = await runVerify(cfg.config, 'app', { progress });
            expect(result.ok).toBe(false);
            expect(result.backups[0].problems.join(' ')).toMatch(/corrupted|damaged|do not match|altered/);
          },
        );
      }
      expect((await runVerify(cfg.config, 'app', { progress })).ok).toBe(true);
    });

    it('verify finds a truncated object', async () => {
      const path = join(folder, 'dump');
      const size = statSync(path).size;
      await withDamage('dump', (b) => b, async () => {
        truncateSync(path, size - 1000);
        const result = await runVerify(cfg.config, 'app', { progress });
        expect(result.ok).toBe(false);
        expect(result.backups[0].problems[0]).toMatch(/object dump: .*truncated/);
      });
    });

    it('restoring a corrupted backup fails with a clear error and leaves the target untouched', async () => {
      await target.createDatabase('busy');
      await target.sql('CREATE TABLE precious (id int); INSERT INTO precious VALUES (1), (2);', 'busy');
      const before = await fingerprintDatabaseAt(target.url('busy'));
      const roles = await target.sql('select string_agg(rolname, \',\' order by rolname) from pg_roles');
      // The last segment: pg_restore has already received almost everything when the damage shows.
      await withDamage('dump', (b) => ((b[b.length - 20] ^= 0xff), b), async () => {
        await expect(runRestore(cfg.config, 'app', { to: target.url('never_created'), progress })).rejects.toThrow(
          /backup .* object dump: segment \d+ failed authentication/,
        );
        await expect(runRestore(cfg.config, 'app', { to: target.url('busy'), force: true, progress })).rejects.toThrow(IntegrityError);
      });
      expect(await databaseExists(target, 'never_created')).toBe(false);
      expect(await fingerprintDatabaseAt(target.url('busy'))).toEqual(before);
      expect(await target.sql('select string_agg(rolname, \',\' order by rolname) from pg_roles')).toBe(roles);
    });

    it('a restore that fails mid-stream drops the roles and the database it created', async () => {
      const hasAppOwner = () => bare.sql("select count(*) from pg_roles where rolname = 'app_owner'");
      expect(await hasAppOwner()).toBe('0');
      await withDamage('dump', (b) => ((b[b.length - 20] ^= 0xff), b), async () => {
        await expect(runRestore(cfg.config, 'app', { to: bare.url('half_restored'), progress })).rejects.toThrow(
          /backup .* object dump: segment \d+ failed authentication/,
        );
      });
      // The restore had created both before the damage showed.
      const log = readFileSync(bare.logFile, 'utf8');
      expect(log).toMatch(/statement: CREATE DATABASE "half_restored"/);
      expect(log).toMatch(/statement: CREATE ROLE app_owner;/);
      expect(await hasAppOwner()).toBe('0');
      expect(await databaseExists(bare, 'half_restored')).toBe(false);
    });

    it.each<[string, (manifest: EditableManifest) => void]>([
      ['the restore point moved an hour on', (m) => (m.restorePoint.time = new Date(Date.parse(m.restorePoint.time) + 3_600_000).toISOString())],
      ['the dump’s plain size changed', (m) => (m.objects.find((o) => o.name === 'dump')!.plainBytes += 1)],
    ])('restore and verify refuse a manifest edited and re-checksummed (%s): only the HMAC can tell', async (_edit, edit) => {
      const forged = JSON.parse(readFileSync(join(folder, 'manifest.json'), 'utf8')) as { manifest: EditableManifest; seal: { sha256: string } };
      edit(forged.manifest);
      // The seal's checksum, as the writer computes it: the forgery passes every check without a key.
      forged.seal.sha256 = createHash('sha256').update(JSON.stringify(forged.manifest)).digest('hex');
      await withDamage('manifest.json', () => Buffer.from(`${JSON.stringify(forged, null, 2)}\n`), async () => {
        const listed = await runList(cfg.config, 'app');
        expect(listed.problems).toEqual([]);
        expect(listed.backups.map((b) => b.restorePoint)).toEqual([forged.manifest.restorePoint.time]);

        await expect(runRestore(cfg.config, 'app', { to: target.url('forged'), progress })).rejects.toThrow(
          new IntegrityError(`backup ${listed.backups[0].id}: manifest was altered after it was written (HMAC mismatch)`),
        );
        const verified = await runVerify(cfg.config, 'app', { progress });
        expect(verified.ok).toBe(false);
        expect(verified.backups.map((b) => b.problems)).toEqual([[expect.stringMatching(/manifest was altered after it was written \(HMAC mismatch\)/)]]);
      });
      expect(await databaseExists(target, 'forged')).toBe(false);
    });
  });

  it('a wrong, missing or short key is a clear error', async () => {
    const cfg = configFor('keys');
    await runBackup(cfg.config, 'app', { type: 'logical', progress });
    process.env.TIDEMARK_OTHER_KEY = 'another-key-that-is-long-enough-0123456789';
    process.env.TIDEMARK_SHORT_KEY = 'too-short';
    delete process.env.TIDEMARK_UNSET_KEY;
    const withKey = (key: string) => configFor('keys', { key }).config;

    const wrong = withKey('env:TIDEMARK_OTHER_KEY');
    await expect(runBackup(wrong, 'app', { type: 'logical', progress })).rejects.toThrow(/wrong encryption key: .* is not the key this repository .* was created with/);
    // pg_dump starts while the key is still being checked: it must be gone, and nothing stored.
    const sessions = () => source.sql("select count(*) from pg_stat_activity where application_name = 'tidemark'");
    for (let i = 0; i < 50 && (await sessions()) !== '0'; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await sessions()).toBe('0');
    expect((await runList(cfg.config, 'app')).incomplete).toEqual([]);
    await expect(runRestore(wrong, 'app', { to: target.url('wrong_key'), progress })).rejects.toThrow(EncryptionKeyError);
    await expect(runVerify(wrong, 'app', { progress })).rejects.toThrow(/wrong encryption key/);
    expect(await databaseExists(target, 'wrong_key')).toBe(false);

    await expect(runRestore(withKey('env:TIDEMARK_UNSET_KEY'), 'app', { to: target.url('x'), progress })).rejects.toThrow(
      new SecretError('encryption.key: environment variable TIDEMARK_UNSET_KEY is not set'),
    );
    await expect(runRestore(withKey('env:TIDEMARK_SHORT_KEY'), 'app', { to: target.url('x'), progress })).rejects.toThrow(/at least 32/);
  });

  it('SIGKILL of a backup mid-stream leaves no listed backup, and the next backup succeeds', async () => {
    const cfg = configFor('killed');
    const backups = join(tmp.path, 'killed-repo/app/backups');
    const child = spawnCli(['-c', cfg.path, 'backup', 'app', '--type', 'logical']);
    const exited = once(child, 'close');
    // Wait until the dump is streaming into storage, then pull the plug.
    expect(await waitForUploadInFlight(backups, { timeoutMs: 12_000 })).toBe(true);
    child.kill('SIGKILL');
    await exited;

    const after = await runList(cfg.config, 'app');
    expect(after.backups).toEqual([]);
    expect(after.incomplete).toHaveLength(1);

    const next = await runBackup(cfg.config, 'app', { type: 'logical', progress });
    expect((await runList(cfg.config, 'app')).backups.map((b) => b.id)).toEqual([next.id]);
    expect((await runVerify(cfg.config, 'app', { progress })).ok).toBe(true);
  });

  describe('bad input: one line on stderr, a non-zero exit, nothing changed', () => {
    it.each<[string, () => Promise<string[]>, RegExp]>([
      ['missing config', async () => ['-c', join(tmp.path, 'nope.yaml'), 'list', 'app'], /^tidemark: config file not found: .*nope\.yaml \(create one with: tidemark init\)$/],
      ['unknown source', async () => ['-c', onFolder.path, 'list', 'billing'], /^tidemark: unknown source 'billing' \(configured: app\)$/],
      [
        'unknown repository scheme',
        async () => ['-c', configFor('ftp', { repository: 'ftp://backups/x' }).path, 'list', 'app'],
        /^tidemark: .*ftp\.yaml: repository: .*file:\/\/ or s3:\/\/.*got "ftp:\/\/backups\/x"$/,
      ],
      [
        'unreachable database (connection refused)',
        async () => ['-c', configFor('refused', { url: 'postgres://postgres@127.0.0.1:1/app' }).path, 'backup', 'app', '--type', 'logical'],
        /^tidemark: source 'app': cannot connect to 127\.0\.0\.1:1 as postgres: connection refused$/,
      ],
      [
        'non-empty target',
        async () => ['-c', onFolder.path, 'restore', 'app', '--to', target.url('restored_from_folder')],
        /^tidemark: target database postgres@127\.0\.0\.1:\d+\/restored_from_folder is not empty \(.*\); restore into a new database or pass --force/,
      ],
    ])('%s', async (_name, args, message) => {
      const result = await runCli(await args());
      expect(result.code).not.toBe(0);
      expect(result.stdout).toBe('');
      expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(result.stderr.trimEnd()).toMatch(message);
    });

    it('a database that accepts connections but never answers fails within seconds', async () => {
      const silent = createServer(() => undefined).listen(0, '127.0.0.1');
      await once(silent, 'listening');
      try {
        const { port } = silent.address() as AddressInfo;
        const cfg = configFor('silent', { url: `postgres://postgres@127.0.0.1:${port}/app` });
        const result = await runCli(['-c', cfg.path, 'backup', 'app', '--type', 'logical']);
        expect(result.code).not.toBe(0);
        expect(result.stderr.trim()).toMatch(/^tidemark: source 'app': cannot connect to .* no answer within 5 s$/);
        expect(result.seconds).toBeLessThan(12);
        // The key check ran (and finished) while the connection hung; the new repository stays unwritten.
        expect(existsSync(join(tmp.path, 'silent-repo', 'tidemark.json'))).toBe(false);
      } finally {
        silent.close();
      }
    });
  });
});
