import fc from 'fast-check';
import { ArchiveStreamBuilder, type PieceNaming } from '../../lib/core/retention/archive-stream';
import { archiveRuns } from '../../lib/core/retention/catalog-model';
import { ArchiveDeletion } from '../../lib/core/retention/deletion';

/** The compact archive stream: what goes in comes out, in order, across chunk boundaries. */
const naming: PieceNaming = (start, partial) => `s/wal/1/${start}${partial ? `.partial.${partial}` : ''}`;
const T0 = Date.UTC(2026, 0, 1);

describe('ArchiveStream', () => {
  it('returns every piece it was given (across the first chunk’s growth), sorted by start with the completed piece after its partials, whatever the input order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ start: fc.integer({ min: 0, max: 300 }), partial: fc.integer({ min: 0, max: 3 }), bytes: fc.integer({ min: 0, max: 1 << 24 }), locked: fc.option(fc.integer({ min: 0, max: 1e9 })) }), { maxLength: 700 }),
        (input) => {
          // One piece per (start, generation): a key exists once.
          const unique = [...new Map(input.map((p) => [`${p.start}/${p.partial}`, p])).values()];
          const b = new ArchiveStreamBuilder('wal', '1', naming);
          for (const p of unique) b.add({ start: p.start, end: p.start + 1, endTime: T0 + p.start, bytes: p.bytes, partial: p.partial, ...(p.locked === null ? {} : { lockedUntil: T0 + p.locked }) });
          const s = b.build();
          const rank = (g: number) => (g === 0 ? Infinity : g);
          const expected = [...unique].sort((x, y) => x.start - y.start || rank(x.partial) - rank(y.partial));
          expect([...s.pieces()].map((p) => [p.key, p.bytes, p.lockedUntil])).toEqual(
            expected.map((p) => [naming(p.start, p.partial), p.bytes, p.locked === null ? undefined : new Date(T0 + p.locked).toISOString()]),
          );
          // Superseded: every piece but the last of its start.
          for (let i = 0; i < s.length; i++) expect(s.superseded(i)).toBe(i + 1 < s.length && expected[i + 1].start === expected[i].start);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('holds 200,000 pieces over four chunks: positions, keys, runs and deletion ranges stay exact', () => {
    const b = new ArchiveStreamBuilder('wal', '1', naming);
    const n = 200_000;
    // Given in reverse (the builder sorts), with a gap at 100,000.
    for (let i = n - 1; i >= 0; i--) if (i !== 100_000) b.add({ start: i, end: i + 1, endTime: T0 + i * 1000, bytes: 16, tier: i % 2 ? 'cold' : 'standard' });
    const s = b.build();
    expect(s.length).toBe(n - 1);
    for (const i of [0, 65_535, 65_536, 99_999, 100_000, 131_071, 131_072, n - 2]) {
      const start = i < 100_000 ? i : i + 1;
      expect([s.start(i), s.key(i), s.endTime(i), s.tier(i)]).toEqual([start, naming(start, 0), T0 + start * 1000, start % 2 ? 'cold' : 'standard']);
    }
    expect(archiveRuns([s]).map((r) => [r.start, r.end])).toEqual([[0, 100_000], [100_001, n]]);
    const d = new ArchiveDeletion(s, 65_000, 70_000, 'test', T0);
    expect([d.objects, d.bytes, d.keys().length, d.keys()[0], d.keys()[4999]]).toEqual([5000, 80_000, 5000, naming(65_000, 0), naming(69_999, 0)]);
    expect([...d.keyBatches(1000)].map((batch) => batch.length)).toEqual([1000, 1000, 1000, 1000, 1000]);
    expect(d.toJSON()).toMatchObject({ objects: 5000, firstKey: naming(65_000, 0), lastKey: naming(69_999, 0) });
    expect(s.without((i) => i >= 1000).length).toBe(1000);
  });

  it('refuses a listed key the naming would not rebuild, so retention never deletes a name it did not list', () => {
    const b = new ArchiveStreamBuilder('wal', '1', naming);
    expect(b.add({ start: 5, end: 6, endTime: T0, bytes: 1 }, 's/wal/1/5')).toBe(true);
    expect(b.add({ start: 6, end: 7, endTime: T0, bytes: 1 }, 's/wal/1/06')).toBe(false);
    expect([...b.build().pieces()].map((p) => p.key)).toEqual(['s/wal/1/5']);
  });

  it('dates a deletion for the latest lock among its pieces that has not ended', () => {
    const b = new ArchiveStreamBuilder('wal', '1', naming);
    [T0 - 10, T0 + 5000, T0 + 2000, NaN].forEach((lock, i) => b.add({ start: i, end: i + 1, endTime: T0, bytes: 1, ...(Number.isNaN(lock) ? {} : { lockedUntil: lock }) }));
    const s = b.build();
    expect(new ArchiveDeletion(s, 0, 4, 'x', T0).notBefore).toBe(new Date(T0 + 5000).toISOString());
    expect(new ArchiveDeletion(s, 0, 1, 'x', T0).notBefore).toBeUndefined();
    expect(new ArchiveDeletion(s, 3, 4, 'x', T0).notBefore).toBeUndefined();
  });
});
