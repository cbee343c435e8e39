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
