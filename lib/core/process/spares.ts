import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { childEnv } from '../secrets';

/**
 * Tool processes started ahead, in batches, for a caller that will start many of one command line
 * one after the other: a physical backup's zstd per pack.
 *
 * Node starts a child with fork(). From then on, every page of node's memory that node writes
 * takes a copy-on-write fault, once, however many children were started in between. A backup's read
 * buffers churn through ~100 MiB, so each start made node fault that memory in again; on the
 * virtual machines this project is measured on, where a fault costs ~15–20 µs, a scale-50 full
 * backup spent more than a CPU-second on it (BENCHMARKS.md, "what a process start costs"). Started
 * together, before the data flows, the whole batch costs one round of faults over little memory.
 *
 * A spare waits on its stdin and costs a process slot and a few hundred KiB. It does not keep node
 * running (unref'd), ends with node (end-of-input on its stdin), and spares unused for IDLE_MS are
 * ended, so a long-lived process (a worker, a streamer) does not keep them.
 */

const MAX_BATCH = 16;
const IDLE_MS = 30_000;

interface Kind {
  readonly command: string;
  readonly args: readonly string[];
  readonly spares: ChildProcess[];
  /** How many to start at once when the spares run out. */
  batch: number;
  idle?: NodeJS.Timeout;
}

const kinds = new Map<string, Kind>();
const keyOf = (command: string, args: readonly string[]): string => JSON.stringify([command, ...args]);

function stdio(child: ChildProcess): Socket[] {
  return [child.stdin, child.stdout, child.stderr].filter((s) => s !== null) as unknown as Socket[];
}

function startSpares(kind: Kind, count: number): void {
  for (let i = 0; i < count; i++) {
    const child = spawn(kind.command, kind.args, { stdio: ['pipe', 'pipe', 'pipe'], env: childEnv() });
    // One that cannot start (not installed) is never handed out: the caller then starts its own and
    // reports that failure as it always does.
    child.on('error', () => undefined);
    child.stdin?.on('error', () => undefined);
    child.unref();
    for (const s of stdio(child)) s.unref();
    kind.spares.push(child);
  }
}

/** Ends the spares of one command line (their stdin closes; they exit). */
function retire(kind: Kind): void {
  for (const child of kind.spares.splice(0)) child.stdin?.end();
  kind.batch = 0;
  kinds.delete(keyOf(kind.command, kind.args));
}

function touch(kind: Kind): void {
  if (kind.idle) clearTimeout(kind.idle);
  kind.idle = setTimeout(() => retire(kind), IDLE_MS);
  kind.idle.unref();
}

/**
 * Starts up to `count` processes of this command line now (at most MAX_BATCH), and from now on
 * refills in batches of MAX_BATCH when they run out. Call it while node's memory is small: before
 * the data starts to flow.
 */
export function startAhead(command: string, args: readonly string[], count: number): void {
  const key = keyOf(command, args);
  const kind = kinds.get(key) ?? { command, args: [...args], spares: [], batch: 0 };
  kinds.set(key, kind);
  kind.batch = MAX_BATCH;
  startSpares(kind, Math.max(0, Math.min(count, MAX_BATCH) - kind.spares.length));
  touch(kind);
}

const alive = (child: ChildProcess): boolean => child.pid !== undefined && child.exitCode === null && child.signalCode === null && !child.killed;

/**
 * A started-ahead process of exactly this command line, ref'd again and with nothing written to
 * it, or undefined when nobody asked for spares of it.
 */
export function takeSpare(command: string, args: readonly string[]): ChildProcess | undefined {
  const kind = kinds.get(keyOf(command, args));
  if (!kind) return undefined;
  touch(kind);
  let refilled = false;
  for (;;) {
    if (kind.spares.length === 0 && kind.batch > 0 && !refilled) {
      startSpares(kind, kind.batch);
      refilled = true;
    }
    const child = kind.spares.shift();
    if (!child) return undefined;
    if (!alive(child)) continue;
    child.ref();
    for (const s of stdio(child)) s.ref();
    return child;
  }
}

/** The process ids of the spares waiting now (tests). */
export function sparePids(): number[] {
  return [...kinds.values()].flatMap((k) => k.spares.filter(alive).map((c) => c.pid!));
}

/** Ends every spare now (tests, and a process about to exit on purpose). */
export function retireSpares(): void {
  for (const kind of [...kinds.values()]) {
    if (kind.idle) clearTimeout(kind.idle);
    retire(kind);
  }
}
