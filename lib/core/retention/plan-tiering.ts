import type { SourcePolicy } from '../config/retention';
import { MINIMUM_STORAGE_DAYS, TIER_COLD, TIER_MINIMUM_OBJECT_BYTES, TIER_WARM, type Tier } from '../config/tiers';
import type { CatalogBackup, RetentionCatalog } from './catalog-model';
import { planRetention, type RetentionOptions, type RetentionPlan } from './plan-retention';

/**
 * planTiering(catalog, policy, now): pure. Moves whole chains of long-term keeps to warm or cold by
 * the tier-tag contract (config/tiers.ts); never a chain the newest backup or the PITR window uses,
 * never an object under 128 KiB, and only when the chain stays kept longer than the class's
 * minimum storage duration. Tiers only ever go colder.
 */

export interface PlannedTierMove {
  /** The chain's base (a full or a logical backup). */
  readonly chain: string;
  readonly backups: readonly string[];
  readonly tier: typeof TIER_WARM | typeof TIER_COLD;
  readonly keys: readonly string[];
  readonly bytes: number;
  readonly reason: string;
}

export interface TieringPlan {
  readonly source: string;
  readonly now: string;
  readonly moves: readonly PlannedTierMove[];
}

const DAY = 86_400_000;
const ORDER: Readonly<Record<Tier, number>> = { standard: 0, warm: 1, cold: 2 };

export function planTiering(catalog: RetentionCatalog, policy: SourcePolicy, now: Date, options: RetentionOptions = {}, retention?: RetentionPlan): TieringPlan {
  const plan = retention ?? planRetention(catalog, policy.retention, now, options);
  const byId = new Map(catalog.backups.map((b) => [b.id, b]));
  const kept = new Map(plan.keep.map((k) => [k.id, k]));
  const active = new Set(plan.activeBackups);

  // Every backup still in the repository, by chain (a member on its way out holds its chain back).
  const chains = new Map<string, CatalogBackup[]>();
  for (const b of catalog.backups) {
    const base = baseOf(b, byId);
    chains.set(base, [...(chains.get(base) ?? []), b]);
  }

  const moves: PlannedTierMove[] = [];
  for (const [base, members] of chains) {
    if (!byId.has(base) || members.some((m) => active.has(m.id))) continue;
    // Only long-term keeps have a known end; the count-kept ones may go any night.
    if (!members.every((m) => kept.get(m.id)?.longTermUntil)) continue;
    const until = Math.min(...members.map((m) => Date.parse(kept.get(m.id)!.longTermUntil!)));
    const age = (now.getTime() - Math.max(...members.map((m) => Date.parse(m.finishedAt)))) / DAY;
    const left = (until - now.getTime()) / DAY;
    let tier: PlannedTierMove['tier'] | undefined;
    let reason = '';
    if (age >= policy.tiers.coldAfterDays && left >= MINIMUM_STORAGE_DAYS[policy.tiers.coldClass]) {
      tier = TIER_COLD;
      reason = `older than ${policy.tiers.coldAfterDays} days and kept ${Math.floor(left)} more (${policy.tiers.coldClass} bills at least ${MINIMUM_STORAGE_DAYS[policy.tiers.coldClass]})`;
    } else if (age >= policy.tiers.warmAfterDays && left >= MINIMUM_STORAGE_DAYS.STANDARD_IA) {
      tier = TIER_WARM;
      reason = `older than ${policy.tiers.warmAfterDays} days and kept ${Math.floor(left)} more (STANDARD_IA bills at least ${MINIMUM_STORAGE_DAYS.STANDARD_IA})`;
    }
    if (!tier) continue;
    const objects = members.flatMap((m) => m.objects).filter((o) => o.bytes >= TIER_MINIMUM_OBJECT_BYTES && ORDER[o.tier] < ORDER[tier]);
    if (objects.length === 0) continue;
    moves.push({
      chain: base,
      backups: members.map((m) => m.id),
      tier,
      keys: objects.map((o) => o.key),
      bytes: objects.reduce((n, o) => n + o.bytes, 0),
      reason,
    });
  }
  return { source: catalog.source, now: now.toISOString(), moves };
}

function baseOf(b: CatalogBackup, byId: ReadonlyMap<string, CatalogBackup>): string {
  if (b.chain) return b.chain.base;
  let cur = b;
  const seen = new Set<string>();
  while (cur.parent && byId.has(cur.parent) && !seen.has(cur.parent)) {
    seen.add(cur.parent);
    cur = byId.get(cur.parent)!;
  }
  return cur.parent ?? cur.id;
}
