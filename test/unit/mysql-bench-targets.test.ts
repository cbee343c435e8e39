import fc from 'fast-check';
import { median } from '../../bench/measure';
import { MYSQL_CONTENDERS as C } from '../../bench/mysql-contenders';
import type { Sample } from '../../bench/samples';
import { checkMysqlTargets, MYSQL_TARGETS } from '../../bench/targets';

/** The MySQL benchmark's verdicts: met exactly when the medians meet the targets. */
describe('checkMysqlTargets', () => {
  const names = { cli: C.cli, floor: C.floor(3), plainRestore: C.plainRestore, myloader: C.myloader };
  const samples = (contender: string, operation: Sample['operation'], seconds: readonly number[], scale: number, extra: Partial<Sample> = {}): Sample[] =>
    seconds.map((s, round) => ({ contender, operation, scale, round, seconds: s, cpu: {}, ...extra }));
  const times = fc.array(fc.double({ min: 0.1, max: 100, noNaN: true }), { minLength: 3, maxLength: 7 });

  it('the backup verdict is met iff the CLI median ≤ 1.1 × the floor median', () => {
    fc.assert(
      fc.property(times, times, (cli, floor) => {
        const [check] = checkMysqlTargets([...samples(C.cli, 'backup', cli, 10), ...samples(names.floor, 'backup', floor, 10)], [10], names);
        expect(check.text).toMatch(/^backup, 10 rows, tidemark CLI, time vs the floor: median /);
        expect(check.met).toBe(median(cli) <= MYSQL_TARGETS.backupVsFloor * median(floor));
      }),
    );
  });

  it('the restore verdict is met iff the CLI is no slower than `mariadb < dump.sql`, with myloader beside it', () => {
    fc.assert(
      fc.property(times, times, times, (cli, plain, loader) => {
        const all = [...samples(C.cli, 'restore', cli, 10), ...samples(C.plainRestore, 'restore', plain, 10), ...samples(C.myloader, 'restore', loader, 10)];
        const check = checkMysqlTargets(all, [10], names)[1];
        expect(check.met).toBe(median(cli) <= median(plain));
        expect(check.text).toContain(`\`myloader -t 2\` ${median(loader).toFixed(2)} s beside it`);
      }),
    );
  });

  it('peak RSS is flat when the largest size needs ≤ 1.25× the smallest size’s, and is not measured with one size', () => {
    const rss = (kbSmall: number, kbLarge: number) => [
      ...samples(C.cli, 'backup', [1, 1, 1], 1000, { peakRssKb: kbSmall }),
      ...samples(C.cli, 'backup', [4, 4, 4], 4000, { peakRssKb: kbLarge }),
      ...samples(C.cli, 'restore', [1, 1, 1], 1000, { peakRssKb: kbSmall }),
      ...samples(C.cli, 'restore', [4, 4, 4], 4000, { peakRssKb: kbLarge }),
    ];
    const flat = (checks: ReturnType<typeof checkMysqlTargets>) => checks.filter((c) => c.text.includes('peak RSS flat'));
    expect(flat(checkMysqlTargets(rss(100 * 1024, 110 * 1024), [1000, 4000], names)).map((c) => c.met)).toEqual([true, true]);
    const grown = flat(checkMysqlTargets(rss(100 * 1024, 200 * 1024), [1000, 4000], names));
    expect(grown.map((c) => c.met)).toEqual([false, false]);
    expect(grown[0].text).toBe('backup, tidemark CLI, peak RSS flat with size: median 100 MiB at 1000 rows, 200 MiB at 4000 rows = 2.00× for 4.00× the rows (target ≤ 1.25×)');
    expect(flat(checkMysqlTargets(rss(1, 1), [1000], names)).map((c) => [c.met, c.text])).toEqual([
      [false, 'backup, tidemark CLI, peak RSS flat with size: not measured (one size only)'],
      [false, 'restore, tidemark CLI, peak RSS flat with size: not measured (one size only)'],
    ]);
  });

  it('a contender that did not run is a missed target, never a met one', () => {
    const checks = checkMysqlTargets(samples(C.cli, 'backup', [1, 1, 1], 10), [10], names);
    expect(checks[0]).toEqual({ met: false, text: `backup, 10 rows, tidemark CLI, time vs the floor: not measured (${names.floor})` });
  });
});
