import { z } from 'zod';

/**
 * Per-table row counts and checksums, computed at backup time in the backup's own snapshot and
 * sealed into its manifest, so a drill can prove the restored data equal to what was backed up
 * (exact where the table is small enough to hash whole). Engine-neutral: the engines compute the
 * numbers (postgres/logical-checksums.ts); this file decides how much of each table is hashed and
 * compares two sets of results.
 *
 * Bounded cost. A table up to `exactBytes` is counted and hashed whole (one scan). Above it:
 *  - with one integer key column (PostgreSQL): SAMPLE_RANGES ranges of key values spread evenly
 *    from the smallest key to the largest, together about `sampleBytes` of rows, are counted and
 *    hashed, each range read through the primary key's index: the cost is that of the sample,
 *    whatever the table's size, and nothing else of the table is read. The ranges are recorded.
 *  - otherwise: one scan that counts every row and hashes those whose key (its value when it is
 *    one integer column, else its hash) is 0 modulo `modulus` (a power of two, so that about
 *    `exactBytes` are hashed) — records made before key ranges existed are of this kind too.
 *  - a large table without a primary key gets its count only, and the record says so.
 * Every sample depends on the key's values only, not on where rows lie on disk, so the restored
 * copy samples the same rows. What a range sample does not see: a row lost or changed outside its
 * ranges (the count too is of the ranges); the drill's other checks (pg_amcheck, assertions) and
 * exact tables are the rest of the net.
 */

/**
 * PostgreSQL: hashtextextended (seed 0) of the row's text, 64 bits, summed; a non-integer sample key
 * through the same function. What backups record since 2026-12: about a third of md5's cost on the
 * database (measured in BENCHMARKS.md). The function is PostgreSQL's own, the one hash partitioning
 * relies on across versions; its values are the same on every little-endian machine (x86-64, ARM).
 */
export const CHECKSUM_METHOD_HASHTEXT = 'row-hashtext-sum/1';
/** PostgreSQL, older records: md5 of the row's text, first 64 bits (a sample key through md5 too). Still checked. */
export const CHECKSUM_METHOD_MD5 = 'row-md5-sum/1';
/** MariaDB: CRC32 and CRC32C of the row's text side by side (64 bits), a third of md5's cost there. */
export const CHECKSUM_METHOD_CRC = 'row-crc32-crc32c-sum/1';

/** Tables up to this size (on disk) are hashed whole. */
export const DEFAULT_EXACT_BYTES = 256 * 1024 * 1024;
/** How much of a larger table with one integer key its key ranges cover (about; by key span, not bytes). */
export const DEFAULT_SAMPLE_BYTES = 32 * 1024 * 1024;
/** Key ranges per range-sampled table. */
export const SAMPLE_RANGES = 16;

const INTEGER_TEXT = /^-?\d+$/;

export const TableChecksumSchema = z.object({
  rows: z.number().int().nonnegative(),
  /** Order-independent sum of per-row hashes (decimal text); absent when only counted. */
  sum: z.string().regex(/^-?\d+$/).optional(),
  /** The sample the sum covers, when not every row (with `ranges`, the count is of the sample too). */
  sample: z
    .union([
      z.object({
        key: z.array(z.string()).min(1),
        modulus: z.number().int().min(2),
        /** `value`: an integer key's own value modulo `modulus` (no hashing); absent: the key's hash (the method's). */
        by: z.literal('value').optional(),
      }),
      z.object({
        key: z.array(z.string()).length(1),
        /** Inclusive ranges of the key's values, as decimal text (bigint keys exceed a double). */
        ranges: z.array(z.tuple([z.string().regex(INTEGER_TEXT), z.string().regex(INTEGER_TEXT)])).max(SAMPLE_RANGES),
      }),
    ])
    .optional(),
  /** Why only the count was recorded. */
  countOnly: z.string().optional(),
});
export type TableChecksum = z.infer<typeof TableChecksumSchema>;

export const TableChecksumsSchema = z.object({
  method: z.enum([CHECKSUM_METHOD_HASHTEXT, CHECKSUM_METHOD_MD5, CHECKSUM_METHOD_CRC]),
  exactBytes: z.number().int().positive(),
  /** "schema.table" → count and checksum. */
  tables: z.record(z.string(), TableChecksumSchema),
  /** Time spent computing them (alongside the dump). */
  seconds: z.number().nonnegative(),
  /**
   * The point they describe, when it can differ from the backup's own (MySQL: the checksums' own
   * snapshot beside the dump's, equal when no commit came between). Absent: exactly the backup's.
   */
  at: z.object({ binlog: z.object({ file: z.string(), position: z.number().int().nonnegative() }) }).optional(),
  /** Tables left out and why (not transactional: no snapshot makes them consistent). */
  skipped: z.record(z.string(), z.string()).optional(),
});
export type TableChecksums = z.infer<typeof TableChecksumsSchema>;

/** What the planner needs of a table. */
export interface TableShape {
  readonly name: string;
  readonly bytes: number;
  /** Primary key columns, in key order; empty when there is none. */
  readonly primaryKey: readonly string[];
  /** The key is one integer column: sample by its value, which costs nothing to compute. */
  readonly integerKey?: boolean;
}

/** Inclusive bounds of a key range, as decimal text. */
export type KeyRange = [string, string];

export type TableHashing =
  | { readonly mode: 'exact' }
  | { readonly mode: 'sample'; readonly key: readonly string[]; readonly modulus: number; readonly byValue: boolean }
  /** `fraction` of the key span to cover; `ranges` when repeating a record (else made from the key's min and max). */
  | { readonly mode: 'ranges'; readonly key: string; readonly fraction: number; readonly ranges?: readonly KeyRange[] }
  | { readonly mode: 'count'; readonly reason: string };

/**
 * How one table is hashed under the byte budget. `rangeSample`: the engine reads key ranges through
 * an index (PostgreSQL), so a large table with one integer key costs only its sample.
 */
export function planTableHashing(table: TableShape, exactBytes = DEFAULT_EXACT_BYTES, rangeSample?: { readonly sampleBytes?: number }): TableHashing {
  if (table.bytes <= exactBytes) return { mode: 'exact' };
  if (table.primaryKey.length === 0) {
    return { mode: 'count', reason: `larger than ${exactBytes} bytes and no primary key to sample by` };
  }
  if (rangeSample && table.integerKey === true && table.primaryKey.length === 1) {
    return { mode: 'ranges', key: table.primaryKey[0], fraction: Math.min(1, (rangeSample.sampleBytes ?? DEFAULT_SAMPLE_BYTES) / table.bytes) };
  }
  let modulus = 2;
  while (table.bytes / modulus > exactBytes) modulus *= 2;
  return { mode: 'sample', key: table.primaryKey, modulus, byValue: table.integerKey === true && table.primaryKey.length === 1 };
}

/** The hashing a recorded checksum was made with, to repeat it on the restored table. */
export function recordedHashing(recorded: TableChecksum): TableHashing {
  if (recorded.sample && 'ranges' in recorded.sample) return { mode: 'ranges', key: recorded.sample.key[0], fraction: 0, ranges: recorded.sample.ranges };
  if (recorded.sample) return { mode: 'sample', key: recorded.sample.key, modulus: recorded.sample.modulus, byValue: recorded.sample.by === 'value' };
  if (recorded.sum === undefined) return { mode: 'count', reason: recorded.countOnly ?? 'count only' };
  return { mode: 'exact' };
}

/**
 * `count` inclusive ranges (fewer when the span is narrower) spread evenly over the keys min..max,
 * together about `fraction` of the span, ordered and disjoint. The same inputs give the same ranges.
 */
export function keyRanges(min: bigint, max: bigint, fraction: number, count = SAMPLE_RANGES): KeyRange[] {
  if (max < min || !(fraction > 0)) return [];
  const span = max - min + 1n;
  // A double's rounding of a huge span is fine here: the sample is "about" the fraction.
  const covered = BigInt(Math.ceil(Number(span) * Math.min(1, fraction)));
  const total = covered > span ? span : covered < 1n ? 1n : covered;
  const n = BigInt(count) < total ? BigInt(count) : total;
  const stride = span / n;
  const width = total / n;
  const ranges: KeyRange[] = [];
  for (let i = 0n; i < n; i++) {
    const lo = min + i * stride;
    const hi = lo + width - 1n;
    ranges.push([lo.toString(), (hi > max ? max : hi).toString()]);
  }
  return ranges;
}

export interface ChecksumComparison {
  readonly ok: boolean;
  /** Tables whose count and checksum (or sample checksum) matched. */
  readonly exact: number;
  readonly sampled: number;
  readonly countOnly: number;
  /** One line per difference, naming the table: missing, extra, count or checksum differs. */
  readonly differences: readonly string[];
}

/**
 * Compares what the backup recorded with what was computed on the restored data (with the same
 * hashing per table). Tables only in the restored copy are differences too: the dump had none.
 */
export function compareChecksums(
  recorded: TableChecksums['tables'],
  restored: Readonly<Record<string, TableChecksum>>,
  skipped: Readonly<Record<string, string>> = {},
): ChecksumComparison {
  const differences: string[] = [];
  let exact = 0;
  let sampled = 0;
  let countOnly = 0;
  for (const name of Object.keys(recorded).sort()) {
    const want = recorded[name];
    const got = restored[name];
    if (!got) {
      differences.push(`${name}: missing from the restored database`);
      continue;
    }
    const ranged = want.sample !== undefined && 'ranges' in want.sample;
    if (want.rows !== got.rows) {
      differences.push(`${name}: ${got.rows} rows restored${ranged ? ' in the sampled key ranges' : ''}, ${want.rows} recorded`);
      continue;
    }
    if (want.sum !== got.sum) {
      const of = !want.sample ? '' : 'ranges' in want.sample ? 'of the sampled key ranges ' : `of the 1/${want.sample.modulus} sample `;
      differences.push(`${name}: checksum ${of}differs (${got.sum ?? 'none'} restored, ${want.sum ?? 'none'} recorded)`);
      continue;
    }
    if (want.sum === undefined) countOnly++;
    else if (want.sample) sampled++;
    else exact++;
  }
  for (const name of Object.keys(restored).sort()) {
    if (!(name in recorded) && !(name in skipped)) differences.push(`${name}: in the restored database but not in the backup's record`);
  }
  return { ok: differences.length === 0, exact, sampled, countOnly, differences };
}

/** One line for the drill report. */
export function describeComparison(c: ChecksumComparison, against: string): string {
  const total = c.exact + c.sampled + c.countOnly;
  if (!c.ok) {
    const shown = c.differences.slice(0, 3).join('; ');
    return `${c.differences.length} difference(s) with ${against}: ${shown}${c.differences.length > 3 ? '; …' : ''}`;
  }
  const parts = [`${c.exact} exact`, ...(c.sampled ? [`${c.sampled} on a key sample`] : []), ...(c.countOnly ? [`${c.countOnly} count only`] : [])];
  return `${total} tables equal to ${against} (${parts.join(', ')})`;
}
