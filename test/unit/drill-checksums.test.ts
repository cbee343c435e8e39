import fc from 'fast-check';
import { compareChecksums, describeComparison, keyRanges, planTableHashing, recordedHashing, SAMPLE_RANGES, type TableChecksum } from '../../lib/core/drill/checksums';
import { assertionMatches } from '../../lib/core/drill/assertions';
import { predictRto, rpoSeconds, rtoSeconds } from '../../lib/core/drill/measure';

const MiB = 1024 * 1024;

describe('planTableHashing: bounded cost per table', () => {
  it('hashes whole every table up to the budget; above it samples about the budget, or counts only without a key', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 45 }),
        fc.integer({ min: 1, max: 2 ** 32 }),
        fc.array(fc.string({ minLength: 1, maxLength: 8 }), { maxLength: 3 }),
        (bytes, budget, key) => {
          const plan = planTableHashing({ name: 't', bytes, primaryKey: key }, budget);
          if (bytes <= budget) return plan.mode === 'exact';
          if (key.length === 0) return plan.mode === 'count';
          if (plan.mode !== 'sample') return false;
          const hashed = bytes / plan.modulus;
          // a power of two, the sample within the budget, and not needlessly small (more than half of it)
          return Number.isInteger(Math.log2(plan.modulus)) && hashed <= budget && hashed > budget / 2 && plan.key === key;
        },
      ),
    );
  });

  it('a drill repeats the hashing the record was made with', () => {
    expect(recordedHashing({ rows: 3, sum: '9' })).toEqual({ mode: 'exact' });
    expect(recordedHashing({ rows: 3, sum: '9', sample: { key: ['id'], modulus: 8 } })).toEqual({ mode: 'sample', key: ['id'], modulus: 8, byValue: false });
    expect(recordedHashing({ rows: 3, sum: '9', sample: { key: ['id'], modulus: 8, by: 'value' } })).toEqual({ mode: 'sample', key: ['id'], modulus: 8, byValue: true });
    expect(recordedHashing({ rows: 3, countOnly: 'no key' })).toEqual({ mode: 'count', reason: 'no key' });
    expect(planTableHashing({ name: 't', bytes: 600 * MiB, primaryKey: ['id'] })).toEqual({ mode: 'sample', key: ['id'], modulus: 4, byValue: false });
    expect(planTableHashing({ name: 't', bytes: 600 * MiB, primaryKey: ['id'], integerKey: true })).toEqual({ mode: 'sample', key: ['id'], modulus: 4, byValue: true });
    expect(planTableHashing({ name: 't', bytes: 600 * MiB, primaryKey: ['a', 'b'], integerKey: true })).toMatchObject({ byValue: false });
    // Where the engine reads key ranges through an index (PostgreSQL): one integer key gets ranges.
    expect(planTableHashing({ name: 't', bytes: 640 * MiB, primaryKey: ['id'], integerKey: true }, undefined, {})).toEqual({ mode: 'ranges', key: 'id', fraction: 0.05 });
    expect(planTableHashing({ name: 't', bytes: 640 * MiB, primaryKey: ['id'] }, undefined, {})).toMatchObject({ mode: 'sample' });
    expect(recordedHashing({ rows: 3, sum: '9', sample: { key: ['id'], ranges: [['1', '2']] } })).toEqual({ mode: 'ranges', key: 'id', fraction: 0, ranges: [['1', '2']] });
  });
});

describe('keyRanges: a sample of a key span that any copy of the table reads the same', () => {
  const span = fc.tuple(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 62n }));
  it('ordered, disjoint, inside min..max, at most SAMPLE_RANGES, covering about the fraction asked (at least one key)', () => {
    fc.assert(
      fc.property(span, fc.double({ min: 1e-9, max: 1, noNaN: true }), ([min, width], fraction) => {
        const max = min + width > 2n ** 63n - 1n ? 2n ** 63n - 1n : min + width;
        const ranges = keyRanges(min, max, fraction).map(([lo, hi]) => [BigInt(lo), BigInt(hi)] as const);
        if (ranges.length === 0 || ranges.length > SAMPLE_RANGES) return false;
        let previous = min - 1n;
        let covered = 0n;
        for (const [lo, hi] of ranges) {
          if (lo <= previous || hi < lo || lo < min || hi > max) return false;
          previous = hi;
          covered += hi - lo + 1n;
        }
        // about the fraction: less by under a key per range (integer division), never none
        const asked = Number(max - min + 1n) * fraction;
        const slack = asked * 1e-12; // a double's rounding of huge spans
        return Number(covered) <= Math.max(1, Math.ceil(asked)) + slack + 1 && Number(covered) >= Math.min(asked, 1) && Number(covered) >= asked - SAMPLE_RANGES - slack;
      }),
    );
  });

  it('the same inputs give the same ranges; an empty or inverted span none', () => {
    expect(keyRanges(1n, 1000n, 0.1)).toEqual(keyRanges(1n, 1000n, 0.1));
    expect(keyRanges(1n, 1000n, 0.1)[0]).toEqual(['1', '6']);
    expect(keyRanges(5n, 4n, 0.5)).toEqual([]);
    expect(keyRanges(7n, 7n, 0.01)).toEqual([['7', '7']]);
  });
});

const checksum = fc.record<TableChecksum>(
  { rows: fc.nat(), sum: fc.bigInt({ min: 0n, max: 2n ** 70n }).map(String) },
  { requiredKeys: ['rows', 'sum'] },
);
const tables = fc.dictionary(fc.stringMatching(/^[a-z]{1,6}\.[a-z]{1,6}$/), checksum, { minKeys: 1, maxKeys: 8 });

describe('compareChecksums', () => {
  it('equal records pass and count every table', () => {
    fc.assert(
      fc.property(tables, (t) => {
        const c = compareChecksums(t, { ...t });
        return c.ok && c.differences.length === 0 && c.exact === Object.keys(t).length;
      }),
    );
  });

  it('any one change (count, sum, a missing or an extra table) fails and names that table', () => {
    fc.assert(
      fc.property(tables, fc.nat(), fc.constantFrom('rows', 'sum', 'missing', 'extra'), (t, pick, change) => {
        const names = Object.keys(t);
        const name = names[pick % names.length];
        const restored: Record<string, TableChecksum> = { ...t };
        if (change === 'rows') restored[name] = { ...t[name], rows: t[name].rows + 1 };
        if (change === 'sum') restored[name] = { ...t[name], sum: String(BigInt(t[name].sum!) + 1n) };
        if (change === 'missing') delete restored[name];
        const extra = 'zz_extra.table';
        if (change === 'extra') restored[extra] = { rows: 0 };
        const c = compareChecksums(t, restored);
        const named = change === 'extra' ? extra : name;
        return !c.ok && c.differences.length === 1 && c.differences[0].startsWith(`${named}:`) && describeComparison(c, 'x').includes(named);
      }),
    );
  });
});

describe('RTO, RPO and the predicted RTO', () => {
  const time = fc.integer({ min: Date.parse('2020-01-01'), max: Date.parse('2030-01-01') });

  it('RTO is start → checks passed, RPO the target (or start, for latest) minus the restored point, never negative', () => {
    fc.assert(
      fc.property(time, time, time, (a, b, c) => {
        const iso = (n: number) => new Date(n).toISOString();
        const rto = rtoSeconds(iso(a), iso(b));
        const rpoLatest = rpoSeconds({ kind: 'latest' }, iso(a), iso(c));
        const rpoTime = rpoSeconds({ kind: 'time', at: iso(b) }, iso(a), iso(c));
        return (
          Math.abs(rto - Math.max(0, (b - a) / 1000)) < 0.01 &&
          Math.abs(rpoLatest - Math.max(0, (a - c) / 1000)) < 0.01 &&
          Math.abs(rpoTime - Math.max(0, (b - c) / 1000)) < 0.01
        );
      }),
    );
  });

  it('prediction: the median rate of passing drills × bytes + rehydration; failed drills do not count', () => {
    const history = [
      { ok: true, rtoSeconds: 10, bytes: 1000 },
      { ok: true, rtoSeconds: 30, bytes: 1000 },
      { ok: true, rtoSeconds: 20, bytes: 1000 },
      { ok: false, rtoSeconds: 999, bytes: 1 },
    ];
    expect(predictRto(history, 2000)?.seconds).toBe(40);
    expect(predictRto(history, 2000, 18000)?.seconds).toBe(18040);
    expect(predictRto([], 2000)).toBeUndefined();
    expect(predictRto([], 2000, 3600)?.seconds).toBe(3600);
    fc.assert(
      fc.property(fc.array(fc.record({ ok: fc.boolean(), rtoSeconds: fc.double({ min: 0.1, max: 1e5, noNaN: true }), bytes: fc.integer({ min: 1, max: 2 ** 40 }) })), fc.integer({ min: 0, max: 2 ** 40 }), (h, bytes) => {
        const p = predictRto(h, bytes);
        const rates = h.filter((r) => r.ok).map((r) => r.rtoSeconds / r.bytes);
        if (rates.length === 0) return p === undefined;
        // Rounded to 1/100 s, in doubles: allow that, relative to the size of the figure.
        const [lo, hi] = [Math.min(...rates) * bytes, Math.max(...rates) * bytes];
        const slack = 0.01 + hi * 1e-12;
        return p !== undefined && p.seconds >= lo - slack && p.seconds <= hi + slack;
      }),
    );
  });
});

describe('assertions compare as text', () => {
  it('numbers, strings, booleans in either spelling, null', () => {
    expect(assertionMatches('100000', 100000)).toBe(true);
    expect(assertionMatches('100000.0', 100000)).toBe(true);
    expect(assertionMatches('1', 42)).toBe(false);
    expect(assertionMatches('abc', 'abc')).toBe(true);
    expect(assertionMatches('t', true)).toBe(true);
    expect(assertionMatches('true', true)).toBe(true);
    expect(assertionMatches('0', false)).toBe(true);
    expect(assertionMatches('t', false)).toBe(false);
    expect(assertionMatches('yes', true)).toBe(false);
    expect(assertionMatches(null, null)).toBe(true);
    expect(assertionMatches('', null)).toBe(false);
    expect(assertionMatches(null, 0)).toBe(false);
  });
});
