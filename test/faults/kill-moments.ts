import { readdirSync, readFileSync, utimesSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnCli } from '../harness/tidemark';

/**
 * What the kill tests share (issue 11): how many moments (20 under TIDEMARK_SOAK=1, fewer in CI),
 * a CLI run that gets a signal at a given moment, and the tools it leaves behind.
 */
export const SOAK = process.env.TIDEMARK_SOAK === '1';

/** Kill moments per case: 20 for `npm run test:soak`, `ci` in the normal suite. */
export const killCount = (ci: number): number => (SOAK ? 20 : ci);

/** A test's timeout: `ms` in CI, an hour for the soak's 20 moments on a busy machine. */
export const testTimeout = (ms: number): number => (SOAK ? 3_600_000 : ms);

/** The longest a CLI may take from SIGTERM to its exit (Fargate's stop timeout is longer; ours is the promise). */
export const SIGTERM_EXIT_SECONDS = 10;

export interface SignalledRun {
  readonly code: number | null;
  /** Killed by a signal (SIGKILL), rather than exiting on its own. */
  readonly signal: NodeJS.Signals | null;
  /** The signal reached the process while it still ran (the moment fell inside the run). */
  readonly landed: boolean;
  /** From the signal to the process's exit; 0 when it had ended before. */
  readonly exitSeconds: number;
  /** Tools the CLI had started when the signal came (its descendants then), still running at its exit. */
  readonly orphans: readonly number[];
  readonly stderr: string;
}

/** Every process below `pid` now, from /proc (Linux). */
export function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // pid (comm) state ppid …; comm may hold spaces and parentheses, so split after the last ')'.
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parent.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const found: number[] = [];
  for (let frontier = [pid]; frontier.length > 0; ) {
    const next = [...parent].filter(([, p]) => frontier.includes(p)).map(([c]) => c);
    found.push(...next);
    frontier = next;
  }
  return found;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie is dead for our purposes: it only waits for its (new) parent to reap it.
    return !/^\d+ \(.*\) Z/s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** The command name of a process, or '' when it is gone. */
export function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Waits until every pid in `pids` has exited; returns those still running after `timeoutMs`. */
export async function waitForExit(pids: readonly number[], timeoutMs = 30_000): Promise<number[]> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
    if (!pids.some(alive)) return [];
  }
  return pids.filter(alive);
}

/**
 * The CLI with `args`, sent `signal` `ms` after its start unless it has exited by then. The tools it
 * runs are noted just before the signal, so a test can tell which outlived it.
 */
export async function signalCliAt(args: string[], ms: number, signal: NodeJS.Signals): Promise<SignalledRun> {
  const child = spawnCli(args);
  let stderr = '';
  child.stdout!.resume();
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, sig) => resolve({ code, signal: sig })),
  );
  let ended = false;
  void exited.then(() => (ended = true));
  await Promise.race([new Promise((r) => setTimeout(r, ms)), exited]);
  let landed = false;
  let tools: number[] = [];
  let signalledAt = 0;
  if (!ended) {
    tools = descendants(child.pid!);
    signalledAt = Date.now();
    landed = child.kill(signal);
  }
  const end = await exited;
  const exitSeconds = landed ? (Date.now() - signalledAt) / 1000 : 0;
  return { ...end, landed, exitSeconds, orphans: tools.filter(alive), stderr };
}

/** Files under <repo>/app/backups in folders of no listed backup: what killed runs left. */
export function leftovers(backupsDir: string, listed: readonly string[]): string[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else files.push(relative(backupsDir, join(dir, e.name)));
    }
  };
  walk(backupsDir);
  return files.filter((f) => !listed.includes(f.split('/')[0]));
}

/** Makes the killed runs' temp files (uploads in flight) `hours` old, as if the kills were that long ago. */
export function ageLeftovers(backupsDir: string, files: readonly string[], hours: number): void {
  const then = new Date(Date.now() - hours * 3_600_000);
  for (const f of files) if (f.split('/').pop()!.startsWith('.tmp-')) utimesSync(join(backupsDir, f), then, then);
}
