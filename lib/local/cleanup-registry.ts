import { spawn } from 'node:child_process';

/** A throwaway server this process started and has not stopped yet. */
export interface LiveServer {
  /** Server process id (postmaster, mariadbd). */
  pid: number;
  /** The signal that makes the server stop at once: SIGQUIT for postgres, SIGKILL for mariadbd. */
  signal: NodeJS.Signals;
  /** Temp root to delete once the server is gone. */
  dir: string;
  /** Stop the server synchronously and delete `dir`. Runs during process exit: must not throw. */
  stopNow(): void;
}

const live = new Set<LiveServer>();
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function stopAll(): void {
  for (const server of [...live]) {
    live.delete(server);
    try {
      server.stopNow();
    } catch {
      // Best effort: the watchdog still cleans up after this process is gone.
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  stopAll();
  detach();
  // Our listener suppressed the default action; re-raise so the process still dies (or whoever
  // else listens decides).
  process.kill(process.pid, signal);
}

function attach(): void {
  process.on('exit', stopAll);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function detach(): void {
  process.off('exit', stopAll);
  for (const s of SIGNALS) process.off(s, onSignal);
}

/*
 * Exit handlers do not run when the process is SIGKILLed, and under jest `process` is a sandbox copy
 * whose 'exit' never fires. So each server also gets a detached shell that outlives us: once our pid
 * is gone it signals the server, waits for it and removes its files. It runs as our own user (root
 * in CI), which can signal the server and delete whatever tests put in the directory.
 */
const WATCHDOG = `
parent=$1 pid=$2 sig=$3 dir=$4
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
kill -s "$sig" "$pid" 2>/dev/null
i=0
while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 150 ]; do sleep 0.2; i=$((i+1)); done
kill -s KILL "$pid" 2>/dev/null
rm -rf "$dir"
`;

function startWatchdog(server: LiveServer): number | undefined {
  const child = spawn(
    'sh',
    ['-c', WATCHDOG, 'tidemark-watchdog', String(process.pid), String(server.pid), server.signal.replace(/^SIG/, ''), server.dir],
    { detached: true, stdio: 'ignore' },
  );
  child.on('error', () => undefined);
  child.unref();
  return child.pid;
}

/**
 * Track a running server so it is stopped if this process ends without stopping it.
 * Returns the function that forgets it again; call it from a clean stop().
 */
export function trackLiveServer(server: LiveServer): () => void {
  if (live.size === 0) attach();
  live.add(server);
  const watchdog = startWatchdog(server);
  return () => {
    if (watchdog !== undefined) {
      try {
        process.kill(watchdog, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    if (live.delete(server) && live.size === 0) detach();
  };
}

/** Number of tracked servers; for tests and diagnostics. */
export function liveServerCount(): number {
  return live.size;
}
