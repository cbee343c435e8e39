import { readdir, readFile, realpath, rm, mkdir, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, sep } from 'node:path';
import { sleep } from '../abort';
import { UsageError } from '../errors';

/**
 * A drill's scratch directory: everything the drill writes locally (the throwaway server's data,
 * its socket, logs) lives under it, so teardown is "stop what runs from here, remove it". On
 * Fargate it is the task's own storage ($TIDEMARK_SPOOL, the ephemeral or EBS volume); locally a
 * folder under the temp dir. `drill-cleanup` uses the same path to find what a killed worker left.
 */

const DRILL_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function checkDrillId(id: string): string {
  if (!DRILL_ID.test(id) || id.includes('..')) throw new UsageError(`--id ${id}: expected a drill id like 20261201T073000Z-1a2b3c (letters, digits, . _ -)`);
  return id;
}

export function scratchDirFor(id: string, env: NodeJS.ProcessEnv = process.env): string {
  const root = env.TIDEMARK_SPOOL ? join(env.TIDEMARK_SPOOL, 'drills') : join(tmpdir(), 'tidemark-drills');
  return join(root, checkDrillId(id));
}

/**
 * Where drills keep initialised data directories to copy instead of initialising a server each
 * time (data-dir-template.ts): the worker image's (TIDEMARK_TEMPLATES, made at build time), else
 * beside the scratch directories (made by the first drill; a drill id cannot start with a dot).
 */
export function templatesDirFor(scratchDir: string, env: NodeJS.ProcessEnv = process.env): string {
  return env.TIDEMARK_TEMPLATES || join(dirname(scratchDir), '.templates');
}

/**
 * Whether a drill's instance takes a spare copy of its template and leaves the next one at its
 * teardown (data-dir-template.ts, copyFromTemplate's `spare`): where the templates live beside the scratch
 * directories, on a machine that runs drill after drill. Not with a worker image's templates
 * (TIDEMARK_TEMPLATES): a task runs one drill, and overlayfs refuses to rename a directory of the
 * image's layer (EXDEV), so a spare would cost each task's teardown a copy no drill takes.
 */
export function keepsSpares(env: NodeJS.ProcessEnv = process.env): boolean {
  return !env.TIDEMARK_TEMPLATES;
}

/**
 * Creates the scratch directory. Its parents must be enterable by the database's OS user when we
 * run as root (the server runs as `postgres`/`mysql` inside it), so they are 0755; what is secret
 * lives in the server's own 0700 directory below.
 */
export async function prepareScratch(dir: string): Promise<void> {
  // The throwaway server's socket lives below it, and a socket path has at most 107 bytes.
  const socket = join(dir, 'pgdata', '.s.PGSQL.65535');
  if (Buffer.byteLength(socket) > 107) {
    throw new UsageError(`drill scratch directory ${dir} is too deep for the server's Unix socket (${Buffer.byteLength(socket)} > 107 bytes): set TIDEMARK_SPOOL to a shorter path`);
  }
  const parent = join(dir, '..');
  await mkdir(parent, { recursive: true });
  await chmod(parent, 0o755).catch(() => undefined);
  await mkdir(dir, { recursive: false }).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'EEXIST') throw new UsageError(`drill scratch directory ${dir} exists already: another drill with this id ran here; run drill-cleanup first`);
    throw e;
  });
  await chmod(dir, 0o755);
}

/** Server processes whose working directory lies under `dir`: what a pid file there names, checked in /proc. */
async function serversUnder(dir: string): Promise<{ pid: number; kind: 'postgres' | 'mariadb' }[]> {
  const found: { pid: number; kind: 'postgres' | 'mariadb' }[] = [];
  const root = await realpath(dir).catch(() => undefined);
  if (!root) return found;
  const walk = async (at: string, depth: number): Promise<void> => {
    const entries = await readdir(at, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const path = join(at, e.name);
      if (e.isDirectory() && depth < 4) await walk(path, depth + 1);
      else if (e.isFile() && (e.name === 'postmaster.pid' || e.name.endsWith('.pid'))) {
        // Negative in a single-user backend's lock file (initdb's bootstrap): the same process.
        const pid = Math.abs(Number((await readFile(path, 'utf8').catch(() => '')).split('\n')[0].trim()));
        if (!Number.isInteger(pid) || pid <= 1) continue;
        // A pid file can outlive its process and the number be reused: only a process working in
        // this directory is ours to stop.
        const cwd = await realpath(`/proc/${pid}/cwd`).catch(() => undefined);
        if (cwd && (cwd === root || cwd.startsWith(root + sep))) found.push({ pid, kind: e.name === 'postmaster.pid' ? 'postgres' : 'mariadb' });
      }
    }
  };
  await walk(root, 0);
  return found;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * Stops every server running from `dir` (PostgreSQL: SIGQUIT, immediate shutdown; MariaDB: SIGKILL,
 * nothing to keep) and removes the directory. Idempotent; returns how many servers it stopped.
 */
export async function cleanupScratch(dir: string): Promise<{ stopped: number; removed: boolean }> {
  const servers = await serversUnder(dir);
  for (const s of servers) {
    try {
      process.kill(s.pid, s.kind === 'postgres' ? 'SIGQUIT' : 'SIGKILL');
    } catch {
      // gone already
    }
  }
  for (const s of servers) {
    for (let i = 0; i < 100 && alive(s.pid); i++) await sleep(100);
    if (alive(s.pid)) {
      try {
        process.kill(s.pid, 'SIGKILL');
      } catch {
        // gone
      }
      for (let i = 0; i < 50 && alive(s.pid); i++) await sleep(100);
    }
  }
  const existed = await realpath(dir).then(() => true, () => false);
  await rm(dir, { recursive: true, force: true });
  return { stopped: servers.length, removed: existed };
}
