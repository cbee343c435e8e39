/**
 * Tier-tag contract (DESIGN.md §3), in one place: the tiering planner (lib/core/retention) tags
 * whole chains with it, and the vault's lifecycle rules (lib/infra/backup-vault.ts) move what is
 * tagged. Untagged objects stay in STANDARD. This module imports nothing, so the CDK app can use it.
 */
export const TIER_TAG_KEY = 'tidemark:tier';
export const TIER_WARM = 'warm';
export const TIER_COLD = 'cold';

/** Where an object is: untagged (STANDARD), tagged warm (STANDARD_IA) or tagged cold (the cold class). */
export type Tier = 'standard' | typeof TIER_WARM | typeof TIER_COLD;

export const COLD_CLASSES = ['GLACIER', 'DEEP_ARCHIVE'] as const;
export type ColdClass = (typeof COLD_CLASSES)[number];

/**
 * S3 bills an object for at least this many days in its class, however early it is deleted or
 * moved on; a tier move that does not outlast it costs more than it saves.
 */
export const MINIMUM_STORAGE_DAYS: Readonly<Record<'STANDARD_IA' | ColdClass, number>> = {
  STANDARD_IA: 30,
  GLACIER: 90,
  DEEP_ARCHIVE: 180,
};

/** S3 transitions nothing into STANDARD_IA younger than this; the vault's warm rule waits for it. */
export const WARM_TRANSITION_DAYS = 30;

/**
 * Objects below this size are never tiered: the transition request costs more than the storage
 * saved, and restore reads them first (manifests). The vault's lifecycle rules use the same floor
 * (S3's transitionDefaultMinimumObjectSize ALL_STORAGE_CLASSES_128_K).
 */
export const TIER_MINIMUM_OBJECT_BYTES = 128 * 1024;

/** The storage class an object of this tier is in, once the lifecycle rules have run. */
export function storageClassOf(tier: Tier, coldClass: ColdClass): 'STANDARD' | 'STANDARD_IA' | ColdClass {
  return tier === TIER_WARM ? 'STANDARD_IA' : tier === TIER_COLD ? coldClass : 'STANDARD';
}

/** The tier an S3 storage class stands for (a listing's StorageClass); unknown classes count as standard. */
export function tierOfStorageClass(storageClass: string | undefined): Tier {
  if (storageClass === 'STANDARD_IA' || storageClass === 'ONEZONE_IA') return TIER_WARM;
  if (storageClass === 'GLACIER' || storageClass === 'DEEP_ARCHIVE' || storageClass === 'GLACIER_IR') return TIER_COLD;
  return 'standard';
}
