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

    expect(catalog.archive.map((s) => [s.id, s.pieces.length])).toEqual([['wal/00000001', 5], ['wal/00000002', 1]]);
    const first = parseSegmentName('000000010000000100000001')!.segment;
    expect(first).toBe(lsnToSegment('1/01000000'));
    expect(archiveGaps(catalog.archive)).toEqual([{ stream: 'wal/00000001', from: first + 2, to: first + 3 }]);
    expect(archiveRuns(catalog.archive).map((r) => [r.stream, r.end - r.start])).toEqual([['wal/00000001', 2], ['wal/00000001', 2], ['wal/00000002', 1]]);

    // No backup replays from these streams: every piece stays but the superseded partial; the dead folder goes.
    const plan = planRetention(catalog, RETENTION_DEFAULTS, new Date());
    expect(plan.delete.map((d) => [d.what, d.keys])).toEqual([
      ['archive', ['app/wal/00000001/000000010000000100000005.partial.000001']],
      ['unfinished', [`app/backups/${dead}/dump`]],
    ]);
  });
});
