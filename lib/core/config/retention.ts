import { z } from 'zod';
import { COLD_CLASSES, MINIMUM_STORAGE_DAYS, WARM_TRANSITION_DAYS, type ColdClass } from './tiers';

/**
 * Retention and tiering policy: the top-level `retention` and `tiers` are every source's defaults,
 * and `sources.<name>.retention` / `.tiers` override single keys. A policy checks its invariants
 * when the config is read (checkPolicy), the way aws-backup's rule presets do, naming the bad key.
 */

const count = (what: string, fallback: number) => z.number().int().min(0).max(100_000).default(fallback).describe(what);

export const LongTermConfig = z
  .strictObject({
    daily: count('Days back from today of which the newest full or logical backup is kept', 0),
    weekly: count('ISO weeks back of which the newest full or logical backup is kept', 0),
    monthly: count('Calendar months back of which the newest full or logical backup is kept', 12),
    yearly: count('Calendar years back of which the newest full or logical backup is kept', 0),
  })
  .describe('Long-term (grandfather-father-son) keeps; they keep only the WAL/binlog that makes them consistent');

export const RETENTION_DEFAULTS = {
  full: 4,
  diff: 4,
  logical: 30,
  archiveDays: 30,
  longTerm: { daily: 0, weekly: 0, monthly: 12, yearly: 0 },
  minFull: 1,
} as const;

export const RetentionConfig = z
  .strictObject({
    full: count('Physical full backups kept (RDS snapshots count as fulls)', RETENTION_DEFAULTS.full),
    diff: count('Differential backups kept; their parents are kept with them', RETENTION_DEFAULTS.diff),
    logical: count('Logical backups (pg_dump, mysqldump) kept', RETENTION_DEFAULTS.logical),
    archiveDays: count('Point-in-time recovery window in days back from now: the WAL/binlog and the backup before it are kept', RETENTION_DEFAULTS.archiveDays),
    longTerm: LongTermConfig.default(RETENTION_DEFAULTS.longTerm),
    minFull: z.number().int().min(1).max(100_000).default(RETENTION_DEFAULTS.minFull).describe('Fulls never to go below, whatever else the policy says'),
  })
  .describe('What retention keeps; everything else is deleted by `tidemark retention --apply` (dry run by default)');

export const TIERS_DEFAULTS = { warmAfterDays: 30, coldAfterDays: 90 } as const;

export const TiersConfig = z
  .strictObject({
    warmAfterDays: z.number().int().min(0).max(36_500).default(TIERS_DEFAULTS.warmAfterDays)
      .describe('Age in days after which long-kept chains move to STANDARD_IA (tag tidemark:tier=warm)'),
    coldAfterDays: z.number().int().min(0).max(36_500).default(TIERS_DEFAULTS.coldAfterDays)
      .describe('Age in days after which long-kept chains move to the cold class (tag tidemark:tier=cold)'),
    coldClass: z.enum(COLD_CLASSES).optional().describe('GLACIER or DEEP_ARCHIVE; defaults to aws.coldStorageClass (the class the vault moves cold-tagged objects to), else GLACIER'),
  })
  .describe('Storage tiers of chains that are kept long (long-term keeps): never a chain the PITR window or the newest chain uses');

/** Per source: any key of the top-level policy, overriding it. */
export const SourceRetentionConfig = z
  .strictObject({
    ...RetentionConfig.shape,
    full: RetentionConfig.shape.full.unwrap().optional(),
    diff: RetentionConfig.shape.diff.unwrap().optional(),
    logical: RetentionConfig.shape.logical.unwrap().optional(),
    archiveDays: RetentionConfig.shape.archiveDays.unwrap().optional(),
    minFull: RetentionConfig.shape.minFull.unwrap().optional(),
    longTerm: z
      .strictObject({
        daily: LongTermConfig.shape.daily.unwrap().optional(),
        weekly: LongTermConfig.shape.weekly.unwrap().optional(),
        monthly: LongTermConfig.shape.monthly.unwrap().optional(),
        yearly: LongTermConfig.shape.yearly.unwrap().optional(),
      })
      .optional(),
  })
  .describe('This source\'s retention: keys given here override the top-level retention');

export const SourceTiersConfig = z
  .strictObject({
    warmAfterDays: TiersConfig.shape.warmAfterDays.unwrap().optional(),
    coldAfterDays: TiersConfig.shape.coldAfterDays.unwrap().optional(),
    coldClass: TiersConfig.shape.coldClass,
  })
  .describe('This source\'s tiers: keys given here override the top-level tiers');

export type LongTermPolicy = z.output<typeof LongTermConfig>;
export type RetentionPolicy = z.output<typeof RetentionConfig>;
export type TiersConfigOutput = z.output<typeof TiersConfig>;
/** Tiers as a source runs under them: the cold class resolved. */
export interface TiersPolicy {
  readonly warmAfterDays: number;
  readonly coldAfterDays: number;
  readonly coldClass: ColdClass;
}

/** A source's whole policy as data (the retention and tiering functions get it in their environment). */
export const SourcePolicySchema = z.strictObject({
  retention: RetentionConfig,
  tiers: TiersConfig.extend({ coldClass: z.enum(COLD_CLASSES).default('GLACIER') }),
});
export type SourceRetention = z.output<typeof SourceRetentionConfig>;
export type SourceTiers = z.output<typeof SourceTiersConfig>;

/** The policy a source runs under, with where each key came from (for naming it in errors). */
export interface SourcePolicy {
  readonly retention: RetentionPolicy;
  readonly tiers: TiersPolicy;
}

export function mergePolicy(
  defaults: { retention: RetentionPolicy; tiers: TiersConfigOutput; aws?: { coldStorageClass?: ColdClass } },
  source: { retention?: SourceRetention; tiers?: SourceTiers },
): SourcePolicy {
  const r = source.retention ?? {};
  const defined = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
  const { longTerm, ...flat } = r;
  const tiers = { ...defaults.tiers, ...defined(source.tiers ?? {}) };
  return {
    retention: { ...defaults.retention, ...defined(flat), longTerm: { ...defaults.retention.longTerm, ...defined(longTerm ?? {}) } },
    tiers: { ...tiers, coldClass: tiers.coldClass ?? defaults.aws?.coldStorageClass ?? 'GLACIER' },
  };
}

/** Days a long-term class keeps its oldest backup, roughly (for the minimum-storage check). */
export const LONG_TERM_PERIOD_DAYS: Readonly<Record<keyof LongTermPolicy, number>> = { daily: 1, weekly: 7, monthly: 30, yearly: 365 };

/** What checkPolicy needs to know of the source besides its policy. */
export interface PolicyContext {
  /** Backup types the source's schedule takes (or, unscheduled, its methods take). */
  readonly types: readonly string[];
  /** The source backs up through RDS snapshots, whose point-in-time recovery is RDS's own. */
  readonly rds: boolean;
  /** aws.coldStorageClass, when deployed: the vault moves every cold-tagged object there. */
  readonly vaultColdClass?: ColdClass;
}

export interface PolicyProblem {
  /** Path of the bad key, relative to where the policy was written: ['tiers', 'coldAfterDays']. */
  readonly path: readonly (string | number)[];
  readonly message: string;
}

export const RDS_MAX_PITR_DAYS = 35;

/**
 * A policy's invariants; each problem names the key to change. Shaped after aws-backup's presets:
 * cold after warm, tier moves that outlast S3's minimum storage durations, long-term keeps that
 * have backups to keep, and a PITR window the source can serve.
 */
export function checkPolicy(policy: SourcePolicy, context: PolicyContext): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  const { retention: r, tiers: t } = policy;
  if (r.minFull > r.full && context.types.includes('full')) {
    problems.push({ path: ['retention', 'minFull'], message: `minFull ${r.minFull} is more than retention.full ${r.full}: keep at least as many fulls as the floor` });
  }
  if (t.warmAfterDays < WARM_TRANSITION_DAYS) {
    problems.push({ path: ['tiers', 'warmAfterDays'], message: `S3 moves nothing to STANDARD_IA younger than ${WARM_TRANSITION_DAYS} days` });
  }
  if (t.coldAfterDays <= t.warmAfterDays) {
    problems.push({ path: ['tiers', 'coldAfterDays'], message: `coldAfterDays (${t.coldAfterDays}) must be after warmAfterDays (${t.warmAfterDays})` });
  } else if (t.coldAfterDays - t.warmAfterDays < MINIMUM_STORAGE_DAYS.STANDARD_IA) {
    problems.push({
      path: ['tiers', 'coldAfterDays'],
      message: `an object stays in STANDARD_IA at least ${MINIMUM_STORAGE_DAYS.STANDARD_IA} days (billed if moved earlier): coldAfterDays must be at least warmAfterDays + ${MINIMUM_STORAGE_DAYS.STANDARD_IA} = ${t.warmAfterDays + MINIMUM_STORAGE_DAYS.STANDARD_IA}`,
    });
  }
  if (context.vaultColdClass && t.coldClass !== context.vaultColdClass) {
    problems.push({ path: ['tiers', 'coldClass'], message: `the vault moves every cold-tagged object to aws.coldStorageClass ${context.vaultColdClass}; set both alike` });
  }
  const longTermAny = Object.values(r.longTerm).some((n) => n > 0);
  if (longTermAny && !context.types.some((type) => type === 'full' || type === 'logical')) {
    problems.push({ path: ['retention', 'longTerm'], message: `long-term keeps need full or logical backups, and this source's schedule takes only ${context.types.join(', ') || 'none'}` });
  }
  // A long-term keep that reaches the cold tier must stay there for the class's minimum duration.
  const minCold = MINIMUM_STORAGE_DAYS[t.coldClass];
  for (const cls of Object.keys(LONG_TERM_PERIOD_DAYS) as (keyof LongTermPolicy)[]) {
    const span = r.longTerm[cls] * LONG_TERM_PERIOD_DAYS[cls];
    if (r.longTerm[cls] > 0 && span > t.coldAfterDays && span < t.coldAfterDays + minCold) {
      problems.push({
        path: ['retention', 'longTerm', cls],
        message: `${cls} keeps last about ${span} days, but a backup moved to ${t.coldClass} after ${t.coldAfterDays} days is billed for ${minCold} days there: keep them at least ${t.coldAfterDays + minCold} days, or raise tiers.coldAfterDays past ${span}`,
      });
    }
  }
  if (context.rds && r.archiveDays > RDS_MAX_PITR_DAYS) {
    problems.push({ path: ['retention', 'archiveDays'], message: `RDS keeps point-in-time recovery for at most ${RDS_MAX_PITR_DAYS} days` });
  }
  if (r.archiveDays > 0 && !context.types.some((type) => type === 'full' || type === 'logical')) {
    problems.push({ path: ['retention', 'archiveDays'], message: 'a point-in-time window needs full or logical backups to start from, and the schedule takes none' });
  }
  return problems;
}

export type { ColdClass };
