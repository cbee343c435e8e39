/**
 * Measuring tools for the benchmark: wall time of a child process, the peak RSS (VmHWM) of that
 * process polled from /proc, the CPU seconds spent by every process involved (the child, its
 * descendants, and the database server's processes), and small statistics helpers.
 *
 * Everything reads /proc, so it is Linux only, like the rest of the harness.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second for /proc/<pid>/stat times (USER_HZ; 100 on every Linux we run on). */
const CLK_TCK = 100;

export interface Stats {
  readonly n: number;
  readonly min: number;
  readonly median: number;
  readonly max: number;
}

/** Arguments quoted for sh -c. */
export const shq = (args: readonly string[]): string => args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export function stats(values: readonly number[]): Stats {
  return { n: values.length, min: Math.min(...values), median: median(values), max: Math.max(...values) };
}

/** VmHWM (peak resident set) of a live process in KiB, or undefined once it is gone. */
export function readVmHwmKb(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

interface ProcStat {
  readonly pid: number;
  readonly ppid: number;
  readonly comm: string;
  /** utime + stime, in seconds. */
  readonly cpu: number;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // exited between readdir and read
  }
  // comm is in parentheses and may itself hold spaces or parentheses: split at the last ')'.
  const close = text.lastIndexOf(')');
  const comm = text.slice(text.indexOf('(') + 1, close);
  const fields = text.slice(close + 2).split(' ');
  // fields[0] is state (field 3); ppid is field 4, utime 14, stime 15.
  return { pid, ppid: Number(fields[1]), comm, cpu: (Number(fields[11]) + Number(fields[12])) / CLK_TCK };
}

function readCmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

/** CPU seconds by group, e.g. { node: 1.2, zstd: 0.8, pg_dump: 0.9, 'server backend': 2.1 }. */
export type CpuBreakdown = Record<string, number>;

/**
 * Samples the CPU time of two process trees: the measured command (root) and the PostgreSQL server
 * (postmaster). Per process it keeps the last utime+stime seen, minus what it had already used when
 * sampling started, so long-lived server processes only count their share of this run. A process
 * that exits loses at most one sampling interval of CPU; one that lives less than an interval may be
 * missed (psql, createdb): the groups are an attribution, the wall time is the measurement.
 */
export class CpuSampler {
  private readonly baseline = new Map<number, number>();
  private readonly last = new Map<number, { cpu: number; group: string }>();
  private readonly groups = new Map<number, { comm: string; group: string }>();
  private readonly pending = new Set<number>();

  constructor(
    private readonly serverPid: number,
    private readonly classify: (comm: string, cmdline: string, underServer: boolean) => string,
  ) {
    for (const pid of allPids()) {
      const s = readStat(pid);
      if (s) this.baseline.set(pid, s.cpu);
    }
  }

  /** One scan of /proc; `rootPid` is the measured command. */
  sample(rootPid: number): void {
    const procs = new Map<number, ProcStat>();
    for (const pid of allPids()) {
      const s = readStat(pid);
      if (s) procs.set(pid, s);
    }
    const ancestorIn = (pid: number, target: number): boolean => {
      for (let p = pid, hops = 0; p > 1 && hops < 64; hops++) {
        if (p === target) return true;
        const s = procs.get(p);
        if (!s) return false;
        p = s.ppid;
      }
      return false;
    };
    for (const s of procs.values()) {
      const underRoot = ancestorIn(s.pid, rootPid);
      const underServer = !underRoot && ancestorIn(s.pid, this.serverPid);
      if (!underRoot && !underServer) continue;
      let known = this.groups.get(s.pid);
      // A server process sets its title (what it is) only after fork, and a launcher (stdbuf) turns
      // into its tool by exec: look again until the title is there, and whenever the name changes.
      if (known === undefined || known.comm !== s.comm || this.pending.has(s.pid)) {
        const cmdline = readCmdline(s.pid);
        known = { comm: s.comm, group: this.classify(s.comm, cmdline, underServer) };
        this.groups.set(s.pid, known);
        if (underServer && !cmdline.startsWith('postgres: ')) this.pending.add(s.pid);
        else this.pending.delete(s.pid);
      }
      const { group } = known;
      this.last.set(s.pid, { cpu: s.cpu - (this.baseline.get(s.pid) ?? 0), group });
    }
  }

  breakdown(): CpuBreakdown {
    const out: CpuBreakdown = {};
    for (const { cpu, group } of this.last.values()) out[group] = (out[group] ?? 0) + cpu;
    return out;
  }
}

export interface TimedLine {
  /** Seconds since the process was spawned. */
  readonly at: number;
  readonly text: string;
}

export interface RunResult {
  readonly seconds: number;
  readonly code: number | null;
  readonly stdout: string;
  readonly stderrLines: readonly TimedLine[];
  /** Peak VmHWM of the spawned process itself (not its children), KiB; only when `pollRss`. */
  readonly peakRssKb?: number;
  readonly cpu?: CpuBreakdown;
}

export interface RunOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** Poll VmHWM of the spawned process every `rssIntervalMs`. */
  readonly pollRss?: boolean;
  readonly rssIntervalMs?: number;
  /** Attribute CPU time; scans /proc every `cpuIntervalMs`. */
  readonly cpu?: CpuSampler;
  readonly cpuIntervalMs?: number;
}

/**
 * Runs a command to completion and measures it. The clock starts just before spawn and stops on
 * the 'exit' event; the pollers run on this (harness) process's event loop, never in the child.
 */
export function measure(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const { rssIntervalMs = 50, cpuIntervalMs = 100 } = options;
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;
    const child = spawn(command, args, { env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const pid = child.pid;
    let stdout = '';
    const stderrLines: TimedLine[] = [];
    let partial = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      const at = elapsed();
      const parts = (partial + d).split('\n');
      partial = parts.pop() ?? '';
      for (const text of parts) stderrLines.push({ at, text });
    });
    let peak: number | undefined;
    const pollRss = () => {
      if (pid === undefined) return;
      const v = readVmHwmKb(pid);
      if (v !== undefined) peak = Math.max(peak ?? 0, v);
    };
    const pollCpu = () => pid !== undefined && options.cpu?.sample(pid);
    const timers = [
      options.pollRss ? setInterval(pollRss, rssIntervalMs) : undefined,
      options.cpu ? setInterval(pollCpu, cpuIntervalMs) : undefined,
    ];
    if (options.pollRss) pollRss();
    child.on('error', (e) => {
      for (const t of timers) if (t) clearInterval(t);
      reject(e);
    });
    // 'exit' fires when the process is gone but before its pipes are drained; one last poll of the
    // process tree catches children that are still finishing, then 'close' delivers all output.
    let seconds = 0;
    child.on('exit', () => {
      seconds = elapsed();
      pollCpu();
    });
    child.on('close', (code) => {
      for (const t of timers) if (t) clearInterval(t);
      if (partial) stderrLines.push({ at: elapsed(), text: partial });
      resolve({
        seconds,
        code,
        stdout,
        stderrLines,
        ...(options.pollRss ? { peakRssKb: peak } : {}),
        ...(options.cpu ? { cpu: options.cpu.breakdown() } : {}),
      });
    });
  });
}

/** Like measure(), but a non-zero exit is an error carrying the command's stderr. */
export async function measureOk(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const r = await measure(command, args, options);
  if (r.code !== 0) {
    const tail = r.stderrLines.slice(-15).map((l) => l.text).join('\n');
    throw new Error(`${command} ${args.join(' ')} exited with ${r.code}:\n${tail}`);
  }
  return r;
}
