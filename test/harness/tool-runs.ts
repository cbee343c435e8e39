import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pgBin } from '../../lib/core/engines/postgres/tools';
import { childrenOf, readProc } from './proc';

/*
 * What the tools Tidemark starts are given: their arguments and their environment. Two views:
 * wrappers that record every run (nothing is missed, however short), and a sampler of /proc that
 * sees every process of the watched run's tree (including the ones no wrapper stands in for).
 */

/** The PostgreSQL tools the logical backup and restore run, found through TIDEMARK_PG_BINDIR. */
const PG_TOOLS = ['pg_dump', 'pg_dumpall', 'pg_restore', 'psql'];
/** Tools found through PATH. */
const PATH_TOOLS = ['zstd', 'stdbuf'];

/** One run of a wrapped tool, as it started. */
export interface RecordedToolRun {
  readonly tool: string;
  /** The arguments, without the program name. */
  readonly args: readonly string[];
  readonly environ: Readonly<Record<string, string>>;
  /** PGPASSFILE named a file that existed when the tool started. */
  readonly passfileExisted: boolean;
}

export interface ToolRecorder {
  /**
   * Environment for a Tidemark process (CLI or worker): the wrappers stand in for the tools, and
   * TMPDIR is a private folder, so the passfiles made there can be looked for afterwards.
   */
  readonly env: NodeJS.ProcessEnv;
  /** The private TMPDIR. */
  readonly tmpdir: string;
  /** The runs recorded since the last take(), in no particular order; forgets them. */
  take(): RecordedToolRun[];
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function wrapper(real: string, records: string): string {
  // Records argv and the environment exactly as received, then becomes the real tool (same pid).
  return [
    '#!/bin/sh',
    `rec=$(mktemp ${shellQuote(join(records, `${basename(real)}.XXXXXX`))})`,
    'printf \'%s\\0\' "$@" > "$rec.args"',
    'cat /proc/$$/environ > "$rec.environ"',
    'if [ -n "${PGPASSFILE:-}" ] && [ -f "$PGPASSFILE" ]; then : > "$rec.passfile"; fi',
    `exec ${shellQuote(real)} "$@"`,
    '',
  ].join('\n');
}

const nulSeparated = (bytes: Buffer) => bytes.toString('utf8').split('\0').slice(0, -1);

/** Wrappers for this test file's Tidemark processes; the folder is removed afterwards. */
export function useToolRecorder(): ToolRecorder {
  let root = '';
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'tidemark-tools-'));
    for (const dir of ['bin', 'records', 'tmp']) mkdirSync(join(root, dir));
    const records = join(root, 'records');
    const reals = [
      ...PG_TOOLS.map((tool) => pgBin(tool)),
      ...PATH_TOOLS.map((tool) => execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim()),
    ];
    for (const real of reals) {
      const path = join(root, 'bin', basename(real));
      writeFileSync(path, wrapper(real, records));
      chmodSync(path, 0o755);
    }
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  return {
    get env() {
      const bin = join(root, 'bin');
      return { TIDEMARK_PG_BINDIR: bin, PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, TMPDIR: join(root, 'tmp') };
    },
    get tmpdir() {
      return join(root, 'tmp');
    },
    take() {
      const records = join(root, 'records');
      const names = readdirSync(records);
      const runs = names
        .filter((name) => !name.includes('.', name.indexOf('.') + 1))
        .map((rec) => {
          const environ = nulSeparated(readFileSync(join(records, `${rec}.environ`))).map((entry) => {
            const eq = entry.indexOf('=');
            return [entry.slice(0, eq), entry.slice(eq + 1)];
          });
          return {
            tool: rec.slice(0, rec.lastIndexOf('.')),
            args: nulSeparated(readFileSync(join(records, `${rec}.args`))),
            environ: Object.fromEntries(environ) as Record<string, string>,
            passfileExisted: names.includes(`${rec}.passfile`),
          };
        });
      for (const name of names) rmSync(join(records, name));
      return runs;
    },
  };
}

/** A process seen holding one of the needles. */
export interface ProcessSighting {
  readonly pid: number;
  readonly in: 'cmdline' | 'environ';
  /** Its command line, NULs as spaces. */
  readonly cmdline: string;
}

export interface ProcessWatchReport {
  readonly samples: number;
  readonly sightings: readonly ProcessSighting[];
  /** Basenames of every program seen running (argv[0]), to show the watch saw what it should. */
  readonly programs: ReadonlySet<string>;
}

/**
 * Samples the command line and environment of `root` and every process below it until stopped, and
 * reports each process in which one of `needles` showed up. The tree is walked through the kernel's
 * children lists, with synchronous reads of a few small /proc files: sampling all of /proc every
 * 20 ms kept a core busy and slowed the very runs it watched. Short-lived processes may slip between
 * two samples: the wrappers of useToolRecorder() are the complete record (and the suite's secrets
 * scan watches every process under jest).
 */
export function watchProcesses(root: number, needles: readonly string[], intervalMs = 20): { stop(): Promise<ProcessWatchReport> } {
  const found = new Map<string, ProcessSighting>();
  const programs = new Set<string>();
  let samples = 0;
  let stopped = false;
  const read = (path: string): Buffer => readProc(path) ?? Buffer.alloc(0); // gone meanwhile
  const sample = async () => {
    for (const pids = [root]; pids.length > 0; ) {
      const pid = pids.pop()!;
      pids.push(...childrenOf(pid));
      // A process that exec'd between the reads would pair one program's command line with the
      // other's environment (a fork of a process holding a secret, just becoming a tool): skip it
      // this time, the next sample sees it settled.
      const cmdline = read(`/proc/${pid}/cmdline`);
      const environ = read(`/proc/${pid}/environ`);
      if (!cmdline.equals(read(`/proc/${pid}/cmdline`))) continue;
      const argv0 = cmdline.toString('utf8').split('\0')[0];
      if (argv0) programs.add(basename(argv0));
      for (const [where, bytes] of [['cmdline', cmdline], ['environ', environ]] as const) {
        if (needles.some((n) => bytes.includes(n))) {
          found.set(`${pid}:${where}`, { pid, in: where, cmdline: cmdline.toString('utf8').replace(/\0/g, ' ').trim() });
        }
      }
    }
    samples++;
  };
  const loop = (async () => {
    while (!stopped) {
      await sample();
      await sleep(intervalMs);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { samples, sightings: [...found.values()], programs };
    },
  };
}
