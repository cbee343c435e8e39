import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { Duplex, Readable, type Stream } from 'node:stream';
import { abortReason } from '../abort';
import { ToolFailed } from '../errors';
import { childEnv } from '../secrets';
import { takeSpare } from './spares';

/**
 * External tools (pg_dump, zstd, pg_restore, ...) as streams whose end means success: a tool's
 * output only ends once the tool has exited 0, so a dump that dies at the last byte can never
 * be committed as a complete backup. Destroying a stream kills its tool.
 */

export interface ToolOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Name used in messages; defaults to the binary's basename. */
  readonly label?: string;
  /** Run as this OS user (a root process starting a database server as its own user). */
  readonly uid?: number;
  readonly gid?: number;
}

const STDERR_TAIL = 16 * 1024;

/** The most telling line of a tool's stderr: its first error, else its last line. */
export function summarizeStderr(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^[\w.-]+: (hint|detail):/i.test(l));
  const at = lines.findIndex((l) => /\b(error|fatal|failed|could not|cannot|unrecognized|invalid)\b/i.test(l));
  // A libpq error ends its own line with ':' and puts the server's message on the next.
  const error = at < 0 ? undefined : lines[at].endsWith(':') && at + 1 < lines.length ? `${lines[at]} ${lines[at + 1]}` : lines[at];
  return (error ?? lines[0] ?? '').replace(/\s+/g, ' ').slice(0, 400);
}

export class ToolRun {
  readonly child: ChildProcess;
  readonly label: string;
  /** Exit code (or null when killed by a signal); never rejects. */
  readonly exited: Promise<number | null>;
  private stderrTail = '';
  private signal: NodeJS.Signals | null = null;
  private spawnError?: Error;

  /**
   * `stdio[0]` may be another tool's stdout, `stdio[1]` another tool's stdin: the two then share a
   * kernel pipe that node never reads. `stdio[1]` may also be a file descriptor node holds open.
   */
  constructor(command: string, args: readonly string[], stdio: ['pipe' | 'ignore' | Stream, 'pipe' | 'ignore' | Stream | number], options: ToolOptions) {
    this.label = options.label ?? basename(command);
    // A process started ahead of time (spares.ts) is one this exact call would have started.
    const plain = stdio[0] === 'pipe' && stdio[1] === 'pipe' && !options.env && !options.cwd && options.uid === undefined && options.gid === undefined;
    this.child =
      (plain ? takeSpare(command, args) : undefined) ??
      spawn(command, args, {
        stdio: [stdio[0], stdio[1], 'pipe'],
        env: options.env ?? childEnv(),
        cwd: options.cwd,
        uid: options.uid,
        gid: options.gid,
      });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (d: string) => {
      this.stderrTail = (this.stderrTail + d).slice(-STDERR_TAIL);
    });
    this.exited = new Promise((resolve) => {
      this.child.once('error', (e) => {
        this.spawnError = e;
        resolve(null);
      });
      this.child.once('close', (code, signal) => {
        this.signal = signal;
        resolve(code);
      });
    });
  }

  get stderr(): string {
    return this.stderrTail;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && !this.spawnError;
  }

  kill(): void {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const hard = setTimeout(() => this.running && this.child.kill('SIGKILL'), 3000);
    hard.unref();
  }

  /** The error describing how the tool failed (call after `exited` resolved to non-zero). */
  failure(): ToolFailed {
    if (this.spawnError) {
      const missing = (this.spawnError as NodeJS.ErrnoException).code === 'ENOENT';
      return new ToolFailed(
        missing ? `${this.label} not found: run scripts/setup.sh to install it` : `${this.label} could not start: ${this.spawnError.message}`,
      );
    }
    const how = this.signal ? `was killed by ${this.signal}` : `failed (exit code ${this.child.exitCode})`;
    const why = summarizeStderr(this.stderrTail);
    return new ToolFailed(`${this.label} ${how}${why ? `: ${why}` : ''}`);
  }

  /** Resolves when the tool exited 0, otherwise rejects with its failure. */
  async succeeded(): Promise<void> {
    const code = await this.exited;
    if (code !== 0) throw this.failure();
  }
}

/**
 * The failure to report when tools of one chain failed: the one furthest downstream. A tool fails
 * on its own, while the tool feeding it fails only because its output went away (EPIPE, ECONNRESET
 * — node's child pipes are socket pairs — or SIGPIPE), and zstd compressing a producer that died
 * simply sees end-of-input and exits 0.
 */
export function chainFailure(runs: readonly ToolRun[]): ToolFailed | undefined {
  const failed = runs.filter((r) => r.child.exitCode !== 0);
  return failed[failed.length - 1]?.failure();
}

/**
 * Forwards the last tool's stdout into `target`, ending it only after every tool of the chain
 * exited 0: a producer that died mid-dump leaves zstd to close a valid frame, and that must not
 * pass for a complete backup.
 */
export function forwardOutput(runs: ToolRun | readonly ToolRun[], target: Readable | Duplex): void {
  const chain = Array.isArray(runs) ? (runs as readonly ToolRun[]) : [runs as ToolRun];
  const stdout = chain[chain.length - 1].child.stdout!;
  stdout.on('data', (chunk: Buffer) => {
    if (!target.push(chunk)) stdout.pause();
  });
  stdout.once('end', () => {
    void Promise.all(chain.map((r) => r.exited)).then(() => {
      const failure = chainFailure(chain);
      if (failure) target.destroy(failure);
      else target.push(null);
    });
  });
  for (const run of chain) {
    void run.exited.then((code) => {
      // A tool that cannot start never opens stdout.
      if (code === null && !run.child.signalCode && !stdout.readableEnded) target.destroy(run.failure());
    });
  }
}

/** Writes into a tool's stdin; an EPIPE becomes the tool's own failure message. */
function writeInput(run: ToolRun, chunk: Buffer, done: (e?: Error | null) => void): void {
  const stdin = run.child.stdin!;
  if (stdin.write(chunk)) done();
  else stdin.once('drain', () => done());
}

function inputError(run: ToolRun, onError: (e: Error) => void): void {
  run.child.stdin!.on('error', (e) => {
    run.exited.then((code) => onError(code === 0 ? e : run.failure()));
  });
}

/** A producer: `pg_dump ... > stdout` as a Readable. */
export function toolOutput(command: string, args: readonly string[], options: ToolOptions = {}): Readable {
  const run = new ToolRun(command, args, ['ignore', 'pipe'], options);
  const out = new Readable({
    highWaterMark: 1 << 20,
    read: () => run.child.stdout!.resume(),
    destroy: (err, cb) => {
      run.kill();
      cb(err);
    },
  });
  forwardOutput(run, out);
  return out;
}

/** A filter: `zstd -c` with stdin and stdout as one Duplex. */
export function toolFilter(command: string, args: readonly string[], options: ToolOptions = {}): Duplex {
  const run = new ToolRun(command, args, ['pipe', 'pipe'], options);
  const duplex = new Duplex({
    highWaterMark: 1 << 20,
    write: (chunk: Buffer, _enc, done) => writeInput(run, chunk, done),
    final: (done) => run.child.stdin!.end(() => done()),
    read: () => run.child.stdout!.resume(),
    destroy: (err, cb) => {
      run.kill();
      cb(err);
    },
  });
  inputError(run, (e) => duplex.destroy(e));
  forwardOutput(run, duplex);
  return duplex;
}

/**
 * Feeds `source` into a consumer's stdin (`pg_restore` reading a dump) and resolves once the tool
 * exited 0. A tool may finish before the input ends (pg_restore -t has what it needs): that is
 * success, and reading stops. If the source fails — an integrity error — the tool is killed
 * before it sees end-of-input, and the source's error is what the caller gets.
 */
export function pipeToTool(
  source: Readable,
  command: string,
  args: readonly string[],
  options: ToolOptions & { signal?: AbortSignal } = {},
): Promise<void> {
  const { signal } = options;
  if (signal?.aborted) {
    source.destroy();
    return Promise.reject(abortReason(signal));
  }
  const run = new ToolRun(command, args, ['pipe', 'ignore'], options);
  const stdin = run.child.stdin!;
  let sourceError: unknown;
  stdin.on('error', () => undefined); // EPIPE when the tool is done or dead; its exit code tells which
  source.on('error', (e) => {
    sourceError ??= e;
    run.kill();
  });
  // Aborted: the tool is killed before it can see end-of-input, so it commits nothing.
  const onAbort = () => {
    sourceError ??= abortReason(signal!);
    run.kill();
    source.destroy();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  void run.exited.then(() => signal?.removeEventListener('abort', onAbort));
  source.on('data', (chunk: Buffer) => {
    if (!stdin.write(chunk)) source.pause();
  });
  stdin.on('drain', () => source.resume());
  source.once('end', () => stdin.end());
  return run.exited.then((code) => {
    if (sourceError !== undefined) throw sourceError;
    if (code !== 0) {
      source.destroy();
      throw run.failure();
    }
    if (!source.readableEnded) source.destroy();
  });
}

let stdbufPath: string | null | undefined;

/**
 * The command line that runs `command` with a 1 MiB stdout buffer, via coreutils' stdbuf when it
 * is installed. pg_dump writes through stdio in 4 KiB pieces when stdout is a pipe; each one costs
 * a system call on both ends. When pg_dump still wrote into node, 1 MiB writes made a scale-50
 * pgbench backup take about a sixth less CPU and a tenth less time (BENCHMARKS.md, by-hand
 * measurements); since pg_dump writes into zstd directly that gain is unmeasured. Without stdbuf
 * the tool runs as is.
 */
export function withLargeOutputBuffer(command: string, args: readonly string[]): [string, string[]] {
  if (stdbufPath === undefined) {
    const dirs = (process.env.PATH ?? '/usr/bin:/bin').split(':');
    stdbufPath = dirs.map((d) => `${d}/stdbuf`).find((p) => existsSync(p)) ?? null;
  }
  return stdbufPath ? [stdbufPath, ['-o', '1M', command, ...args]] : [command, [...args]];
}

/**
 * Runs a tool to completion and returns its stdout; non-zero exit → ToolFailed. On `signal`'s
 * abort the tool is stopped, and the abort's reason is thrown once it has exited: nothing it runs
 * outlives the work that started it (a SIGTERMed backup's table checksums did).
 */
export async function runTool(
  command: string,
  args: readonly string[],
  options: ToolOptions & { input?: string | Buffer; signal?: AbortSignal } = {},
): Promise<string> {
  const { signal } = options;
  if (signal?.aborted) throw abortReason(signal);
  const run = new ToolRun(command, args, ['pipe', 'pipe'], options);
  const onAbort = () => run.kill();
  signal?.addEventListener('abort', onAbort, { once: true });
  const chunks: Buffer[] = [];
  run.child.stdout!.on('data', (c: Buffer) => chunks.push(c));
  run.child.stdin!.on('error', () => undefined); // reported through the exit code
  run.child.stdin!.end(options.input ?? '');
  try {
    await run.succeeded();
  } catch (e) {
    if (signal?.aborted) throw abortReason(signal);
    throw e;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const versions = new Map<string, Promise<string>>();

/**
 * `<binary> --version`'s output, asked once per process: an installed binary does not change while
 * we run, and every throwaway server's start (and every binlog stream) asks. A failure is not kept.
 */
export function toolVersion(binary: string, options: ToolOptions = {}): Promise<string> {
  let asked = versions.get(binary);
  if (!asked) {
    asked = runTool(binary, ['--version'], options);
    asked.catch(() => versions.delete(binary));
    versions.set(binary, asked);
  }
  return asked;
}
