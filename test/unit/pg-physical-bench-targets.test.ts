import fc from 'fast-check';
import { checkPhysicalTargets, PHYSICAL_TARGETS, quantileOf, type PhysicalSampleLike } from '../../bench/targets';

const names = { tidemark: 'tm', zstdFloor: 'floor', pgbackrest: 'pgbr' };

/** One round at one scale where tidemark meets every target with room to spare. */
function round(scale: number, r: number, over: Partial<Record<string, Partial<PhysicalSampleLike>>> = {}): PhysicalSampleLike[] {
  const s = (contender: string, operation: string, seconds: number, extra: Partial<PhysicalSampleLike> = {}): PhysicalSampleLike => ({
    contender,
    operation,
    scale,
    round: r,
    seconds,
    ...extra,
    ...over[`${contender}/${operation}`],
  });
  return [
    s('tm', 'full', 2, { storedBytes: 1000, peakRssKb: 150 * 1024 }),
    s('floor', 'full', 2),
    s('pgbr', 'full', 4),
    s('tm', 'incr', 1, { storedBytes: 50, peakRssKb: 140 * 1024 }),
    s('pgbr', 'incr', 2),
    s('tm', 'restore', 1),
    s('pgbr', 'restore', 2),
    s('tm', 'pitr', 3),
    s('pgbr', 'pitr', 4),
  ];
}

const verdicts = (samples: PhysicalSampleLike[], lags: number[] = [1, 2, 3], lost = 0) =>
  checkPhysicalTargets(samples, [{ scale: 50, flushSeconds: 10, lags, lost }], names);

describe('the physical benchmark targets', () => {
  it('are all met when tidemark meets each one, and each names its figures', () => {
    const checks = verdicts([...round(50, 1), ...round(200, 1)]);
    expect(checks.filter((c) => !c.met)).toEqual([]);
    // 8 per scale, 2 flatness lines, 1 recovery point.
    expect(checks).toHaveLength(19);
    expect(checks[0].text).toBe('full backup, scale 50, vs the compressed floor: median 2.00 s vs 2.00 s = 1.00× (target ≤ 1.2×)');
  });

  it('fails each target on its own', () => {
    const missedBy = (over: Parameters<typeof round>[2], lags?: number[], lost?: number) =>
      verdicts([...round(50, 1, over), ...round(200, 1)], lags, lost)
        .filter((c) => !c.met)
        .map((c) => c.text.split(':')[0]);
    expect(missedBy({ 'tm/full': { seconds: 2.41 } })).toEqual(['full backup, scale 50, vs the compressed floor']);
    expect(missedBy({ 'pgbr/full': { seconds: 2 } })).toEqual(['full backup, scale 50, vs pgbr']);
    expect(missedBy({ 'tm/incr': { storedBytes: 101, peakRssKb: 140 * 1024 } })).toEqual(['incr after a 1% update, scale 50, stored bytes']);
    expect(missedBy({ 'tm/incr': { seconds: 2.5, storedBytes: 50, peakRssKb: 140 * 1024 } })).toEqual(['incr after a 1% update, scale 50, time vs the full']);
    expect(missedBy({ 'pgbr/restore': { seconds: 1 } })).toEqual(['restore of full + incr, scale 50, vs pgbr']);
    expect(missedBy({ 'pgbr/pitr': { seconds: 3 } })).toEqual(['PITR (restore, start, replay, promote), scale 50, vs pgbr']);
    expect(missedBy({}, [1, 2, 12.5])).toEqual(['recovery point under load, scale 50']);
    expect(missedBy({}, [1, 2, 3], 1)).toEqual(['recovery point under load, scale 50']);
    // 320 MiB at scale 50: over the limit there, and scale 200's 150 MiB is not "growth".
    expect(missedBy({ 'tm/full': { seconds: 2, storedBytes: 1000, peakRssKb: 320 * 1024 } })).toEqual(['full backup, scale 50, peak RSS']);
  });

  it('holds peak RSS flat: the largest scale within 1.25× of the smallest', () => {
    const grown = verdicts([...round(50, 1), ...round(200, 1, { 'tm/full': { seconds: 2, storedBytes: 1000, peakRssKb: 190 * 1024 } })]);
    expect(grown.filter((c) => !c.met).map((c) => c.text)).toEqual(['full backup, peak RSS flat from scale 50 to 200: 150 → 190 MiB = 1.27× (target ≤ 1.25×)']);
  });

  it('holds the worker to the same memory limit when it ran', () => {
    const worker = (kb: number): PhysicalSampleLike => ({ contender: 'wk', operation: 'full', scale: 50, round: 1, seconds: 2, peakRssKb: kb });
    const judge = (kb: number) => checkPhysicalTargets([...round(50, 1), worker(kb)], [], { ...names, worker: 'wk' }).filter((c) => c.text.includes('wk'));
    expect(judge(200 * 1024).map((c) => [c.met, c.text])).toEqual([[true, 'full backup, scale 50, wk, peak RSS: 200 MiB (target < 300 MiB)']]);
    expect(judge(310 * 1024).map((c) => c.met)).toEqual([false]);
  });

  it('holds the CLI on Node 22 to the restore target too when it ran, on its own line', () => {
    const on22 = (seconds: number): PhysicalSampleLike => ({ contender: 'n22', operation: 'restore', scale: 50, round: 1, seconds });
    const judge = (seconds: number) => checkPhysicalTargets([...round(50, 1), on22(seconds)], [], { ...names, node22: 'n22' }).filter((c) => c.text.includes('n22'));
    expect(judge(1.5).map((c) => [c.met, c.text])).toEqual([[true, 'restore of full + incr, scale 50, n22, vs pgbr: median 1.50 s vs 2.00 s = 0.75× (target < 1×)']]);
    expect(judge(2.5).map((c) => c.met)).toEqual([false]);
    expect(checkPhysicalTargets(round(50, 1), [], { ...names, node22: 'n22' }).some((c) => c.text.includes('n22'))).toBe(false);
  });

  it('holds the CLI on Node 22 to the full backup targets too when it took fulls: floor and pgBackRest, on their own lines', () => {
    const on22 = (seconds: number): PhysicalSampleLike => ({ contender: 'n22', operation: 'full', scale: 50, round: 1, seconds });
    const judge = (seconds: number) => checkPhysicalTargets([...round(50, 1), on22(seconds)], [], { ...names, node22: 'n22' }).filter((c) => c.text.includes('n22'));
    expect(judge(2.2).map((c) => [c.met, c.text])).toEqual([
      [true, 'full backup, scale 50, n22, vs the compressed floor: median 2.20 s vs 2.00 s = 1.10× (target ≤ 1.2×)'],
      [true, 'full backup, scale 50, n22, vs pgbr: median 2.20 s vs 4.00 s = 0.55× (target < 1×)'],
    ]);
    expect(judge(3).map((c) => c.met)).toEqual([false, true]);
    expect(judge(4.5).map((c) => c.met)).toEqual([false, false]);
  });

  it('says what was not measured instead of passing it', () => {
    const checks = verdicts(round(50, 1).filter((s) => s.contender !== 'pgbr'), []);
    expect(checks.filter((c) => c.text.includes('not measured')).length).toBe(4);
    expect(checks.filter((c) => c.text.includes('not measured')).every((c) => !c.met)).toBe(true);
  });

  it('judge medians over rounds: one slow round does not miss a target', () => {
    fc.assert(
      fc.property(fc.double({ min: 1.21, max: 100, noNaN: true }), (slow) => {
        const samples = [...round(50, 1), ...round(50, 2), ...round(50, 3, { 'tm/full': { seconds: 2 * slow, storedBytes: 1000, peakRssKb: 150 * 1024 } })];
        expect(checkPhysicalTargets(samples, [], names)[0].met).toBe(true);
        const twice = [...samples, ...round(50, 4, { 'tm/full': { seconds: 2 * slow, storedBytes: 1000, peakRssKb: 150 * 1024 } })];
        // Two of four slow: the median is their mean with a fast one, slow enough to miss once slow ≥ 1.4.
        expect(checkPhysicalTargets(twice, [], names)[0].met).toBe((2 + 2 * slow) / 2 <= PHYSICAL_TARGETS.fullVsCompressedFloor * 2);
      }),
    );
  });

  it('takes nearest-rank quantiles', () => {
    expect(quantileOf([], 0.5)).toBeNaN();
    expect(quantileOf([5], 0.99)).toBe(5);
    expect(quantileOf([1, 2, 3, 4], 0.5)).toBe(2);
    expect(quantileOf(Array.from({ length: 100 }, (_, i) => i + 1), 0.99)).toBe(99);
  });
});
