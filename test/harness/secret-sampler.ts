/**
 * The process-table half of the secrets scan, a process of its own so it never waits on a test:
 * every 100 ms it walks the descendants of the jest process (argv[2]) and records a finding for a
 * test secret in any one's arguments, or in the environment of a database tool, server or zstd —
 * the children Tidemark spawns. Two exemptions, both the tests' own doing rather than Tidemark's:
 * the arguments of a CLI a test spawned itself (a test may pass a URL with a password to show it
 * is never passed on), and jest's own processes, whose environment the harness fills on purpose.
 *
 *   node --import tsx test/harness/secret-sampler.ts <jest pid>   (TIDEMARK_SCAN_FINDINGS set)
 */
import { childrenOf, readProc, statOf } from './proc';
import { recordFinding, secretsIn } from './secret-scan';

const root = Number(process.argv[2]);
const INTERVAL_MS = Number(process.env.TIDEMARK_SCAN_INTERVAL_MS ?? 100);
/** `comm` (the first 15 bytes of the executable's name) of the processes whose environment is read. */
const TOOL = /^(pg_\w+|psql|postgres|initdb|mariadb.*|mysql.*|zstd)$/;
const CLI = /\bbin\/tidemark\.ts\b|\btidemark\.(c?js|mjs)\b/;
/** A Tidemark process: the CLI, or the worker (containers/worker/main.ts, or its bundle). */
const TIDEMARK_PROCESS = new RegExp(`${CLI.source}|containers/worker|worker\\.js`);

interface Proc {
  readonly pid: number;
  readonly ppid: number;
  readonly comm: string;
}

/** `root` and every process below it. */
function processes(): Map<number, Proc> {
  const all = new Map<number, Proc>();
  for (const queue = [root]; queue.length > 0; ) {
    const pid = queue.pop()!;
    const stat = all.has(pid) ? undefined : statOf(pid);
    if (!stat) continue;
    // The parent is stat's, not the list the pid was found in: those lists are per thread and
    // only a snapshot, and the exemptions below hang on who the parent really is.
    all.set(pid, { pid, ppid: Number(stat.fields[1]), comm: stat.comm });
    queue.push(...childrenOf(pid));
  }
  return all;
}

/** What each process was checked as, so each exec is read once: pid → cmdline. */
const checked = new Map<number, string>();
const reported = new Set<string>();

function record(where: string, secret: string): void {
  const key = `${where}\0${secret}`;
  if (reported.has(key)) return;
  reported.add(key);
  recordFinding({ where, secret });
}

function tick(): void {
  const all = processes();
  if (!all.has(root)) process.exit(0); // jest is gone: nothing left to watch
  const children = new Map<number, number[]>();
  for (const p of all.values()) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p.pid]);
  // jest and its workers (node …/jest-worker/…): the test processes themselves. With one test
  // file jest runs it in its own process, and a tool a test starts is then a child of `root`.
  const jest = new Set([root, ...(children.get(root) ?? []).filter((pid) => /jest/.test(readProc(`/proc/${pid}/cmdline`)?.toString() ?? ''))]);
  const seen = new Set<number>();
  const queue = [...(children.get(root) ?? [])];
  while (queue.length) {
    const pid = queue.pop()!;
    seen.add(pid);
    queue.push(...(children.get(pid) ?? []));
    if (jest.has(pid) || pid === process.pid) continue;
    const raw = readProc(`/proc/${pid}/cmdline`);
    if (!raw) continue;
    const cmdline = raw.toString().replace(/\0/g, ' ').trim();
    if (checked.get(pid) === cmdline) continue;
    const proc = all.get(pid)!;
    // Between fork and exec a child still has its parent's command line (node spawns by fork, then
    // exec): it is the parent, not yet the program it is to run, and is looked at once it runs it.
    // (A CLI a test spawned, caught there, looked like a process of its own that held the URL's
    // password: seen once in a full run, 2026-12-02.)
    const parentCmdline = readProc(`/proc/${proc.ppid}/cmdline`);
    if (parentCmdline?.equals(raw)) continue;
    checked.set(pid, cmdline);
    // A jest worker started since the set above was made is still jest: its command line says so.
    const testsCli = CLI.test(cmdline) && (jest.has(proc.ppid) || /jest/.test(parentCmdline?.toString() ?? ''));
    const what = `${proc.comm} (pid ${pid}, parent ${all.get(proc.ppid)?.comm ?? proc.ppid}): ${cmdline.slice(0, 160)}`;
    if (!testsCli) for (const secret of secretsIn(raw)) record(`arguments of ${what}`, secret);
    if (TOOL.test(proc.comm) && spawnedByTidemarkProcess(pid, all, jest)) {
      const env = readProc(`/proc/${pid}/environ`);
      if (env) for (const secret of secretsIn(env)) record(`environment of ${what}`, secret);
    }
  }
  for (const pid of checked.keys()) if (!seen.has(pid)) checked.delete(pid);
  if (process.env.TIDEMARK_SCAN_DEBUG) process.stderr.write(`secret sampler: ${seen.size} processes under jest\n`);
}

/**
 * Whether the nearest node process above `pid` is a Tidemark CLI or worker process rather than a
 * jest process. Tools a jest worker starts may come from the test's own code (psql, pg_ctl of the
 * harness, which inherit the test's environment on purpose) or from Tidemark code run in process:
 * the two cannot be told apart here, so only the environment of tools under a separate Tidemark
 * process — what runs in production — is checked. Their arguments are checked everywhere.
 */
function spawnedByTidemarkProcess(pid: number, all: Map<number, Proc>, jest: Set<number>): boolean {
  for (let p = all.get(pid)?.ppid; p !== undefined && p > 1; p = all.get(p)?.ppid) {
    if (jest.has(p)) return false;
    if (all.get(p)?.comm === 'node') return TIDEMARK_PROCESS.test(readProc(`/proc/${p}/cmdline`)?.toString().replace(/\0/g, ' ') ?? '');
  }
  return false;
}

const timer = setInterval(() => {
  try {
    tick();
  } catch (e) {
    process.stderr.write(`secret sampler: ${(e as Error).message}\n`);
  }
}, INTERVAL_MS);
process.on('SIGTERM', () => {
  clearInterval(timer);
  process.exit(0);
});
