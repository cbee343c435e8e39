import fc from 'fast-check';
import { newestWindowEnd } from '../../lib/core/engines/continuous-archive';
import { pgWalArchive } from '../../lib/core/engines/postgres/wal/wal-method';
import type { BackupManifest } from '../../lib/core/repository/manifest';
import { inventoryOf } from '../../lib/core/engines/postgres/wal/wal-inventory';
import { formatLsn, parseLsn, parseSegmentName, parseTimelineHistory, partialArchiveName, segmentArchiveName, segmentName } from '../../lib/core/engines/postgres/wal/wal-names';
import { writtenExtent } from '../../lib/core/engines/postgres/wal/spool';

const MiB16 = 16 * 1024 * 1024;

describe('WAL names', () => {
  it('round-trips segment numbers through names for every segment size', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 1, max: 0xff }), fc.nat({ max: 2 ** 40 }), (sizeLog, timeline, raw) => {
        const segmentBytes = 2 ** (20 + (sizeLog % 11));
        const segno = raw % 2 ** (64 - Math.log2(segmentBytes) - 12);
        const name = segmentName({ timeline, segno }, segmentBytes);
        expect(name).toMatch(/^[0-9A-F]{24}$/);
        expect(parseSegmentName(name, segmentBytes)).toEqual({ timeline, segno });
      }),
    );
    // 16 MiB: the segment after ...000000FF is the next "log".
    expect(segmentName({ timeline: 1, segno: 256 }, MiB16)).toBe('000000010000000100000000');
    expect(parseSegmentName('0000000100000001000000FF', MiB16).segno).toBe(511);
  });

  it('formats and parses LSNs', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (lsn) => expect(parseLsn(formatLsn(lsn))).toBe(lsn)));
    expect(formatLsn(parseLsn('16/b374d848'))).toBe('16/B374D848');
  });

  it('finds the written extent of a zero-padded segment', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300_000 }), fc.integer({ min: 1, max: 255 }), (extent, last) => {
        const b = Buffer.alloc(300_001);
        if (extent > 0) b[extent - 1] = last;
        expect(writtenExtent(b)).toBe(extent);
      }),
    );
  });
});

describe('WAL inventory: runs and gaps from names', () => {
  const name = (segno: number, timeline = 1) => segmentName({ timeline, segno }, MiB16);

  it('every segment number is either in exactly one run or in exactly one gap, between the first and the last', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 600 }), { minLength: 1, maxLength: 60 }), fc.boolean(), (complete, withPartial) => {
        const sorted = [...complete].sort((a, b) => a - b);
        const names = sorted.map((s) => segmentArchiveName(name(s)));
        const newest = sorted[sorted.length - 1];
        if (withPartial) names.push(partialArchiveName(name(newest + 1), 1), partialArchiveName(name(newest + 1), 2));
        // A superseded partial of a completed segment changes nothing.
        names.push(partialArchiveName(name(sorted[0]), 1));
        const inv = inventoryOf(names, MiB16);
        expect(inv.timelines).toHaveLength(1);
        const { runs, gaps } = inv.timelines[0];
        const covered = new Map<number, string>();
        for (const r of runs) {
          for (let s = parseSegmentName(r.first, MiB16).segno; s <= parseSegmentName(r.last, MiB16).segno; s++) {
            expect(covered.has(s)).toBe(false);
            covered.set(s, 'run');
          }
        }
        for (const g of gaps) {
          expect(g.count).toBe(parseSegmentName(g.to, MiB16).segno - parseSegmentName(g.from, MiB16).segno + 1);
          for (let s = parseSegmentName(g.from, MiB16).segno; s <= parseSegmentName(g.to, MiB16).segno; s++) {
            expect(covered.has(s)).toBe(false);
            covered.set(s, 'gap');
          }
        }
        const last = withPartial ? newest + 1 : newest;
        for (let s = sorted[0]; s <= last; s++) expect(covered.get(s)).toBe(sorted.includes(s) || s === last ? 'run' : 'gap');
        expect(covered.size).toBe(last - sorted[0] + 1);
        const lastRun = runs[runs.length - 1];
        expect(lastRun.partial).toBe(withPartial ? partialArchiveName(name(newest + 1), 2) : undefined);
        expect(inv.supersededPartials).toEqual(
          [partialArchiveName(name(sorted[0]), 1), ...(withPartial ? [partialArchiveName(name(newest + 1), 1)] : [])].sort(),
        );
      }),
    );
  });

  it('names the missing segment of a one-segment gap, per timeline, and keeps other names apart', () => {
    const inv = inventoryOf(
      [
        segmentArchiveName(name(3)),
        segmentArchiveName(name(5)),
        segmentArchiveName(name(5, 2)),
        segmentArchiveName(name(6, 2)),
        '00000002.history',
        'stray-object',
      ],
      MiB16,
    );
    expect(inv.timelines.map((t) => t.timeline)).toEqual(['00000001', '00000002']);
    expect(inv.timelines[0].gaps).toEqual([{ timeline: '00000001', from: name(4), to: name(4), count: 1 }]);
    expect(inv.timelines[1].gaps).toEqual([]);
    expect(inv.timelines[1].runs[0]).toMatchObject({ first: name(5, 2), last: name(6, 2), segments: 2, startLsn: '0/5000000', completeEndLsn: '0/7000000' });
    expect(inv.histories).toEqual(['00000002']);
    expect(inv.unknown).toEqual(['stray-object']);
  });
});

describe('WAL inventory across timeline switches (issue 7)', () => {
  const name = (segno: number, timeline = 1) => segmentName({ timeline, segno }, MiB16);
  const seg = (segno: number, timeline = 1) => segmentArchiveName(name(segno, timeline));
  // Timeline 2 branched off timeline 1 at 0/5000110, inside segment 5.
  const switches = new Map([['00000002', { parent: '00000001', switchLsn: '0/5000110' }]]);

  it('reads the switch from a history file: its last line', () => {
    expect(parseTimelineHistory('1\t0/3000000\tno recovery target specified\n2\t0/5000110\tno recovery target specified\n')).toEqual({
      parent: '00000002',
      switchLsn: '0/5000110',
    });
    expect(parseTimelineHistory('')).toBeUndefined();
  });

  it('a switch at X is no gap when timeline 1 reaches X and timeline 2 starts at X’s segment, even with the old primary’s WAL after X on timeline 1', () => {
    for (const oldTail of [[], [5, 6, 7]]) {
      const inv = inventoryOf([...[2, 3, 4, ...oldTail].map((n) => seg(n)), seg(5, 2), seg(6, 2), '00000002.history'], MiB16, switches);
      expect(inv.timelines.flatMap((t) => t.gaps)).toEqual([]);
      expect(inv.timelines[1].continues).toEqual({ timeline: '00000001', run: 0, switchLsn: '0/5000110' });
    }
  });

  it('names WAL missing before the switch on the old timeline, and at the start of the new one', () => {
    // Timeline 1 ends at segment 2 (3 and 4 never archived); timeline 2 starts at 7 (5 and 6 missing).
    const inv = inventoryOf([seg(1), seg(2), seg(7, 2), seg(8, 2)], MiB16, switches);
    expect(inv.timelines[0].gaps).toEqual([{ timeline: '00000001', from: name(3), to: name(4), count: 2 }]);
    expect(inv.timelines[1].gaps).toEqual([{ timeline: '00000002', from: name(5, 2), to: name(6, 2), count: 2 }]);
    expect(inv.timelines[1].continues).toBeUndefined();
    // A run ending in a partial lacks that segment too.
    const partial = inventoryOf([seg(1), seg(2), partialArchiveName(name(3), 1), seg(5, 2)], MiB16, switches);
    expect(partial.timelines[0].gaps).toEqual([{ timeline: '00000001', from: name(3), to: name(4), count: 2 }]);
    // Without the switch (no history archived) nothing can be said across timelines.
    expect(inventoryOf([seg(1), seg(2), seg(7, 2)], MiB16).timelines.flatMap((t) => t.gaps)).toEqual([]);
  });

  it('the new timeline’s run extends the window of a backup taken on the old one', () => {
    const description = {
      runs: [
        { timeline: '00000001', first: name(2), last: name(4), startLsn: '0/2000000', end: { timeline: '00000001', lsn: '0/5000000', time: '2026-12-01T01:00:00.000Z' }, files: 3, endsInPartial: false },
        {
          timeline: '00000002',
          first: name(5, 2),
          last: name(6, 2),
          startLsn: '0/5000000',
          replayFromLsn: '0/2000000',
          end: { timeline: '00000002', lsn: '0/7000000', time: '2026-12-01T02:00:00.000Z' },
          files: 2,
          endsInPartial: false,
        },
      ],
      gaps: [],
      objects: 6,
      storedBytes: 1,
    };
    const windows = pgWalArchive.windows(description, [{ restorePoint: { lsn: '0/2100000', time: '2026-12-01T00:30:00.000Z' } } as unknown as BackupManifest]);
    expect(newestWindowEnd(windows)).toEqual({ time: '2026-12-01T02:00:00.000Z', lsn: '0/7000000' });
    expect(windows.find((w) => w.timeline === '00000002')).toMatchObject({ from: '2026-12-01T00:30:00.000Z', fromLsn: '0/2100000' });
  });
});

describe('restorable windows from archive runs (pgWalArchive.windows)', () => {
  const run = (timeline: string, startLsn: string, endLsn: string, endTime: string) => ({
    timeline,
    first: 'x',
    last: 'y',
    startLsn,
    end: { timeline, lsn: endLsn, time: endTime },
    files: 1,
    endsInPartial: false,
  });
  const backup = (lsn: string, time: string) => ({ restorePoint: { lsn, time } }) as unknown as BackupManifest;

  it('a gap splits the window: each run extends only the backups it holds, and the newest window ends the whole', () => {
    const description = {
      runs: [run('00000001', '0/1000000', '0/5000000', '2026-12-01T01:00:00.000Z'), run('00000001', '0/7000000', '0/9800000', '2026-12-01T03:00:00.000Z')],
      gaps: [{ timeline: '00000001', from: 'a', to: 'b', count: 2 }],
      objects: 7,
      storedBytes: 1,
    };
    const windows = pgWalArchive.windows(description, [backup('0/2000000', '2026-12-01T00:30:00.000Z'), backup('0/6000000', '2026-12-01T01:30:00.000Z')]);
    // The backup inside the gap (0/6000000) starts no window: replay from it would need the missing segments.
    expect(windows).toEqual([{ timeline: '00000001', from: '2026-12-01T00:30:00.000Z', to: '2026-12-01T01:00:00.000Z', fromLsn: '0/2000000', toLsn: '0/5000000' }]);
    expect(newestWindowEnd(windows)).toEqual({ time: '2026-12-01T01:00:00.000Z', lsn: '0/5000000' });
    const both = pgWalArchive.windows(description, [backup('0/2000000', '2026-12-01T00:30:00.000Z'), backup('0/7100000', '2026-12-01T02:00:00.000Z')]);
    expect(both.map((w) => [w.from, w.to])).toEqual([
      ['2026-12-01T00:30:00.000Z', '2026-12-01T01:00:00.000Z'],
      ['2026-12-01T02:00:00.000Z', '2026-12-01T03:00:00.000Z'],
    ]);
    expect(newestWindowEnd(both)?.time).toBe('2026-12-01T03:00:00.000Z');
  });
});
