import { z } from 'zod';

const LSN = z.string().regex(/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i);

/** Pages whose checksum did not match while the backup streamed them (at most MAX_RECORDED listed). */
export const ChecksumFailureSchema = z.object({ file: z.string(), offset: z.number().int().nonnegative() });
export type ChecksumFailure = z.infer<typeof ChecksumFailureSchema>;
export const MAX_RECORDED_CHECKSUM_FAILURES = 1000;

/**
 * What a physical (pg_basebackup) backup's manifest records besides its objects: what a restore
 * needs (LSNs, timeline, backup_label), what the next incremental must match (system identifier,
 * major version), and the pages that failed their checksum.
 */
export const PgPhysicalDetailsSchema = z.object({
  kind: z.literal('pg-physical'),
  serverVersion: z.string(),
  serverMajor: z.number().int().positive(),
  /** The pg_basebackup that took it; absent where node read the base backup itself (PostgreSQL ≥ 15). */
  pgBasebackupMajor: z.number().int().positive().optional(),
  /** pg_control's system identifier, as a decimal string (it is a 64-bit number). */
  systemIdentifier: z.string().regex(/^\d+$/),
  timeline: z.number().int().positive(),
  startLsn: LSN,
  stopLsn: LSN,
  backupLabel: z.string(),
  dataChecksums: z.boolean(),
  /** The size of the blocks files were split into (bytes). */
  blockSize: z.number().int().positive(),
  /** The block index's directory object (block-index.ts). */
  index: z.string(),
  files: z.number().int().nonnegative(),
  /** Blocks written into this backup's packs / taken over from its parent. */
  storedBlocks: z.number().int().nonnegative(),
  reusedBlocks: z.number().int().nonnegative(),
  /** All-zero blocks, stored nowhere (block-index.ts ZERO_PACK). */
  zeroBlocks: z.number().int().nonnegative(),
  /** diff or incr was asked for but there was nothing to build on, so this is a full backup. */
  requestedType: z.enum(['full', 'diff', 'incr']),
  checksumFailureCount: z.number().int().nonnegative(),
  checksumFailures: z.array(ChecksumFailureSchema),
});

export type PgPhysicalDetails = z.infer<typeof PgPhysicalDetailsSchema>;

/** One warning line per damaged page found at backup time, for list and verify. */
export function checksumWarnings(details: PgPhysicalDetails): string[] {
  if (details.checksumFailureCount === 0) return [];
  const shown = details.checksumFailures.slice(0, 10).map((f) => `${f.file} at byte ${f.offset}`);
  const more = details.checksumFailureCount - shown.length;
  return [
    `${details.checksumFailureCount} page(s) failed their data checksum at backup time (damaged on the source): ${shown.join(', ')}${more > 0 ? ` and ${more} more` : ''}`,
  ];
}
