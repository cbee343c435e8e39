import { CLI, FLOOR_RESTORE, floorBackup, PG_DUMP, WORKER } from '../../bench/contenders';
import type { Sample } from '../../bench/samples';
import { checkTargets, verdictLine } from '../../bench/targets';

/** The benchmark's targets: met only when the medians meet them, at every scale, for CLI and worker. */
describe('checkTargets', () => {
  const FLOOR = floorBackup(3);

  function backups(contender: string, seconds: number[], extra: Partial<Sample> = {}, scale = 50): Sample[] {
    return seconds.map((s, i) => ({ contender, operation: 'backup', scale, round: i + 1, seconds: s, cpu: {}, ...extra }));
  }
  function restores(contender: string, seconds: number[], extra: Partial<Sample> = {}, scale = 50): Sample[] {
    return seconds.map((s, i) => ({ contender, operation: 'restore', scale, round: i + 1, seconds: s, cpu: {}, ...extra }));
  }
  const tidemark = { outputBytes: 100, peakRssKb: 110 * 1024 };

  /** GIVEN one scale where the CLI and the worker meet everything. */
  function passing(scale = 50): Sample[] {
    return [
      ...backups(PG_DUMP, [2.0, 2.0, 2.0, 2.0, 2.0], { outputBytes: 300 }, scale),
      ...backups(FLOOR, [2.0, 2.0, 2.0, 2.0, 2.0], { outputBytes: 100 }, scale),
      ...backups(CLI, [2.0, 2.1, 2.1, 2.0, 2.0], tidemark, scale),
      ...backups(WORKER, [2.0, 2.0, 2.0, 2.0, 2.0], tidemark, scale),
      ...restores(FLOOR_RESTORE, [5.0, 5.0, 5.0], {}, scale),
      ...restores(CLI, [5.4, 5.5, 5.4], { peakRssKb: 120 * 1024 }, scale),
    ];
  }
  const missed = (samples: Sample[], scales = [50]) => checkTargets(samples, scales, 3).filter((c) => !c.met).map((c) => c.text);

  it('meets every target when every median does, though one round of the CLI was 1.05× over the floor', () => {
    const checks = checkTargets(passing(), [50], 3);
    expect(checks).toHaveLength(10);
    expect(checks.filter((c) => !c.met)).toEqual([]);
    expect(verdictLine(checks[0])).toMatch(/^- \*\*met\*\* — backup, scale 50, tidemark CLI, time vs the floor: median 2\.00 s .* = 1\.00× \(target ≤ 1\.05×; per round 1\.00–1\.05\)$/);
  });

  it('misses a time target when the median is over, though the fastest round is under', () => {
    const samples = passing().filter((s) => s.contender !== WORKER);
    samples.push(...backups(WORKER, [1.9, 2.2, 2.2, 2.2, 2.3], tidemark));
    expect(missed(samples)).toEqual([
      expect.stringMatching(/^backup, scale 50, tidemark worker \(Node 22\), time vs the floor: median 2\.20 s .* = 1\.10×/),
    ]);
  });

  it('misses the stored-bytes and RSS targets on medians over the line', () => {
    const samples = passing().filter((s) => !(s.contender === CLI && s.operation === 'backup'));
    samples.push(...backups(CLI, [2, 2, 2], { outputBytes: 301, peakRssKb: 150 * 1024 }));
    expect(missed(samples)).toEqual([
      expect.stringMatching(/^backup, scale 50, tidemark CLI, stored bytes: .* = 1\.00× \(target ≤ 1×\)$/),
      'backup, scale 50, tidemark CLI, peak RSS: median 150 MiB (target < 150 MiB)',
    ]);
  });

  it('misses every target of a scale, or a contender, that was not measured', () => {
    const samples = passing(50).filter((s) => s.contender !== WORKER);
    const texts = missed(samples, [50, 200]);
    expect(texts.filter((t) => t.includes('scale 50'))).toEqual([
      'backup, scale 50, tidemark worker (Node 22), time vs the floor: not measured (tidemark worker (Node 22))',
      'backup, scale 50, tidemark worker (Node 22), time vs pg_dump -Fc: not measured (tidemark worker (Node 22))',
      'backup, scale 50, tidemark worker (Node 22), stored bytes: not measured (tidemark worker (Node 22))',
      'backup, scale 50, tidemark worker (Node 22), peak RSS: not measured (no RSS samples)',
    ]);
    expect(texts.filter((t) => t.includes('scale 200'))).toHaveLength(10);
  });

  it('holds the restore to its floor: 1.1× is the limit', () => {
    const samples = passing().filter((s) => !(s.contender === CLI && s.operation === 'restore'));
    samples.push(...restores(CLI, [5.6, 5.6, 5.5]));
    expect(missed(samples)).toEqual([
      expect.stringMatching(/^restore, scale 50, tidemark CLI, time vs its floor: median 5\.60 s .* = 1\.12× \(target ≤ 1\.1×/),
      'restore, scale 50, tidemark CLI, peak RSS: not measured (no RSS samples)',
    ]);
  });
});
