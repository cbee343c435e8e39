/**
 * PostgreSQL's data page checksum (src/include/storage/checksum_impl.h), re-implemented so pages
 * are validated while they stream past, as pgBackRest does: 32 interleaved FNV-1a-like sums over
 * the page read as 32-bit words (the checksum field counted as zero), two rounds of zeros for
 * mixing, folded by xor, the block number mixed in, reduced to 16 bits with an offset of one.
 */

import { BASE_OFFSETS as BASE_OFFSETS_EXPORTED, FNV_PRIME as FNV_PRIME_EXPORTED, loadSimdChecksum } from './page-checksum-simd';

export const PAGE_SIZE = 8192;
/** Pages per 1 GiB relation segment file (RELSEG_SIZE at the default page size). */
export const PAGES_PER_SEGMENT = 131072;

const N_SUMS = 32;
// Module-local copies: compiled to CommonJS (ts-jest, tsx), an imported binding is a property read
// through a getter on every use, which in the inner loop below made the checksum seven times slower.
const FNV_PRIME = FNV_PRIME_EXPORTED;
const BASE_OFFSETS = Int32Array.from(BASE_OFFSETS_EXPORTED);

// One aligned scratch page: a Buffer slice from a pool may sit at any byte offset, and a
// Int32Array view needs 4-byte alignment (and the checksum field must read as zero).
const scratch = new Int32Array(PAGE_SIZE / 4);
const scratchBytes = new Uint8Array(scratch.buffer);

/**
 * pg_checksum_page in plain JavaScript: the reference the SIMD version is tested against, and the
 * fallback where WebAssembly SIMD is missing.
 */
export function pageChecksumJs(page: Uint8Array, blockNumber: number): number {
  if (page.length < PAGE_SIZE) throw new RangeError(`a page is ${PAGE_SIZE} bytes, not ${page.length}`);
  scratchBytes.set(page.subarray(0, PAGE_SIZE));
  scratchBytes[8] = 0; // pd_checksum, after the 8-byte pd_lsn
  scratchBytes[9] = 0;
  // The 32 sums are independent: one column at a time keeps its sum in a register (the C code's
  // row order, vectorised, gives the same result).
  let result = 0;
  for (let j = 0; j < N_SUMS; j++) {
    let sum = BASE_OFFSETS[j];
    for (let i = j; i < PAGE_SIZE / 4; i += N_SUMS) {
      const tmp = sum ^ scratch[i];
      sum = Math.imul(tmp, FNV_PRIME) ^ (tmp >>> 17);
    }
    for (let round = 0; round < 2; round++) {
      const tmp = sum;
      sum = Math.imul(tmp, FNV_PRIME) ^ (tmp >>> 17);
    }
    result ^= sum;
  }
  return reduce(result, blockNumber);
}

/** The block number mixed in, reduced to 16 bits with an offset of one (zero means "no checksum"). */
function reduce(folded: number, blockNumber: number): number {
  return (((folded ^ blockNumber) >>> 0) % 65535) + 1;
}

const simd = loadSimdChecksum();

/** pg_checksum_page(page, blkno) for one 8 KiB page; `page` is not modified. */
export const pageChecksum: (page: Uint8Array, blockNumber: number) => number = simd
  ? (page, blockNumber) => {
      if (page.length < PAGE_SIZE) throw new RangeError(`a page is ${PAGE_SIZE} bytes, not ${page.length}`); // else the last page's bytes would count
      simd.memory.set(page.subarray(0, PAGE_SIZE));
      simd.memory[8] = 0; // pd_checksum counts as zero
      simd.memory[9] = 0;
      return reduce(simd.fold(), blockNumber);
    }
  : pageChecksumJs;

/** Whether pageChecksum runs as WebAssembly SIMD (for benchmarks and tests). */
export const pageChecksumIsSimd = simd !== undefined;

/** The checksum a page carries in its header (pd_checksum; pages are little-endian here). */
export function storedChecksum(page: Uint8Array): number {
  return page[8] | (page[9] << 8);
}

/** pd_lsn as a 64-bit number (xlogid << 32 | xrecoff); fits a double up to 2^53 bytes of WAL. */
export function pageLsn(page: Uint8Array): number {
  // Byte by byte rather than through a DataView: this runs for every page, and a view is an allocation.
  const hi = (page[0] | (page[1] << 8) | (page[2] << 16) | (page[3] << 24)) >>> 0;
  const lo = (page[4] | (page[5] << 8) | (page[6] << 16) | (page[7] << 24)) >>> 0;
  return hi * 2 ** 32 + lo;
}

function allZero(page: Uint8Array): boolean {
  for (let i = 0; i < page.length; i++) if (page[i] !== 0) return false;
  return true;
}

export type PageVerdict = 'ok' | 'new' | 'newer-than-backup' | 'bad';

/**
 * A page as a backup sees it: new (all zeros, as PostgreSQL's PageIsVerified allows), written
 * after the backup began (its LSN is at or past the start LSN: torn reads are possible and WAL
 * replay rewrites it, so it is skipped like pgBackRest does), or checked.
 */
export function verifyPage(page: Uint8Array, blockNumber: number, startLsn: number): PageVerdict {
  if (allZero(page)) return 'new';
  if (pageLsn(page) >= startLsn) return 'newer-than-backup';
  return pageChecksum(page, blockNumber) === storedChecksum(page) ? 'ok' : 'bad';
}

/**
 * Where a data file of a relation sits in its relation: the segment number of `base/1/1234.2` is 2.
 * Undefined for files that are not relation data (maps, PG_VERSION, pg_internal.init, temp files).
 */
export function relationSegment(path: string): number | undefined {
  const m = /^(?:base\/\d+|global)\/(\d+)(?:_(?:fsm|vm|init))?(?:\.(\d+))?$/.exec(path);
  if (!m) return undefined;
  return m[2] === undefined ? 0 : Number(m[2]);
}

/** "0/1A2B3C" → its byte position. */
export function parseLsn(lsn: string): number {
  const m = /^([0-9A-F]{1,8})\/([0-9A-F]{1,8})$/i.exec(lsn.trim());
  if (!m) throw new Error(`not an LSN: ${lsn}`);
  return parseInt(m[1], 16) * 2 ** 32 + parseInt(m[2], 16);
}
