import { RETRIEVAL_PRICES, type RetrievalPrice } from '../pricing';
import type { Progress } from '../progress';

/**
 * Objects in GLACIER or DEEP_ARCHIVE (the cold tier) cannot be read until S3 has restored a
 * temporary copy (RestoreObject). Restore says up front how long that takes and what it costs,
 * then waits with progress. The figures are S3's published retrieval times and the list prices of
 * pricing.ts; requests are counted per object.
 */
export type RetrievalTier = 'Expedited' | 'Standard' | 'Bulk';
export type ArchiveClass = 'GLACIER' | 'DEEP_ARCHIVE';

interface RetrievalTerms extends RetrievalPrice {
  readonly minHours: number;
  readonly maxHours: number;
}

// Times here, prices from the one price table (pricing.ts).
const TERMS: Readonly<Record<ArchiveClass, Partial<Record<RetrievalTier, RetrievalTerms>>>> = {
  GLACIER: {
    Expedited: { minHours: 1 / 60, maxHours: 5 / 60, ...RETRIEVAL_PRICES.GLACIER.Expedited },
    Standard: { minHours: 3, maxHours: 5, ...RETRIEVAL_PRICES.GLACIER.Standard },
    Bulk: { minHours: 5, maxHours: 12, ...RETRIEVAL_PRICES.GLACIER.Bulk },
  },
  // DEEP_ARCHIVE has no Expedited retrieval: S3 refuses it, so it is asked for as Standard.
  DEEP_ARCHIVE: {
    Standard: { minHours: 9, maxHours: 12, ...RETRIEVAL_PRICES.DEEP_ARCHIVE.Standard },
    Bulk: { minHours: 9, maxHours: 48, ...RETRIEVAL_PRICES.DEEP_ARCHIVE.Bulk },
  },
};

export function isArchiveClass(storageClass: string | undefined): storageClass is ArchiveClass {
  return storageClass === 'GLACIER' || storageClass === 'DEEP_ARCHIVE';
}

/** The tier S3 is actually asked for: DEEP_ARCHIVE has no Expedited. */
export function effectiveTier(storageClass: ArchiveClass, tier: RetrievalTier): RetrievalTier {
  return TERMS[storageClass][tier] ? tier : 'Standard';
}

export interface RehydrationEstimate {
  readonly objects: number;
  readonly bytes: number;
  /** The slowest class decides: S3 restores objects in parallel. */
  readonly minHours: number;
  readonly maxHours: number;
  readonly usd: number;
  readonly tier: RetrievalTier;
}

export function estimateRehydration(objects: readonly { bytes: number; storageClass: ArchiveClass }[], tier: RetrievalTier): RehydrationEstimate {
  let minHours = 0;
  let maxHours = 0;
  let usd = 0;
  for (const o of objects) {
    const terms = TERMS[o.storageClass][effectiveTier(o.storageClass, tier)]!;
    minHours = Math.max(minHours, terms.minHours);
    maxHours = Math.max(maxHours, terms.maxHours);
    usd += (o.bytes / 1024 ** 3) * terms.usdPerGB + terms.usdPer1000Requests / 1000;
  }
  return { objects: objects.length, bytes: objects.reduce((n, o) => n + o.bytes, 0), minHours, maxHours, usd, tier };
}

/** "12 objects (3.1 GiB) are in cold storage: Standard retrieval takes 3–5 h and costs about $0.04". */
export function describeEstimate(e: RehydrationEstimate, formatBytes: (n: number) => string): string {
  const hours = (h: number) => (h < 1 ? `${Math.round(h * 60)} min` : `${h} h`);
  const span = e.minHours === e.maxHours ? hours(e.maxHours) : `${hours(e.minHours)}–${hours(e.maxHours)}`;
  return `${e.objects} object${e.objects === 1 ? ' is' : 's are'} (${formatBytes(e.bytes)}) in cold storage: ${e.tier} retrieval takes ${span} and costs about $${e.usd.toFixed(2)}; waiting for S3 to restore them`;
}

export interface RehydrateOptions {
  /** @default 'Standard' */
  readonly tier?: RetrievalTier;
  /** How long S3 keeps the restored copy. @default 7 */
  readonly days?: number;
  /** How often restore status is asked. @default 60 s */
  readonly pollMs?: number;
  readonly onEstimate?: (estimate: RehydrationEstimate) => void;
  readonly progress?: Progress;
  readonly signal?: AbortSignal;
}

export interface RehydrationResult {
  /** Objects that had to be restored from the cold tier (0: everything was readable). */
  readonly objects: number;
  readonly bytes: number;
  readonly estimate?: RehydrationEstimate;
}

/** What the `x-amz-restore` header says: absent (never asked), in progress, or done (until expiry). */
export function parseRestoreHeader(header: string | undefined): 'none' | 'ongoing' | 'restored' {
  if (!header) return 'none';
  if (/ongoing-request="true"/.test(header)) return 'ongoing';
  if (/ongoing-request="false"/.test(header)) return 'restored';
  return 'none';
}
