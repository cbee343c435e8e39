/**
 * CPU cost of the per-page work of a physical backup, by hand (not part of `npm run bench`):
 *
 *   npx tsx bench/page-checksum.ts [MiB=256] [rounds=5]
 *
 * Checksums `MiB` of random 8 KiB pages (as 64 KiB blocks from a larger buffer, at odd byte offsets
 * as tar chunks give them) with PostgreSQL's page checksum in plain JavaScript and as WebAssembly
 * SIMD, and hashes the same bytes with SHA-256 (the backup's other per-byte cost), reporting CPU
 * milliseconds per MiB (process.cpuUsage: user + system; the machine may be shared, wall time would
 * say little). Medians over `rounds`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { PAGE_SIZE, pageChecksum, pageChecksumIsSimd, pageChecksumJs } from '../lib/core/engines/postgres/physical/page-checksum';

const mib = Number(process.argv[2] ?? 256);
const rounds = Number(process.argv[3] ?? 5);
const BLOCK = 64 * 1024;
// 32 MiB of distinct data reused: larger than the caches, as streamed pages are.
const data = randomBytes(32 << 20);
const source = data.subarray(3); // pages at an odd offset, like pieces of tar chunks

function cpuMsPerMiB(work: () => number): { ms: number; sink: number } {
  const samples: number[] = [];
  let sink = 0;
  for (let r = 0; r < rounds; r++) {
    const before = process.cpuUsage();
    sink ^= work();
    const used = process.cpuUsage(before);
    samples.push((used.user + used.system) / 1000 / mib);
  }
  samples.sort((a, b) => a - b);
  return { ms: samples[Math.floor(samples.length / 2)], sink };
}

function overPages(checksum: (page: Uint8Array, blockNumber: number) => number): () => number {
  return () => {
    let acc = 0;
    const pages = (mib << 20) / PAGE_SIZE;
    const span = source.length - (source.length % BLOCK) - BLOCK;
    for (let p = 0; p < pages; p++) {
      const at = (p * PAGE_SIZE) % span;
      acc ^= checksum(source.subarray(at, at + PAGE_SIZE), p);
    }
    return acc;
  };
}

function sha256(): number {
  let acc = 0;
  const blocks = (mib << 20) / BLOCK;
  const span = source.length - (source.length % BLOCK) - BLOCK;
  for (let b = 0; b < blocks; b++) {
    const at = (b * BLOCK) % span;
    acc ^= createHash('sha256').update(source.subarray(at, at + BLOCK)).digest()[0];
  }
  return acc;
}

function main(): void {
  // Warm up the JIT before measuring.
  overPages(pageChecksumJs)();
  overPages(pageChecksum)();
  sha256();
  const js = cpuMsPerMiB(overPages(pageChecksumJs));
  const fast = cpuMsPerMiB(overPages(pageChecksum));
  const hash = cpuMsPerMiB(sha256);
  const line = (what: string, ms: number) => console.log(`${what.padEnd(44)} ${ms.toFixed(3)} CPU-ms/MiB  (${(1000 / ms).toFixed(0)} MiB per CPU-s)`);
  console.log(`${mib} MiB per round, median of ${rounds} rounds, node ${process.version}`);
  line('page checksum, JavaScript (pageChecksumJs)', js.ms);
  line(`page checksum, pageChecksum (${pageChecksumIsSimd ? 'WebAssembly SIMD' : 'JavaScript fallback'})`, fast.ms);
  line('SHA-256 per 64 KiB block (node:crypto)', hash.ms);
  console.log(`speed-up of the page checksum: ${(js.ms / fast.ms).toFixed(1)}x; at 778 MiB (pgbench scale 50): ${((js.ms * 778) / 1000).toFixed(2)} → ${((fast.ms * 778) / 1000).toFixed(2)} CPU-s`);
  if (js.sink === fast.sink && hash.sink === -1) console.log(''); // keeps the work from being optimised away
}

main();
