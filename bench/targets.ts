/**
 * The targets, checked against one run: a target is met only when the medians meet it.
 * Pure, so the rule itself is tested (test/unit/bench-targets.test.ts).
 */
import { formatBytes } from '../lib/core/format';
import { CLI, FLOOR_RESTORE, floorBackup, PG_DUMP, TIDEMARK_BACKUPS } from './contenders';
import { medianOf, pairedRatios, select, type Sample } from './samples';

export const TARGETS = {
  /** backup median ≤ this × the floor's (same tools, same level, no node). */
  backupVsFloor: 1.05,
  /** backup median ≤ this × pg_dump -Fc's. */
  backupVsPgDump: 1.1,
  /** restore median ≤ this × its floor's. */
  restoreVsFloor: 1.1,
  /** peak RSS of the node process, median over rounds, below this. */
  peakRssMiB: 150,
} as const;

export interface TargetCheck {
  readonly met: boolean;
  /** One line: what was compared, the figures, the target. */
  readonly text: string;
}

const s2 = (n: number) => n.toFixed(2);

function check(met: boolean, subject: string, detail: string): TargetCheck {
  return { met, text: `${subject}: ${detail}` };
}

function missing(subject: string, what: string): TargetCheck {
  return { met: false, text: `${subject}: not measured (${what})` };
}

/** Median time of `contender` against `base`'s, within `limit`× of it. */
function timeCheck(samples: readonly Sample[], subject: string, contender: string, base: string, limit: number): TargetCheck {
  const [t, b] = [medianOf(samples, contender), medianOf(samples, base)];
  if (Number.isNaN(t) || Number.isNaN(b)) return missing(subject, Number.isNaN(t) ? contender : base);
  const paired = pairedRatios(samples, contender, base);
  const range = paired.length > 1 ? `; per round ${s2(Math.min(...paired))}–${s2(Math.max(...paired))}` : '';
  return check(t <= limit * b, subject, `median ${s2(t)} s vs \`${base}\` ${s2(b)} s = ${s2(t / b)}× (target ≤ ${limit}×${range})`);
}

function rssCheck(samples: readonly Sample[], subject: string, contender: string): TargetCheck {
  const kb = medianOf(samples, contender, (s) => s.peakRssKb);
  if (Number.isNaN(kb)) return missing(subject, 'no RSS samples');
  const mib = kb / 1024;
  return check(mib < TARGETS.peakRssMiB, subject, `median ${mib.toFixed(0)} MiB (target < ${TARGETS.peakRssMiB} MiB)`);
}

/** Every target at every scale, in report order. `level` is the zstd level tidemark ran with. */
export function checkTargets(samples: readonly Sample[], scales: readonly number[], level: number): TargetCheck[] {
  const out: TargetCheck[] = [];
  const floor = floorBackup(level);
  for (const scale of scales) {
    const backups = select(samples, scale, 'backup');
    for (const c of TIDEMARK_BACKUPS) {
      const at = (what: string) => `backup, scale ${scale}, ${c}, ${what}`;
      out.push(timeCheck(backups, at('time vs the floor'), c, floor, TARGETS.backupVsFloor));
      out.push(timeCheck(backups, at('time vs pg_dump -Fc'), c, PG_DUMP, TARGETS.backupVsPgDump));
      const [stored, reference] = [medianOf(backups, c, (s) => s.outputBytes), medianOf(backups, PG_DUMP, (s) => s.outputBytes)];
      out.push(
        Number.isNaN(stored) || Number.isNaN(reference)
          ? missing(at('stored bytes'), Number.isNaN(stored) ? c : PG_DUMP)
          : check(stored <= reference, at('stored bytes'), `${formatBytes(stored)} vs pg_dump -Fc's file ${formatBytes(reference)} = ${s2(stored / reference)}× (target ≤ 1×)`),
      );
      out.push(rssCheck(backups, at('peak RSS'), c));
    }
    const restores = select(samples, scale, 'restore');
    out.push(timeCheck(restores, `restore, scale ${scale}, ${CLI}, time vs its floor`, CLI, FLOOR_RESTORE, TARGETS.restoreVsFloor));
    out.push(rssCheck(restores, `restore, scale ${scale}, ${CLI}, peak RSS`, CLI));
  }
  return out;
}

/** "- **met** — …" / "- **missed** — …". */
export function verdictLine(c: TargetCheck): string {
  return `- **${c.met ? 'met' : 'missed'}** — ${c.text}`;
}

/** The MySQL/MariaDB targets of issue 8 (bench/mysql-logical.ts). */
export const MYSQL_TARGETS = {
  /** backup median ≤ this × the floor's (`mariadb-dump | zstd -T0 -<level>`). */
  backupVsFloor: 1.1,
  /** restore median ≤ this × `mariadb < dump.sql`'s ("no slower"). */
  restoreVsPlain: 1.0,
  /** peak RSS at the largest size ≤ this × the smallest size's ("flat with size"). */
  rssGrowth: 1.25,
} as const;

/**
 * Every MySQL target, in report order. `names` are the contenders' names (bench/mysql-contenders.ts);
 * sizes are compared for RSS flatness only when there are two or more.
 */
export function checkMysqlTargets(
  samples: readonly Sample[],
  sizes: readonly number[],
  names: { readonly cli: string; readonly floor: string; readonly plainRestore: string; readonly myloader: string },
): TargetCheck[] {
  const out: TargetCheck[] = [];
  for (const size of sizes) {
    out.push(timeCheck(select(samples, size, 'backup'), `backup, ${size} rows, ${names.cli}, time vs the floor`, names.cli, names.floor, MYSQL_TARGETS.backupVsFloor));
    const restores = select(samples, size, 'restore');
    const restore = timeCheck(restores, `restore, ${size} rows, ${names.cli}, time vs \`${names.plainRestore}\``, names.cli, names.plainRestore, MYSQL_TARGETS.restoreVsPlain);
    const loader = medianOf(restores, names.myloader);
    out.push(Number.isNaN(loader) ? restore : { ...restore, text: `${restore.text}; \`${names.myloader}\` ${s2(loader)} s beside it` });
  }
  for (const operation of ['backup', 'restore'] as const) {
    const subject = `${operation}, ${names.cli}, peak RSS flat with size`;
    if (sizes.length < 2) {
      out.push(missing(subject, 'one size only'));
      continue;
    }
    const [small, large] = [sizes[0], sizes[sizes.length - 1]];
    const [a, b] = [small, large].map((size) => medianOf(select(samples, size, operation), names.cli, (s) => s.peakRssKb));
    if (Number.isNaN(a) || Number.isNaN(b)) {
      out.push(missing(subject, 'no RSS samples'));
      continue;
    }
    const detail = `median ${(a / 1024).toFixed(0)} MiB at ${small} rows, ${(b / 1024).toFixed(0)} MiB at ${large} rows = ${s2(b / a)}× for ${s2(large / small)}× the rows (target ≤ ${MYSQL_TARGETS.rssGrowth}×)`;
    out.push(check(b <= MYSQL_TARGETS.rssGrowth * a, subject, detail));
  }
  return out;
}
