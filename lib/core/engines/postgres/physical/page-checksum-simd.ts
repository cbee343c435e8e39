/**
 * The 32 lanes of PostgreSQL's page checksum as WebAssembly SIMD: eight i32x4 vectors, one row of
 * 32 words per loop turn, as the C code is written to be vectorised (checksum_impl.h). In JavaScript
 * the 32 sums do not fit the registers and every word costs a load, a multiply and a shift in
 * sequence; here four lanes go at once and the eight vectors' chains overlap. A backup checks every
 * page of every relation file, so this is per-byte work on the backup's main thread.
 *
 * The module is encoded here, byte by byte, rather than compiled from a .wat file: the project has
 * no WebAssembly toolchain, and the module is one small function. Its layout is plain: the page is
 * copied to offset 0 of the module's 64 KiB memory; `fold()` returns the xor of the 32 sums after the
 * two mixing rounds, and the caller mixes in the block number and reduces to 16 bits.
 */

/** The 32 lanes' FNV-like starting values (checksumBaseOffsets in checksum_impl.h). */
export const BASE_OFFSETS = Uint32Array.from([
  0x5b1f36e9, 0xb8525960, 0x02ab50aa, 0x1de66d2a, 0x79ff467a, 0x9bb9f8a3, 0x217e7cd2, 0x83e13d2c, 0xf8d4474f, 0xe39eb970, 0x42c6ae16,
  0x993216fa, 0x7b093b5d, 0x98daff3c, 0xf718902a, 0x0b1c9cdb, 0xe58f764b, 0x187636bc, 0x5d7b3bb1, 0xe73de7de, 0x92bec979, 0xcca6c0b2,
  0x304a0979, 0x85aa43d4, 0x783125bb, 0x6ca8eaa2, 0xe407eac6, 0x4b5cfc3e, 0x9fbf8c76, 0x15ca20be, 0xf2ca9fd3, 0x959bd756,
]);
export const FNV_PRIME = 16777619;
const PAGE_BYTES = 8192;
const ROW_BYTES = 128; // 32 lanes × 4 bytes

const u32 = (n: number): number[] => {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
};
const s32 = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) return [...out, byte];
    out.push(byte | 0x80);
  }
};
const section = (id: number, body: number[]): number[] => [id, ...u32(body.length), ...body];
const name = (s: string): number[] => [...u32(s.length), ...Buffer.from(s, 'ascii')];

// Opcodes (core and the 0xfd SIMD prefix).
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const LOCAL_TEE = 0x22;
const I32_CONST = 0x41;
const I32_ADD = 0x6a;
const I32_LT_U = 0x49;
const I32_XOR = 0x73;
const simd = (op: number): number[] => [0xfd, ...u32(op)];
const V128_LOAD = (offset: number) => [...simd(0x00), 4 /* align 2^4 */, ...u32(offset)];
const V128_CONST = 0x0c;
const I32X4_SPLAT = 0x11;
const I32X4_EXTRACT_LANE = 0x1b;
const V128_XOR = 0x51;
const I32X4_SHR_U = 0xad;
const I32X4_MUL = 0xb5;

// Locals: 0 the row's address, 1 the page's end, 2–9 the eight sum vectors, 10 tmp, 11 the prime ×4.
const ADDR = 0;
const END = 1;
const SUM = 2;
const TMP = 10;
const PRIME = 11;

/** sum[k] = (tmp * prime) ^ (tmp >>> 17), tmp already on the stack and teed into TMP. */
const mix = (k: number): number[] => [LOCAL_TEE, TMP, LOCAL_GET, PRIME, ...simd(I32X4_MUL), LOCAL_GET, TMP, I32_CONST, 17, ...simd(I32X4_SHR_U), ...simd(V128_XOR), LOCAL_SET, SUM + k];

function foldBody(): number[] {
  const code: number[] = [];
  code.push(I32_CONST, ...s32(FNV_PRIME | 0), ...simd(I32X4_SPLAT), LOCAL_SET, PRIME);
  for (let k = 0; k < 8; k++) {
    const lanes = Buffer.from(BASE_OFFSETS.slice(4 * k, 4 * k + 4).buffer); // little-endian, as wasm
    code.push(...simd(V128_CONST), ...lanes, LOCAL_SET, SUM + k);
  }
  code.push(I32_CONST, 0, LOCAL_SET, ADDR, I32_CONST, ...s32(PAGE_BYTES), LOCAL_SET, END);
  code.push(0x03, 0x40); // loop over the 64 rows
  for (let k = 0; k < 8; k++) code.push(LOCAL_GET, SUM + k, LOCAL_GET, ADDR, ...V128_LOAD(16 * k), ...simd(V128_XOR), ...mix(k));
  code.push(LOCAL_GET, ADDR, I32_CONST, ...s32(ROW_BYTES), I32_ADD, LOCAL_TEE, ADDR, LOCAL_GET, END, I32_LT_U, 0x0d, 0, 0x0b);
  for (let round = 0; round < 2; round++) for (let k = 0; k < 8; k++) code.push(LOCAL_GET, SUM + k, ...mix(k)); // two rounds of zeros
  code.push(LOCAL_GET, SUM);
  for (let k = 1; k < 8; k++) code.push(LOCAL_GET, SUM + k, ...simd(V128_XOR));
  code.push(LOCAL_TEE, TMP, ...simd(I32X4_EXTRACT_LANE), 0);
  for (let lane = 1; lane < 4; lane++) code.push(LOCAL_GET, TMP, ...simd(I32X4_EXTRACT_LANE), lane, I32_XOR);
  code.push(0x0b);
  const locals = [2, ...u32(2), 0x7f /* i32: ADDR is a param-less local too */, ...u32(10), 0x7b /* v128 */];
  const body = [...locals, ...code];
  return [...u32(body.length), ...body];
}

/** The module's bytes: memory (1 × 64 KiB) and fold: () → i32, both exported. */
export function checksumModuleBytes(): Uint8Array {
  const bytes = [
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [1, 0x60, 0, 1, 0x7f]), // type 0: () → i32
    ...section(3, [1, 0]), // function 0 has type 0
    ...section(5, [1, 0x00, 1]), // one memory, at least one 64 KiB page
    ...section(7, [2, ...name('memory'), 0x02, 0, ...name('fold'), 0x00, 0]),
    ...section(10, [1, ...foldBody()]),
  ];
  return Uint8Array.from(bytes);
}

export interface SimdChecksum {
  /** The module's memory: the page goes at offset 0, its pd_checksum zeroed. */
  readonly memory: Uint8Array;
  /** The xor of the 32 lanes after mixing, as an unsigned 32-bit number. */
  readonly fold: () => number;
}

/** The little of the WebAssembly JS API used here (the project's TypeScript libs do not declare it). */
interface WebAssemblyApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { readonly exports: Record<string, unknown> };
}
const webAssembly = (globalThis as unknown as { WebAssembly?: WebAssemblyApi }).WebAssembly;

/** Whether this runtime accepts the module (WebAssembly with SIMD). */
export function simdChecksumSupported(): boolean {
  return webAssembly?.validate(checksumModuleBytes()) ?? false;
}

/** The compiled module, or undefined where WebAssembly SIMD is not available (the JS version is used). */
export function loadSimdChecksum(): SimdChecksum | undefined {
  if (!webAssembly || !simdChecksumSupported()) return undefined;
  const instance = new webAssembly.Instance(new webAssembly.Module(checksumModuleBytes()));
  const memory = instance.exports.memory as { readonly buffer: ArrayBuffer };
  const fold = instance.exports.fold as () => number;
  return { memory: new Uint8Array(memory.buffer), fold };
}
