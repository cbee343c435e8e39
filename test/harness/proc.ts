import { readdirSync, readFileSync } from 'node:fs';

/*
 * The process tree from /proc (Linux), for the harness's watches: walked down from a process through
 * the kernel's per-thread children lists, never by reading every /proc entry.
 */

/** The bytes of a /proc file, or undefined when the process is gone (or not ours to read). */
export function readProc(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch {
    return undefined;
  }
}

/** The children of `pid` now (none when it is gone). */
export function childrenOf(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  return tasks.flatMap((task) => (readProc(`/proc/${pid}/task/${task}/children`)?.toString() ?? '').split(' ').filter(Boolean).map(Number));
}

/** Every process below `pid` now. */
export function descendants(pid: number): number[] {
  const found: number[] = [];
  for (const queue = childrenOf(pid); queue.length > 0; ) {
    const next = queue.pop()!;
    found.push(next);
    queue.push(...childrenOf(next));
  }
  return found;
}

/**
 * A process's /proc stat line split: its comm, and the fields after it (`fields[0]` is field 3,
 * the state; `fields[1]` the parent; `fields[13]`, `fields[14]` cutime and cstime). comm may hold
 * spaces and parentheses, so the split is at the last ')'. Undefined when the process is gone.
 */
export function statOf(pid: number | 'self'): { comm: string; fields: string[] } | undefined {
  const stat = readProc(`/proc/${pid}/stat`)?.toString();
  if (!stat) return undefined;
  const close = stat.lastIndexOf(')');
  return { comm: stat.slice(stat.indexOf('(') + 1, close), fields: stat.slice(close + 2).split(' ') };
}

/** The process runs (a zombie is dead for our purposes: it only waits for its parent to reap it). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = statOf(pid);
  return stat !== undefined && stat.fields[0] !== 'Z';
}

/** Waits until every pid in `pids` has exited; returns those still running after `timeoutMs`. */
export async function waitForExit(pids: readonly number[], timeoutMs = 30_000): Promise<number[]> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
    if (!pids.some(alive)) return [];
  }
  return pids.filter(alive);
}
