import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runBackup } from '../../lib/core/commands/backup';
import { runRestore } from '../../lib/core/commands/restore';
import { runVerify } from '../../lib/core/commands/verify';
import { runStream } from '../../lib/core/commands/wal';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import { archiveFor } from '../../lib/core/engines/continuous-archive';
import { mysqlBinlogArchive } from '../../lib/core/engines/mysql/binlog/binlog-method';
import { comparePositions } from '../../lib/core/engines/mysql/binlog/names';
import { TidemarkError } from '../../lib/core/errors';
import { silentProgress as progress } from '../../lib/core/progress';
import type { BackupManifest } from '../../lib/core/repository/manifest';
import { Repository } from '../../lib/core/repository/repository';
import { useMariadb } from '../harness/mariadb';
import { useS3 } from '../harness/s3';
import { useTempDir, writeConfig } from '../harness/tidemark';

/**
 * Issue 11, corruption, for what corruption.test.ts does not hold: MariaDB's objects (a logical
 * backup's dump and manifest, a binlog file of the continuous archive) in an S3 repository
 * (s3rver), damaged through the S3 API. For each damage, `verify` names the object, a restore that
 * needs it fails with one line naming it and leaves the target as it was (the database absent), and
 * the undamaged backup still verifies.
 */
jest.setTimeout(120_000);

type Damage = 'flip-middle' | 'delete' | 'swap';
const DAMAGES: readonly Damage[] = ['flip-middle', 'delete', 'swap'];
const PREFIX = 'corrupt';

interface Row {
  readonly kind: 'logical' | 'binlog';
  /** Bucket keys of the object and of its twin (the same-named object of another backup, or the next binlog file). */
  readonly key: string;
  readonly twin: string;
  /** Every message about it must contain each of these. */
  readonly names: readonly string[];
}

describe('corruption on S3, MariaDB objects: verify names each, restore refuses naming it and changes nothing', () => {
  const s3 = useS3();
  const source = useMariadb();
  const target = useMariadb({ binlog: false });
  const tmp = useTempDir('tidemark-corruption-mysql-');
  let config: TidemarkConfig;
  const manifests: BackupManifest[] = [];
  /** Closed binlog files in the archive written after both backups, oldest first. */
  let binlogKeys: string[] = [];
  let restores = 0;

  const bytesOf = async (key: string): Promise<Buffer> => {
    const out = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    return Buffer.from(await out.Body!.transformToByteArray());
  };
  const put = (key: string, body: Buffer) => s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body }));

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
    const closed = (listed.Contents ?? []).map((o) => o.Key!).filter((k) => /\.\d{6}$/.test(k)).sort();
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

  async function withDamage(row: Row, damage: Damage, check: () => Promise<void>): Promise<void> {
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

  /** What verify says: the backup's problems, or the error it stopped with; for binlog, the archive's problems. */
  async function problems(row: Row): Promise<string> {
    if (row.kind === 'binlog') {
      const archive = await archiveFor(config.sources.app)!.load();
      return (await archive.verify(await Repository.open(config), 'app', { progress })).problems.join('\n');
    }
    try {
      const result = await runVerify(config, 'app', { backup: manifests[0].id, progress });
      return result.backups.flatMap((b) => b.problems).join('\n');
    } catch (e) {
      expect(e).toBeInstanceOf(TidemarkError);
      return (e as Error).message;
    }
  }

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

  const expectNamed = (message: string, row: Row) => {
    for (const name of row.names) expect(message).toContain(name);
  };

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
      await withDamage(row, damage, async () => {
        const found = await problems(row);
        expect(found).not.toBe('');
        expectNamed(found, row);
        if (row.kind === 'binlog' && damage === 'delete') {
          // A missing file is a gap: --latest stops before it, and says so naming it.
          const notes: string[] = [];
          const db = `restored_${++restores}`;
          await runRestore(config, 'app', { to: target.url(db), latest: true, progress: { ...progress, note: (m) => void notes.push(m) } });
          expect(notes.filter((n) => n.startsWith('warning: --latest stops at'))).toEqual([expect.stringContaining(`${row.names[0]} is missing`)]);
          expect(Number(await target.sql('SELECT COUNT(*) FROM notes', db))).toBeLessThan(Number(await source.sql('SELECT COUNT(*) FROM notes', 'app')));
        } else {
          expectNamed(await restoreFailure(row), row);
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
