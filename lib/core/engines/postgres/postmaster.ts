import { spawn } from 'node:child_process';
import { open, readFile, readlink, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { abortReason, sleep } from '../../abort';
import { ToolFailed } from '../../errors';
import type { OsUser } from '../../process/os-user';

/**
 * Starting and stopping a PostgreSQL server ourselves instead of through `pg_ctl -w`: pg_ctl looks
 * at the server's pid file ten times a second and goes through a shell, so every start and stop
 * waited up to 100 ms after the server was ready (or gone), plus two process starts. Here the
 * server is started directly (in its own session, as pg_ctl does: a Ctrl-C of ours does not reach
 * it) and the pid file is read every few milliseconds. The readiness rule is pg_ctl's: the pid file
 * names our process and its status line says `ready` (or `standby`: a hot standby accepts
 * connections). That line exists since PostgreSQL 10.
 */

/** postmaster.pid's lines (PostgreSQL's LOCK_FILE_LINE_*): the pid first, the status eighth. */
const PID_LINE = 0;
const STATUS_LINE = 7;

/** First polls are quick (a throwaway server is up in ~0.1 s); a long recovery is polled less often. */
const pollDelay = (waitedMs: number) => (waitedMs < 2_000 ? 5 : 50);

export interface PostmasterOptions {
  /** The server's output (pg_ctl's `-l`), appended to; made with mode 0600, owned by `user`. */
  readonly logFile: string;
  /** Run as this OS user (PostgreSQL refuses to run as root). */
  readonly user?: OsUser;
  readonly env: NodeJS.ProcessEnv;
  /** Seconds to wait for the server to accept connections. */
  readonly timeoutSeconds: number;
  readonly signal?: AbortSignal;
}

const lastLines = async (path: string, n: number) => (await readFile(path, 'utf8').catch(() => '')).trimEnd().split('\n').slice(-n).join('\n');

/** The pid file's lines, or undefined while there is none (or it is being written). */
async function pidFile(dataDir: string): Promise<string[] | undefined> {
  const text = await readFile(join(dataDir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  return text?.split('\n');
}

/**
 * Starts `postgres -D dataDir` and resolves with its pid once it accepts connections (after crash
 * recovery, or the WAL replay a restored backup needs to be consistent). Rejects with the log's
 * last lines when the server exits first, and stops it (immediately) when it is not ready within
 * the timeout or `signal` aborts.
 */
export async function startPostmaster(binDir: string, dataDir: string, options: PostmasterOptions): Promise<number> {
  const log = await open(options.logFile, 'a', 0o600);
  let exited: string | undefined;
  let spawned: Promise<number>;
  try {
    if (options.user) await log.chown(options.user.uid, options.user.gid);
    const child = spawn(join(binDir, 'postgres'), ['-D', dataDir], {
      cwd: dataDir,
      env: options.env,
      stdio: ['ignore', log.fd, log.fd],
      detached: true,
      ...(options.user ? { uid: options.user.uid, gid: options.user.gid } : {}),
    });
    child.unref(); // the server outlives us when we exit first (restore --start)
    child.once('exit', (code, signal) => (exited = signal ? `killed by ${signal}` : `exit code ${code}`));
    spawned = new Promise((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!));
      child.once('error', (e) => reject(new ToolFailed(`cannot start ${join(binDir, 'postgres')}: ${e.message}`)));
    });
    spawned.catch(() => undefined); // awaited below, once the log is closed
  } finally {
    await log.close(); // the server has its own copy
  }
  const pid = await spawned;
  const failed = async (why: string) => new ToolFailed(`PostgreSQL in ${dataDir} ${why}:\n${await lastLines(options.logFile, 25)}`);
  const started = Date.now();
  for (;;) {
    const lines = await pidFile(dataDir);
    if (lines && Number(lines[PID_LINE]) === pid && /^(ready|standby)\b/.test(lines[STATUS_LINE] ?? '')) return pid;
    if (exited) throw await failed(`did not start (${exited})`);
    const waited = Date.now() - started;
    if (waited > options.timeoutSeconds * 1000 || options.signal?.aborted) {
      await stopPostmaster(dataDir, 'immediate', { timeoutSeconds: 30 }).catch(() => undefined);
      if (options.signal?.aborted) throw abortReason(options.signal);
      throw await failed(`was not ready within ${options.timeoutSeconds} s`);
    }
    await sleep(pollDelay(waited));
  }
}

/** PostgreSQL's shutdown modes and the signal each is (pg_ctl's -m), and `kill` for a server that ignores them. */
const SHUTDOWN_SIGNALS = { smart: 'SIGTERM', fast: 'SIGINT', immediate: 'SIGQUIT', kill: 'SIGKILL' } as const;

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Whether `pid` is a server running from `dataDir` (a postmaster's working directory is its data
 * directory): a stale pid file may name any process by now. A process we may not look at is not
 * ours to signal either (the servers we start run as us, or we are root).
 */
async function runsFrom(pid: number, dataDir: string): Promise<boolean> {
  const [cwd, dir] = await Promise.all([readlink(`/proc/${pid}/cwd`).catch(() => undefined), realpath(dataDir).catch(() => undefined)]);
  return cwd !== undefined && cwd === dir;
}

/**
 * Stops the server running from `dataDir` (pg_ctl stop -m <mode> -w): signals the pid its pid file
 * names and waits until that process is gone. Returns false when no server was running.
 * Rejects when it has not stopped within the timeout.
 */
export async function stopPostmaster(dataDir: string, mode: keyof typeof SHUTDOWN_SIGNALS, options: { timeoutSeconds: number }): Promise<boolean> {
  const lines = await pidFile(dataDir);
  const pid = Number(lines?.[PID_LINE]);
  if (!lines || !Number.isInteger(pid) || pid <= 0 || !(await runsFrom(pid, dataDir))) return false;
  try {
    process.kill(pid, SHUTDOWN_SIGNALS[mode]);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false; // a stale pid file
    throw e;
  }
  const started = Date.now();
  // Until the process is gone, not only its pid file (removed just before it exits; pg_ctl waits
  // for the file alone): whoever comes next may want its port or its shared memory.
  while (alive(pid)) {
    const waited = Date.now() - started;
    if (waited > options.timeoutSeconds * 1000) throw new ToolFailed(`PostgreSQL in ${dataDir} (pid ${pid}) did not stop within ${options.timeoutSeconds} s (${mode} shutdown)`);
    await sleep(pollDelay(waited));
  }
  return true;
}
