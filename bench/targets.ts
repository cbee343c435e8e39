/**
 * The issue's targets, checked against one run: a target is met only when the medians meet it.
 * Pure, so the rule itself is tested (test/unit/bench-targets.test.ts).
 */
import { formatBytes } from '../lib/core/format';
import { CLI, FLOOR_RESTORE, floorBackup, PG_DUMP, TIDEMARK_BACKUPS } from './contenders';
import { medianOf, pairedRatios, select, type Sample } from './samples';
import { median } from './measure';

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

// ---- Physical backups (bench/physical-postgres.ts): issue 7's targets ----

/** What bench/physical-postgres.ts records, as far as the targets read it. */
export interface PhysicalSampleLike {
  readonly contender: string;
  readonly operation: string;
  readonly scale: number;
  readonly round: number;
  readonly seconds: number;
  readonly storedBytes?: number;
  readonly peakRssKb?: number;
}

export interface RecoveryPointLike {
  readonly scale: number;
  readonly flushSeconds: number;
  readonly lags: readonly number[];
  readonly lost: number;
}

export const PHYSICAL_TARGETS = {
  /** tidemark full ≤ this × the compressed floor (pg_basebackup | zstd -T0 -3). */
  fullVsCompressedFloor: 1.2,
  /** tidemark's incr after a 1% update stores at most this share of its full's bytes. */
  incrStoredShare: 0.1,
  /** Peak RSS of the node process for full and incr, below this at every scale. */
  peakRssMiB: 300,
  /** "Flat": the largest scale's peak RSS at most this × the smallest scale's. */
  rssGrowth: 1.25,
  /** Recovery point p99 ≤ flushSeconds + this. */
  recoveryPointSlackSeconds: 2,
} as const;

/** The physical contenders' names, as bench/physical-postgres.ts records them. */
export interface PhysicalNames {
  readonly tidemark: string;
  /** The Fargate worker's contender, held to the same memory targets when it ran. */
  readonly worker?: string;
  /** The CLI on Node 22, held to the full backup's and the restore's targets too when it ran (zlib's zstd in process both ways). */
  readonly node22?: string;
  readonly zstdFloor: string;
  readonly pgbackrest: string;
}

/** Nearest-rank quantile; NaN for no values. */
export function quantileOf(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(q * s.length) - 1)];
}

function physicalMedian(samples: readonly PhysicalSampleLike[], scale: number, operation: string, contender: string, value: (s: PhysicalSampleLike) => number | undefined = (s) => s.seconds): number {
  return median(samples.filter((s) => s.scale === scale && s.operation === operation && s.contender === contender).map(value).filter((v): v is number => v !== undefined));
}

/** Every physical target at every scale, in report order. */
export function checkPhysicalTargets(samples: readonly PhysicalSampleLike[], recoveryPoints: readonly RecoveryPointLike[], names: PhysicalNames): TargetCheck[] {
  const out: TargetCheck[] = [];
  const T = PHYSICAL_TARGETS;
  const scales = [...new Set(samples.map((s) => s.scale))].sort((a, b) => a - b);
  const faster = (scale: number, operation: string, what: string, contender = names.tidemark) => {
    const [t, p] = [physicalMedian(samples, scale, operation, contender), physicalMedian(samples, scale, operation, names.pgbackrest)];
    const subject = `${what}, scale ${scale}${contender === names.tidemark ? '' : `, ${contender}`}, vs ${names.pgbackrest}`;
    if (Number.isNaN(t) || Number.isNaN(p)) return missing(subject, Number.isNaN(t) ? contender : names.pgbackrest);
    return check(t < p, subject, `median ${s2(t)} s vs ${s2(p)} s = ${s2(t / p)}× (target < 1×)`);
  };
  const ran = (scale: number, operation: string, contender: string | undefined): contender is string =>
    contender !== undefined && !Number.isNaN(physicalMedian(samples, scale, operation, contender));
  for (const scale of scales) {
    const full = physicalMedian(samples, scale, 'full', names.tidemark);
    const floor = physicalMedian(samples, scale, 'full', names.zstdFloor);
    const vsFloor = (contender: string) => {
      const t = physicalMedian(samples, scale, 'full', contender);
      const subject = `full backup, scale ${scale}${contender === names.tidemark ? '' : `, ${contender}`}, vs the compressed floor`;
      return Number.isNaN(t) || Number.isNaN(floor)
        ? missing(subject, Number.isNaN(t) ? contender : names.zstdFloor)
        : check(t <= T.fullVsCompressedFloor * floor, subject, `median ${s2(t)} s vs ${s2(floor)} s = ${s2(t / floor)}× (target ≤ ${T.fullVsCompressedFloor}×)`);
    };
    out.push(vsFloor(names.tidemark));
    out.push(faster(scale, 'full', 'full backup'));
    if (ran(scale, 'full', names.node22)) out.push(vsFloor(names.node22), faster(scale, 'full', 'full backup', names.node22));
    const [incrBytes, fullBytes] = [physicalMedian(samples, scale, 'incr', names.tidemark, (s) => s.storedBytes), physicalMedian(samples, scale, 'full', names.tidemark, (s) => s.storedBytes)];
    const share = `incr after a 1% update, scale ${scale}, stored bytes`;
    out.push(
      Number.isNaN(incrBytes) || Number.isNaN(fullBytes)
        ? missing(share, 'stored bytes')
        : check(incrBytes <= T.incrStoredShare * fullBytes, share, `${formatBytes(incrBytes)} vs the full's ${formatBytes(fullBytes)} = ${(100 * (incrBytes / fullBytes)).toFixed(1)}% (target ≤ ${100 * T.incrStoredShare}%)`),
    );
    const incr = physicalMedian(samples, scale, 'incr', names.tidemark);
    const incrTime = `incr after a 1% update, scale ${scale}, time vs the full`;
    out.push(Number.isNaN(incr) || Number.isNaN(full) ? missing(incrTime, names.tidemark) : check(incr <= full, incrTime, `median ${s2(incr)} s vs ${s2(full)} s (target: no longer)`));
    out.push(faster(scale, 'restore', 'restore of full + incr'));
    if (ran(scale, 'restore', names.node22)) out.push(faster(scale, 'restore', 'restore of full + incr', names.node22));
    out.push(faster(scale, 'pitr', 'PITR (restore, start, replay, promote)'));
    for (const operation of ['full', 'incr']) {
      const kb = physicalMedian(samples, scale, operation, names.tidemark, (s) => s.peakRssKb);
      const subject = `${operation} backup, scale ${scale}, peak RSS`;
      out.push(Number.isNaN(kb) ? missing(subject, 'no RSS samples') : check(kb / 1024 < T.peakRssMiB, subject, `median ${(kb / 1024).toFixed(0)} MiB (target < ${T.peakRssMiB} MiB)`));
      const worker = names.worker === undefined ? NaN : physicalMedian(samples, scale, operation, names.worker, (s) => s.peakRssKb);
      if (!Number.isNaN(worker)) {
        const at = `${operation} backup, scale ${scale}, ${names.worker}, peak RSS`;
        out.push(check(worker / 1024 < T.peakRssMiB, at, `${(worker / 1024).toFixed(0)} MiB (target < ${T.peakRssMiB} MiB)`));
      }
    }
  }
  if (scales.length > 1) {
    for (const operation of ['full', 'incr']) {
      const [lo, hi] = [scales[0], scales[scales.length - 1]].map((scale) => physicalMedian(samples, scale, operation, names.tidemark, (s) => s.peakRssKb));
      const subject = `${operation} backup, peak RSS flat from scale ${scales[0]} to ${scales[scales.length - 1]}`;
      out.push(Number.isNaN(lo) || Number.isNaN(hi) ? missing(subject, 'no RSS samples') : check(hi <= T.rssGrowth * lo, subject, `${(lo / 1024).toFixed(0)} → ${(hi / 1024).toFixed(0)} MiB = ${s2(hi / lo)}× (target ≤ ${T.rssGrowth}×)`));
    }
  }
  for (const rp of recoveryPoints) {
    const subject = `recovery point under load, scale ${rp.scale}`;
    const limit = rp.flushSeconds + T.recoveryPointSlackSeconds;
    if (rp.lags.length === 0) {
      out.push(missing(subject, 'no probe became durable'));
      continue;
    }
    const [p50, p99] = [quantileOf(rp.lags, 0.5), quantileOf(rp.lags, 0.99)];
    const lost = rp.lost > 0 ? `; ${rp.lost} probe(s) never durable` : '';
    out.push(check(p99 <= limit && rp.lost === 0, subject, `p50 ${s2(p50)} s, p99 ${s2(p99)} s over ${rp.lags.length} commits (target p99 ≤ flushSeconds ${rp.flushSeconds} + ${T.recoveryPointSlackSeconds} = ${limit} s${lost})`));
  }
  return out;
}
