/**
 * What starting a child costs a node process afterwards (BENCHMARKS.md, "What a process start
 * costs"): node starts children with fork(), after which every page node writes takes one
 * copy-on-write fault. `npx tsx bench/fork-cost.ts [MiB]` touches that much memory, then writes it
 * again: with no child started in between, after one, and after a batch of eight started together.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

const mib = Number(process.argv[2] ?? 150);
const memory = Buffer.alloc(mib << 20, 1);

/** Minor faults of this process so far (/proc/self/stat field 10). */
const minorFaults = (): number => Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[7]);

function writeAll(): void {
  for (let i = 0; i < memory.length; i += 4096) memory[i]++;
}

async function start(children: number): Promise<void> {
  await Promise.all(Array.from({ length: children }, () => new Promise((resolve) => spawn('true').once('close', resolve))));
}

async function main(): Promise<void> {
  writeAll();
  console.log(`node ${process.version}, ${mib} MiB written once, then again:`);
  for (const children of [0, 1, 8, 0]) {
    await start(children);
    const faults = minorFaults();
    const t0 = process.hrtime.bigint();
    writeAll();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    console.log(`  after ${children} child start(s): ${minorFaults() - faults} faults, ${ms.toFixed(0)} ms`);
  }
}

void main();
