import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runBackup } from '../../lib/core/commands/backup';
import { runRestore } from '../../lib/core/commands/restore';
import { runVerify } from '../../lib/core/commands/verify';
import { runStream } from '../../lib/core/commands/wal';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import { mysqlBinlogArchive } from '../../lib/core/engines/mysql/binlog/binlog-method';
import { comparePositions } from '../../lib/core/engines/mysql/binlog/names';
import type { PgPhysicalDetails } from '../../lib/core/engines/postgres/physical/details';
import { WalArchive } from '../../lib/core/engines/postgres/wal/wal-archive';
import { pushWalFile } from '../../lib/core/engines/postgres/wal/wal-push';
import { TidemarkError } from '../../lib/core/errors';
import { silentProgress as progress } from '../../lib/core/progress';
import type { BackupManifest } from '../../lib/core/repository/manifest';
import { Repository } from '../../lib/core/repository/repository';
import { useMariadb } from '../harness/mariadb';
import { usePostgres } from '../harness/postgres';
import { useS3, type S3Handle } from '../harness/s3';
import { useTempDir, writeConfig } from '../harness/tidemark';
import { archiveProblems, expectNamed, verifyProblems } from './damage-checks';

/**
 * Issue 11, corruption, in an S3 repository (s3rver), the objects damaged through the S3 API:
 * MariaDB's (a logical backup's dump and manifest, a binlog file of the continuous archive), which
 * corruption.test.ts does not hold, and a PostgreSQL incremental's pack and block index and a WAL
 * segment, which it damages on a folder. For each damage, `verify` names the object, a restore that
 * needs it fails with one line naming it and leaves the target as it was (the database absent), and
 * the undamaged backup still verifies.
 */
jest.setTimeout(120_000);

type Damage = 'flip-middle' | 'delete' | 'swap';
const DAMAGES: readonly Damage[] = ['flip-middle', 'delete', 'swap'];
const PREFIX = 'corrupt';

interface Row {
  readonly kind: 'logical' | 'binlog' | 'physical' | 'wal';
  /** Bucket keys of the object and of its twin (the same-named object of another backup, or the next binlog file). */
  readonly key: string;
  readonly twin: string;
  /** Every message about it must contain each of these. */
  readonly names: readonly string[];
}

/** Damages `row`'s object in the bucket through the S3 API, runs `check`, then puts every byte back. */
async function withDamage(s3: S3Handle, row: Row, damage: Damage, check: () => Promise<void>): Promise<void> {
  const bytesOf = async (key: string): Promise<Buffer> => {
    const out = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    return Buffer.from(await out.Body!.transformToByteArray());
  };
  const put = (key: string, body: Buffer) => s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body }));
  const good = await bytesOf(row.key);
  const goodTwin = await bytesOf(row.twin);
  switch (damage) {
    case 'flip-middle': {
      const bad = Buffer.from(good);
      // In a manifest, the low bit of a checksum's hex digit (it stays a hex digit).
      bad[row.key.endsWith('manifest.json') ? good.indexOf('"storedSha256"') + 20 : Math.floor(good.length / 2)] ^= 0x01;
      await put(row.key, bad);
      break;
    }
    case 'delete':
      await s3.client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: row.key }));
      break;
    case 'swap':
      await put(row.key, goodTwin);
      await put(row.twin, good);
      break;
  }
  try {
    await check();
  } finally {
    await put(row.key, good);
    await put(row.twin, goodTwin);
  }
}

describe('corruption in an S3 repository', () => {
  const s3 = useS3();

  describe('MariaDB objects: verify names each, restore refuses naming it and changes nothing', () => {
    const source = useMariadb();
    const target = useMariadb({ binlog: false });
    const tmp = useTempDir('tidemark-corruption-mysql-');
    let config: TidemarkConfig;
    const manifests: BackupManifest[] = [];
    /** Closed binlog files in the archive written after both backups, oldest first. */
    let binlogKeys: string[] = [];
    let restores = 0;

    beforeAll(async () => {
      config = writeConfig(tmp.path, 'tidemark.yaml', {
        repository: s3.repository(PREFIX),
        encryption: { key: 'env:TIDEMARK_TEST_KEY' },
        sources: { app: { engine: 'mysql', url: source.url('app'), stream: { flushSeconds: 1 } } },
      }).config;
      await source.sql('CREATE DATABASE app');
      // A bit over 1 MiB stored: the dump spans two AEAD segments.
      await source.sql('CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(80)) ENGINE=InnoDB', 'app');
      await source.sql('INSERT INTO notes SELECT seq, CONCAT(MD5(seq), MD5(seq * 7)) FROM seq_1_to_40000', 'app');
      const stop = new AbortController();
      const streaming = runStream(config, 'app', { spoolDir: join(tmp.path, 'spool'), signal: stop.signal, write: () => undefined });
      streaming.catch(() => undefined);
      try {
        manifests.push(await backup());
        await source.sql('UPDATE notes SET body = UPPER(body) WHERE id % 10 = 0', 'app');
        manifests.push(await backup());
        // Three closed binlog files after the backups, each with rows a --latest restore replays.
        for (let i = 0; i < 3; i++) {
          await source.sql(`INSERT INTO notes SELECT seq, 'binlog' FROM seq_${100000 + i * 1000}_to_${100999 + i * 1000}`, 'app');
          await source.sql('FLUSH BINARY LOGS');
        }
        const [file, position] = (await source.sql('SHOW MASTER STATUS')).split('\t');
        const store = (await Repository.open(config)).store;
        for (const deadline = Date.now() + 60_000; ; await sleep(250)) {
          const point = await mysqlBinlogArchive.newestDurablePoint(store, 'app');
          if (point?.binlog && comparePositions(point.binlog, { file, position: Number(position) }) >= 0) break;
          if (Date.now() > deadline) throw new Error(`the archive did not reach ${file}:${position}`);
        }
      } finally {
        stop.abort();
        await streaming.catch(() => undefined);
      }
      const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `${PREFIX}/app/binlog/` }));
      // Complete files only: generation-numbered partials (`<file>.partial.000007`) also end in digits.
      const closed = (listed.Contents ?? []).map((o) => o.Key!).filter((k) => /\.\d{6}$/.test(k) && !k.includes('.partial.')).sort();
      binlogKeys = closed.slice(-3);
      expect(binlogKeys).toHaveLength(3);
    }, 180_000);

    async function backup(): Promise<BackupManifest> {
      const { id } = await runBackup(config, 'app', { type: 'logical', progress });
      return (await (await Repository.open(config)).openBackup('app', { id })).manifest;
    }

    function rows(): Record<string, Row> {
      const [first, second] = manifests;
      const dumpKey = (m: BackupManifest) => `${PREFIX}/${m.objects.find((o) => o.name === 'dump')!.key}`;
      const manifestKey = (m: BackupManifest) => `${PREFIX}/app/backups/${m.id}/manifest.json`;
      const file = (key: string) => key.split('/').pop()!;
      return {
        'MariaDB dump': { kind: 'logical', key: dumpKey(first), twin: dumpKey(second), names: [first.id, 'dump'] },
        'MariaDB manifest': { kind: 'logical', key: manifestKey(first), twin: manifestKey(second), names: [first.id] },
        'binlog file': { kind: 'binlog', key: binlogKeys[1], twin: binlogKeys[2], names: [file(binlogKeys[1])] },
      };
    }

    const problems = (row: Row) => (row.kind === 'binlog' ? archiveProblems(config).then((p) => p.join('\n')) : verifyProblems(config, manifests[0].id));

    /** The one line a failed restore gave; the target database must not exist afterwards. */
    async function restoreFailure(row: Row): Promise<string> {
      const db = `restored_${++restores}`;
      const options = row.kind === 'binlog' ? { latest: true } : { backup: manifests[0].id };
      const error = await runRestore(config, 'app', { to: target.url(db), ...options, progress }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(await target.sql(`SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '${db}'`)).toBe('0');
      expect(error).toBeInstanceOf(TidemarkError);
      const message = (error as Error).message;
      expect(message).not.toContain('\n');
      return message;
    }

    it('the backups and the binlog archive verify before any damage, and --latest restores every row', async () => {
      expect((await runVerify(config, 'app', { progress })).ok).toBe(true);
      const notes: string[] = [];
      await runRestore(config, 'app', { to: target.url('intact'), latest: true, progress: { ...progress, note: (m) => void notes.push(m) } });
      expect(notes.filter((n) => n.startsWith('warning:'))).toEqual([]);
      expect(await target.sql('SELECT COUNT(*) FROM notes', 'intact')).toBe(await source.sql('SELECT COUNT(*) FROM notes', 'app'));
    });

    describe.each(['MariaDB dump', 'MariaDB manifest', 'binlog file'])('%s', (what) => {
      it.each(DAMAGES)('%s: verify names it, a restore that needs it refuses naming it and creates nothing', async (damage) => {
        const row = rows()[what];
        await withDamage(s3, row, damage, async () => {
          const found = await problems(row);
          expect(found).not.toBe('');
          expectNamed(found, row.names);
          if (row.kind === 'binlog' && damage === 'delete') {
            // A missing file is a gap: --latest stops before it, and says so naming it.
            const notes: string[] = [];
            const db = `restored_${++restores}`;
            await runRestore(config, 'app', { to: target.url(db), latest: true, progress: { ...progress, note: (m) => void notes.push(m) } });
            expect(notes.filter((n) => n.startsWith('warning: --latest stops at'))).toEqual([expect.stringContaining(`${row.names[0]} is missing`)]);
            expect(Number(await target.sql('SELECT COUNT(*) FROM notes', db))).toBeLessThan(Number(await source.sql('SELECT COUNT(*) FROM notes', 'app')));
          } else {
            expectNamed(await restoreFailure(row), row.names);
          }
          // The other backup is untouched (a swap damaged it too: the binlog rows check only the archive).
          if (row.kind === 'logical' && damage !== 'swap') expect((await runVerify(config, 'app', { backup: manifests[1].id, progress })).ok).toBe(true);
        });
      });
    });

    it('once every damage is undone, everything verifies again', async () => {
      expect((await runVerify(config, 'app', { progress })).ok).toBe(true);
    });
  });
  describe('PostgreSQL physical objects and WAL segments: verify names each, restore refuses naming it and writes nothing', () => {
    const pg = usePostgres({ settings: { wal_level: 'replica' } });
    const tmp = useTempDir('tidemark-corruption-pg-s3-');
    const prefix = 'corrupt-pg';
    let config: TidemarkConfig;
    let full: BackupManifest;
    let incr: BackupManifest;
    const segments: string[] = [];
    let restores = 0;

    beforeAll(async () => {
      await pg.createDatabase('app');
      await pg.sql('create table notes (id int primary key, body text); insert into notes select g, md5(g::text) || md5((g * 7)::text) from generate_series(1, 40000) g', 'app');
      config = writeConfig(tmp.path, 'tidemark.yaml', {
        repository: s3.repository(prefix),
        encryption: { key: 'env:TIDEMARK_TEST_KEY' },
        sources: { app: { engine: 'postgres', url: pg.url('app') } },
      }).config;
      const repository = await Repository.open(config);
      const manifestOf = async (id: string) => (await repository.openBackup('app', { id })).manifest;
      full = await manifestOf((await runBackup(config, 'app', { type: 'full', progress })).id);
      await pg.sql('update notes set body = upper(body) where id % 10 = 0', 'app');
      incr = await manifestOf((await runBackup(config, 'app', { type: 'incr', progress })).id);
      // Three consecutive closed WAL segments, as wal-push (archive_command) stores them.
      for (let i = 0; i < 3; i++) {
        await pg.sql(`insert into notes select g, 'wal' from generate_series(${100000 + i * 1000}, ${100999 + i * 1000}) g`, 'app');
        const segment = await pg.sql('select pg_walfile_name(pg_switch_wal())', 'app');
        await pushWalFile(repository, 'app', join(pg.dataDir, 'pg_wal', segment), config.compression);
        segments.push(segment);
      }
    }, 180_000);

    function rows(): Record<string, Row> {
      const keyOf = (m: BackupManifest, name: string) => `${prefix}/${m.objects.find((o) => o.name === name)!.key}`;
      const pack = incr.objects.find((o) => o.name.startsWith('pack-') && full.objects.some((f) => f.name === o.name))!.name;
      const index = (incr.details as PgPhysicalDetails).index;
      const walKey = (segment: string) => `${prefix}/app/wal/00000001/${segment}`;
      return {
        'physical pack': { kind: 'physical', key: keyOf(incr, pack), twin: keyOf(full, pack), names: [incr.id, pack] },
        'physical block index': { kind: 'physical', key: keyOf(incr, index), twin: keyOf(full, index), names: [incr.id, index] },
        'WAL segment': { kind: 'wal', key: walKey(segments[1]), twin: walKey(segments[2]), names: [segments[1]] },
      };
    }

    /** wal-fetch (restore_command's source) of the row's segment: its answer, or the error; nothing left behind on failure. */
    async function walFetch(row: Row): Promise<unknown> {
      const dest = join(tmp.path, `fetched-${++restores}`);
      const archive = new WalArchive(await Repository.open(config), 'app');
      return archive.fetch(row.key.split('/').pop()!, dest).then(
        (answer) => answer,
        (e: unknown) => {
          expect(existsSync(dest)).toBe(false);
          return e;
        },
      );
    }

    describe.each(['physical pack', 'physical block index', 'WAL segment'])('%s', (what) => {
      it.each(DAMAGES)('%s: verify names it, restore (or wal-fetch) refuses it naming it', async (damage) => {
        const row = rows()[what];
        await withDamage(s3, row, damage, async () => {
          const found = row.kind === 'wal' ? (await archiveProblems(config)).filter((p) => segments.some((s) => p.includes(s))).join('\n') : await verifyProblems(config, incr.id);
          expect(found).not.toBe('');
          expectNamed(found, row.names);
          if (row.kind === 'wal') {
            const answer = await walFetch(row);
            // A segment not archived is recovery's end (restore_command exits 1), not an error.
            if (damage === 'delete') expect(answer).toBe('absent');
            else {
              expect(answer).toBeInstanceOf(TidemarkError);
              expectNamed((answer as Error).message, row.names);
            }
          } else {
            const dir = join(tmp.path, `restored-${++restores}`);
            const error = await runRestore(config, 'app', { to: dir, backup: incr.id, progress }).then(
              () => undefined,
              (e: unknown) => e,
            );
            expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
            expect(error).toBeInstanceOf(TidemarkError);
            expect((error as Error).message).not.toContain('\n');
            expectNamed((error as Error).message, row.names);
          }
        });
      });
    });

    it('once every damage is undone, the incremental restores and everything verifies', async () => {
      expect((await runVerify(config, 'app', { progress })).ok).toBe(true);
      const dir = join(tmp.path, 'intact');
      await runRestore(config, 'app', { to: dir, backup: incr.id, progress });
      expect(readdirSync(dir)).toEqual(expect.arrayContaining(['PG_VERSION', 'base', 'global']));
    });
  });
});
