import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join, resolve } from 'node:path';
import { LocalTaskError, runTaskResult, type RunTaskRequest } from './state-machine-runner';
import { DATA_NODE_FLAGS } from './node-flags';

export interface WorkerProcessOptions {
  /**
   * The worker: a `.ts` entry (run with `node --import tsx`), a `.js`/`.cjs`/`.mjs` bundle (run
   * with node), or a full argv prefix (`['node', '-e', '…']`) to which the command is appended.
   *
   * @default - defaultWorkerEntry()
   */
  readonly entry?: string | readonly string[];
  /** Environment of the worker, on top of `inheritEnv` (the container overrides come last). */
  readonly env?: Record<string, string>;
  /**
   * Start from this process's environment (PATH to the database tools, HOME, …).
   *
   * @default true
   */
  readonly inheritEnv?: boolean;
  /** Working directory. @default - this process's */
  readonly cwd?: string;
  /** Each line the worker prints, as it prints it. */
  readonly onOutput?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Grace period between SIGTERM and SIGKILL when the task is stopped. @default 10 s */
  readonly stopGraceMs?: number;
}

/**
 * The ECS resolver of the local runtime: the worker entry as a child process, the Task's command
 * override as its argv. Exit 0 is a stopped task with exit code 0; anything else is
 * `States.TaskFailed` with `{ exitCode, lastLine }` as the Cause (the last line is the worker's
 * one-line reason).
 */
export function workerProcessResolver(options: WorkerProcessOptions = {}): (request: RunTaskRequest) => Promise<unknown> {
  const entry = options.entry ?? defaultWorkerEntry();
  const argv = typeof entry === 'string' ? entryArgv(entry) : [...entry];
  if (argv.length === 0) throw new Error('workerProcessResolver: entry is an empty argv');
  return (request) =>
    new Promise((resolve, reject) => {
      const [file, ...args] = argv;
      const child = spawn(file, [...args, ...request.command], {
        cwd: options.cwd,
        env: { ...COMPILE_CACHE_ENV, ...(options.inheritEnv === false ? {} : process.env), ...options.env, ...request.environment },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const taskId = `${child.pid ?? 'unstarted'}-${randomUUID().slice(0, 8)}`;
      let lastLine = '';
      let lastErrLine = '';
      const watch = (stream: NodeJS.ReadableStream, name: 'stdout' | 'stderr') => {
        let pending = '';
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => {
          const lines = (pending + chunk).split(/\r?\n/);
          pending = lines.pop() ?? '';
          for (const line of lines) emit(line, name);
        });
        stream.on('end', () => pending && emit(pending, name));
      };
      const emit = (line: string, stream: 'stdout' | 'stderr') => {
        if (line.trim()) {
          lastLine = line;
          if (stream === 'stderr') lastErrLine = line;
        }
        options.onOutput?.(line, stream);
      };
      watch(child.stdout, 'stdout');
      watch(child.stderr, 'stderr');

      let killTimer: NodeJS.Timeout | undefined;
      const stop = () => {
        child.kill('SIGTERM');
        killTimer = setTimeout(() => child.kill('SIGKILL'), options.stopGraceMs ?? 10_000);
        killTimer.unref();
      };
      if (request.signal.aborted) stop();
      else request.signal.addEventListener('abort', stop, { once: true });

      child.on('error', (e) => {
        request.signal.removeEventListener('abort', stop);
        reject(new LocalTaskError('States.TaskFailed', { exitCode: null, lastLine: `cannot start ${file}: ${e.message}` }));
      });
      child.on('close', (code, signal) => {
        request.signal.removeEventListener('abort', stop);
        clearTimeout(killTimer);
        if (code === 0) resolve(runTaskResult(request.container, 0, taskId));
        else reject(new LocalTaskError('States.TaskFailed', { exitCode: code, ...(signal ? { signal } : {}), lastLine: lastErrLine || lastLine }));
      });
    });
}

/** The worker bundle's file name beside the CLI bundle (cli-bundle.ts writes it there). */
export const CLI_WORKER = 'tidemark-worker.js';

/**
 * The worker bundle beside the running CLI bundle (`npm run build` writes both: cli-bundle.ts), as
 * in the image; from a checkout run through tsx, the repository's containers/worker/main.ts. Found
 * from this file's place, never from the working directory.
 */
export function defaultWorkerEntry(): string {
  const bundled = join(__dirname, CLI_WORKER);
  return existsSync(bundled) ? bundled : resolve(__dirname, '../../containers/worker/main.ts');
}

function entryArgv(entry: string): string[] {
  const ext = extname(entry);
  if (ext === '.ts' || ext === '.mts' || ext === '.cts') return [process.execPath, ...DATA_NODE_FLAGS, '--import', 'tsx', entry];
  return [process.execPath, ...DATA_NODE_FLAGS, entry];
}

/**
 * Node's on-disk compile cache for the worker (Node ≥ 22.1; Node 20 ignores the variable), as the
 * image sets it: without it each task compiles its 3 MB bundle again. The CLI launcher's
 * enableCompileCache() does not reach child processes. Same directory as enableCompileCache()'s
 * default; NODE_COMPILE_CACHE or NODE_DISABLE_COMPILE_CACHE in the environment win.
 */
const COMPILE_CACHE_ENV = { NODE_COMPILE_CACHE: join(tmpdir(), 'node-compile-cache') };
