import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newBackupId } from '../../lib/core/repository/backup-id';
import { FileStore } from '../../lib/core/repository/file-store';
import { leaseBytes } from '../../lib/core/repository/lease';
import { lsnToSegment, parseSegmentName } from '../../lib/core/retention/archive-use';
import { buildRetentionCatalog } from '../../lib/core/retention/build-catalog';
import { archiveGaps, archiveRuns } from '../../lib/core/retention/catalog-model';
import { planRetention } from '../../lib/core/retention/plan-retention';
import { RETENTION_DEFAULTS } from '../../lib/core/config/retention';
import { LocalKeyProvider } from '../../lib/core/crypto/local-key-provider';
import { BinlogArchive } from '../../lib/core/engines/mysql/binlog/binlog-archive';
import { binlogAttributes } from '../../lib/core/engines/mysql/binlog/inventory';
import type { BackupManifest } from '../../lib/core/repository/manifest';
import { Repository } from '../../lib/core/repository/repository';
import { replayOf } from '../../lib/core/retention/archive-use';
import { TEST_KEY } from '../harness/tidemark';

const compression = { level: 1, threads: 1 };
const mysqlManifest = { engine: 'mysql', type: 'logical', restorePoint: { time: '' }, details: { kind: 'mysql-logical' } } as unknown as BackupManifest;

/** The catalog as built from a real folder: WAL pieces and partials, unfinished folders, damaged manifests. */
describe('buildRetentionCatalog', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tidemark-retention-catalog-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads WAL segments, partials and gaps per timeline; unfinished folders with their lease; leaves damaged ones alone', async () => {
    const store = new FileStore(join(dir, 'repo'));
    const wal = (tl: string, seg: string, suffix = '') => store.put(`app/wal/${tl}/${tl}${seg}${suffix}`, Buffer.alloc(64));
    await wal('00000001', '0000000100000001');
    await wal('00000001', '0000000100000002');
    await wal('00000001', '0000000100000004'); // 03 is missing: a gap
    await wal('00000001', '0000000100000005', '.partial.000001');
    await wal('00000001', '0000000100000005', '.partial.000002');
    await wal('00000002', '0000000100000006');
    // Not canonical (segment part past the last segment of a log): never rebuilt, so never deleted.
    await wal('00000001', '0000000100000100');
    await wal('00000001', '0000000100000002', '.partial.000000'); // generation 0 is no partial: would name the segment
    await store.put('app/wal/x/wal/00000001/000000010000000100000001', Buffer.alloc(64)); // nested: not a piece
    await store.put('app/wal/00000002.history', Buffer.from('1\t0/6000000\tno recovery target specified\n'));
    await store.put('app/wal/keys/1.json', Buffer.from('{}'));

    const running = newBackupId();
    const dead = newBackupId(new Date(Date.now() - 3 * 86_400_000));
    const damaged = newBackupId(new Date(Date.now() - 86_400_000));
    await store.put(`app/backups/${running}/lease.json`, leaseBytes(running, new Date().toISOString()));
    await store.put(`app/backups/${running}/dump`, Buffer.alloc(10));
    await store.put(`app/backups/${dead}/dump`, Buffer.alloc(10));
    await store.put(`app/backups/${damaged}/manifest.json`, Buffer.from('not a manifest'));
    await store.put('app/backups/not-an-id/x', Buffer.alloc(1));

    const catalog = await buildRetentionCatalog(store, 'app');
    expect(catalog.backups).toEqual([]);
    expect(catalog.untouchable).toEqual([damaged, 'not-an-id'].sort());
    expect(catalog.unfinished.map((u) => [u.id, u.leaseUntil !== undefined])).toEqual([[dead, false], [running, true]].sort());

    expect(catalog.archive.map((s) => [s.id, s.length])).toEqual([['wal/00000001', 5], ['wal/00000002', 1]]);
    // Keys are rebuilt from positions, exactly as listed.
    expect([...catalog.archive[0].pieces()].map((p) => p.key)).toEqual([
      'app/wal/00000001/000000010000000100000001',
      'app/wal/00000001/000000010000000100000002',
      'app/wal/00000001/000000010000000100000004',
      'app/wal/00000001/000000010000000100000005.partial.000001',
      'app/wal/00000001/000000010000000100000005.partial.000002',
    ]);
    const first = parseSegmentName('000000010000000100000001')!.segment;
    expect(first).toBe(lsnToSegment('1/01000000'));
    expect(archiveGaps(catalog.archive)).toEqual([{ stream: 'wal/00000001', from: first + 2, to: first + 3 }]);
    expect(archiveRuns(catalog.archive).map((r) => [r.stream, r.end - r.start])).toEqual([['wal/00000001', 2], ['wal/00000001', 2], ['wal/00000002', 1]]);

    // No backup replays from these streams: every piece stays but the superseded partial; the dead folder goes.
    const plan = planRetention(catalog, RETENTION_DEFAULTS, new Date());
    expect(plan.delete.map((d) => [d.what, d.keys()])).toEqual([
      ['archive', ['app/wal/00000001/000000010000000100000005.partial.000001']],
      ['unfinished', [`app/backups/${dead}/dump`]],
    ]);
  });

  it('reads the binlog archive: positions doubled, lost tails as gaps, superseded partials, a change of server as a new stream', async () => {
    const store = new FileStore(join(dir, 'binlog-repo'));
    const repo = new Repository(store, new LocalKeyProvider(TEST_KEY, 'test key'));
    const writer = await new BinlogArchive(repo, 'db').objects.writer({ epoch: 'new' });
    const put = (name: string, server: string) => writer.writeBytes(name, Buffer.alloc(100, 1), { compression, attributes: binlogAttributes({ end: 100, server }) });
    await put('mariadb-bin.000001', '1');
    await put('mariadb-bin.000002.partial.000001', '1'); // 000002's tail never arrived
    await put('mariadb-bin.000003', '1');
    await put('mariadb-bin.000004.partial.000001', '1');
    await put('mariadb-bin.000004', '1'); // supersedes its partial
    await put('mariadb-bin.000005', '7'); // another server from here on
    await put('mariadb-bin.000006.partial.000001', '7');
    await put('mariadb-bin.000006.partial.000002', '7');

    const catalog = await buildRetentionCatalog(store, 'db');
    expect(catalog.archive.map((s) => [s.id, [...s.pieces()].map((p) => [p.key.replace('db/binlog/', ''), p.start, p.end])])).toEqual([
      ['binlog/mariadb-bin', [
        ['mariadb-bin.000001', 2, 4],
        ['mariadb-bin.000002.partial.000001', 4, 5],
        ['mariadb-bin.000003', 6, 8],
        ['mariadb-bin.000004.partial.000001', 8, 9],
        ['mariadb-bin.000004', 8, 10],
      ]],
      ['binlog/mariadb-bin~1', [
        ['mariadb-bin.000005', 10, 12],
        ['mariadb-bin.000006.partial.000001', 12, 13],
        ['mariadb-bin.000006.partial.000002', 12, 13],
      ]],
    ]);
    // 000002's lost tail breaks the first stream; the server change starts another.
    expect(archiveRuns(catalog.archive).map((r) => [r.stream, r.start, r.end])).toEqual([
      ['binlog/mariadb-bin', 2, 5],
      ['binlog/mariadb-bin', 6, 10],
      ['binlog/mariadb-bin~1', 10, 13],
    ]);
    // A dump at 000003:500 continues through the first stream from file 3 on.
    expect(replayOf({ ...mysqlManifest, restorePoint: { time: new Date().toISOString(), binlog: { file: 'mariadb-bin.000003', position: 500 } } }, undefined, (f) => (f === 'mariadb-bin.000003' ? 'binlog/mariadb-bin' : undefined)))
      .toEqual({ stream: 'binlog/mariadb-bin', from: 6, consistentAt: 6, needsArchive: false });

    // No backup replays from it: only the superseded partials go, keys/ never.
    const plan = planRetention(catalog, RETENTION_DEFAULTS, new Date());
    expect(plan.delete.map((d) => d.keys())).toEqual([['db/binlog/mariadb-bin.000004.partial.000001'], ['db/binlog/mariadb-bin.000006.partial.000001']]);
    expect((await store.list('db/binlog/keys/')).objects).toHaveLength(1);
  });
});
