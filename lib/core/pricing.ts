/**
 * S3 list prices, in one place: `tidemark report` prices chain sizes with them, restore's
 * rehydration estimate (repository/rehydrate.ts) its retrievals, and README's "What it costs"
 * cites this table (a unit test compares the two, so they cannot drift). us-east-1 list prices
 * as published in 2025; other regions are within a few percent. "GB" is what S3 bills: 2^30 bytes.
 */

/** The storage classes Tidemark puts objects in (DESIGN.md §3, tier-tag contract). */
export const PRICED_STORAGE_CLASSES = ['STANDARD', 'STANDARD_IA', 'GLACIER', 'DEEP_ARCHIVE'] as const;
export type PricedStorageClass = (typeof PRICED_STORAGE_CLASSES)[number];

export interface StoragePrice {
  /** The name AWS's price list and README use. */
  readonly name: string;
  readonly usdPerGBMonth: number;
}

export const STORAGE_PRICES: Readonly<Record<PricedStorageClass, StoragePrice>> = {
  STANDARD: { name: 'S3 Standard', usdPerGBMonth: 0.023 },
  STANDARD_IA: { name: 'S3 Standard-IA', usdPerGBMonth: 0.0125 },
  GLACIER: { name: 'S3 Glacier Flexible Retrieval', usdPerGBMonth: 0.0036 },
  DEEP_ARCHIVE: { name: 'S3 Glacier Deep Archive', usdPerGBMonth: 0.00099 },
};

/** Retrieval from a cold class: per GB read back and per 1,000 restore requests. */
export interface RetrievalPrice {
  readonly usdPerGB: number;
  readonly usdPer1000Requests: number;
}

/** DEEP_ARCHIVE has no Expedited retrieval (S3 refuses it). */
export const RETRIEVAL_PRICES = {
  GLACIER: {
    Expedited: { usdPerGB: 0.03, usdPer1000Requests: 10 },
    Standard: { usdPerGB: 0.01, usdPer1000Requests: 0.05 },
    Bulk: { usdPerGB: 0, usdPer1000Requests: 0.025 },
  },
  DEEP_ARCHIVE: {
    Standard: { usdPerGB: 0.02, usdPer1000Requests: 0.1 },
    Bulk: { usdPerGB: 0.0025, usdPer1000Requests: 0.025 },
  },
} as const satisfies Record<'GLACIER' | 'DEEP_ARCHIVE', Partial<Record<'Expedited' | 'Standard' | 'Bulk', RetrievalPrice>>>;

export const BYTES_PER_GB = 1024 ** 3;

export function isPricedStorageClass(storageClass: string): storageClass is PricedStorageClass {
  return (PRICED_STORAGE_CLASSES as readonly string[]).includes(storageClass);
}

/** What `bytes` cost a month in `storageClass`; undefined for a class this table has no price for. */
export function monthlyStorageUsd(bytes: number, storageClass: string): number | undefined {
  return isPricedStorageClass(storageClass) ? (bytes / BYTES_PER_GB) * STORAGE_PRICES[storageClass].usdPerGBMonth : undefined;
}
