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
 * A spare waits on its stdin and costs a process slot and a few hundred KiB. The work that started
 * spares ends them when it ends (what startAhead returns), so no tool outlives it; they do not keep
 * node running (unref'd), go with a node that is killed (end of input on their stdin), and spares
 * unused for IDLE_MS are ended (work that failed before it could end them).
 */

const MAX_BATCH = 16;
const IDLE_MS = 30_000;

interface Kind {
  readonly command: string;
  readonly args: readonly string[];
  readonly spares: ChildProcess[];
  /** How many to start at once when the spares run out (doubles each time, up to MAX_BATCH). */
  batch: number;
  idle?: NodeJS.Timeout;
}

const kinds = new Map<string, Kind>();
const keyOf = (command: string, args: readonly string[]): string => JSON.stringify([command, ...args]);
const alive = (child: ChildProcess): boolean => child.pid !== undefined && child.exitCode === null && child.signalCode === null && !child.killed;

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

/** Stops one idle spare; resolves once it has exited. */
function end(child: ChildProcess): Promise<void> {
  if (!alive(child)) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.ref(); // until it has gone
    child.kill('SIGTERM'); // idle: nothing to lose
    setTimeout(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'), 2000).unref();
  });
}

/** Ends the spares of one command line and takes no more batches of it; resolves once they have exited. */
async function retire(kind: Kind): Promise<void> {
  if (kind.idle) clearTimeout(kind.idle);
  kind.batch = 0;
  if (kinds.get(keyOf(kind.command, kind.args)) === kind) kinds.delete(keyOf(kind.command, kind.args));
  await Promise.all(kind.spares.splice(0).map(end));
}

function touch(kind: Kind): void {
  if (kind.idle) clearTimeout(kind.idle);
  kind.idle = setTimeout(() => void retire(kind), IDLE_MS);
  kind.idle.unref();
}

/**
 * Starts up to `count` processes of this command line now (at most MAX_BATCH); when they run out,
 * as many again are started at once, doubling each time up to MAX_BATCH. Call it while node's
 * memory is small: before the data starts to flow. Returns what ends them: the work that started
 * them calls it when it ends (a backup stopped by SIGTERM included), so none outlives it.
 */
export function startAhead(command: string, args: readonly string[], count: number): () => Promise<void> {
  const key = keyOf(command, args);
  const kind = kinds.get(key) ?? { command, args: [...args], spares: [], batch: 0 };
  kinds.set(key, kind);
  const wanted = Math.max(1, Math.min(count, MAX_BATCH));
  kind.batch = Math.max(kind.batch, wanted);
  startSpares(kind, Math.max(0, wanted - kind.spares.length));
  touch(kind);
  return () => retire(kind);
}

/**
 * A started-ahead process of exactly this command line, ref'd again and with nothing written to
 * it, or undefined when nobody asked for spares of it.
 */
export function takeSpare(command: string, args: readonly string[]): ChildProcess | undefined {
  const kind = kinds.get(keyOf(command, args));
  if (!kind) return undefined;
  touch(kind);
  let child = firstAlive(kind);
  if (!child && kind.batch > 0) {
    // More than the guess was needed: start as many again, twice as many the next time.
    startSpares(kind, kind.batch);
    kind.batch = Math.min(MAX_BATCH, kind.batch * 2);
    child = firstAlive(kind);
  }
  if (!child) return undefined;
  child.ref();
  for (const s of stdio(child)) s.ref();
  return child;
}

/** Takes the first spare still running out of the list (one that could not start is dropped). */
function firstAlive(kind: Kind): ChildProcess | undefined {
  for (let child = kind.spares.shift(); child; child = kind.spares.shift()) if (alive(child)) return child;
  return undefined;
}

/** The process ids of the spares waiting now (tests). */
export function sparePids(): number[] {
  return [...kinds.values()].flatMap((k) => k.spares.filter(alive).map((c) => c.pid!));
}

/** Ends every spare (tests). */
export async function retireSpares(): Promise<void> {
  await Promise.all([...kinds.values()].map(retire));
}
