import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync, utimesSync } from 'node:fs';
import { join, relative } from 'node:path';
import { runBackup } from '../../lib/core/commands/backup';
import { runList } from '../../lib/core/commands/list';
import { runRetention } from '../../lib/core/commands/retention';
import { runVerify } from '../../lib/core/commands/verify';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import type { BackupType } from '../../lib/core/engines/backup-types';
import { silentProgress } from '../../lib/core/progress';
import { alive, descendants, waitForExit } from '../harness/proc';
import { runCli, spawnCli, waitForUploadInFlight } from '../harness/tidemark';
import { random } from './fault-injector';

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
  /** From the start to the process's exit: a whole run's length when the signal did not land. */
  readonly runMs: number;
  /** Tools the CLI had started when the signal came (its descendants then), still running at its exit. */
  readonly orphans: readonly number[];
  readonly stderr: string;
}

/** The command name of a process, or '' when it is gone. */
export function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/**
 * The CLI with `args`, sent `signal` `ms` after its start unless it has exited by then. The tools it
 * runs are noted just before the signal, so a test can tell which outlived it.
 */
export async function signalCliAt(args: string[], ms: number, signal: NodeJS.Signals): Promise<SignalledRun> {
  const started = Date.now();
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
  return { ...end, landed, exitSeconds, runMs: Date.now() - started, orphans: tools.filter(alive), stderr };
}

/** Files under <repo>/app/backups in folders of no listed backup: what killed runs left. */
export function leftovers(backupsDir: string, listed: readonly string[]): string[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const e of existsSync(dir) ? readdirSync(dir, { withFileTypes: true }) : []) {
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

/** A backup command of one source, for the matrices below. */
export interface BackupCase {
  readonly config: TidemarkConfig;
  /** The config file the CLI reads (`config` parsed). */
  readonly configPath: string;
  readonly source: string;
  readonly type: BackupType;
}

const backupArgs = (c: BackupCase): string[] => ['backup', c.source, '--type', c.type, '--config', c.configPath];
const listedIds = async (c: BackupCase): Promise<string[]> => (await runList(c.config, c.source)).backups.map((b) => b.id);

/**
 * The SIGKILL promise for one backup type: the CLI killed at `kills` seeded moments across a timed
 * run (`between` changes the data before each) → 0 or 1 new backup listed (1 when it exited 0), its
 * tools gone with it, most moments inside the run; then every listed backup verifies and the next
 * backup runs at once (the dead runs' leases keep nothing out).
 */
export async function expectKilledBackupsHarmless(c: BackupCase, { kills, seed, between }: { kills: number; seed: number; between?: (i: number) => Promise<unknown> }): Promise<void> {
  const args = backupArgs(c);
  const timed = await runCli(args);
  expect([timed.code, timed.stderr]).toEqual([0, expect.any(String)]);
  const span = timed.seconds * 1000;
  const next = random(seed);
  let interrupted = 0;
  for (let i = 0; i < kills; i++) {
    await between?.(i);
    // A moment past the end of this run (the timed run was slower than this one) is tried again
    // at half of it, twice at most, so the kills land inside runs however the machine's load moves.
    for (let moment = next() * span * 1.1, tries = 0; ; moment /= 2, tries++) {
      const before = await listedIds(c);
      const run = await signalCliAt(args, moment, 'SIGKILL');
      // The tools (pg_dump, pg_basebackup, mariadb-dump, zstd) lose their pipes with the CLI and go.
      expect(await waitForExit(run.orphans)).toEqual([]);
      const after = await listedIds(c);
      // Listed only once its manifest is stored (a kill between that and the exit leaves a whole
      // backup, verified below); a run that exited 0 is always listed.
      const at = { kill: i, moment: Math.round(moment), exit: run.code, listed: after.length - before.length };
      expect([0, 1].includes(at.listed) && (run.code !== 0 || at.listed === 1) ? 'ok' : at).toBe('ok');
      if (run.signal === 'SIGKILL' && at.listed === 0) interrupted++;
      if (run.landed || tries === 2) break;
    }
  }
  expect(interrupted).toBeGreaterThanOrEqual(Math.ceil(kills / 2));
  expect((await runVerify(c.config, c.source, { progress: silentProgress })).ok).toBe(true);
  const listed = await listedIds(c);
  const after = await runBackup(c.config, c.source, { type: c.type, progress: silentProgress });
  expect(await listedIds(c)).toEqual([...listed, after.id]);
}

/**
 * The SIGTERM promise for one backup type: at `terms` seeded moments inside a timed run → out within
 * SIGTERM_EXIT_SECONDS, no tool left, nothing half committed (1 new backup only when it exited 0, or
 * had reported the backup committed before the signal came);
 * then the next backup works and everything verifies.
 */
export async function expectTerminatedBackupsClean(c: BackupCase, { terms, seed }: { terms: number; seed: number }): Promise<void> {
  const args = backupArgs(c);
  const timed = await runCli(args);
  expect(timed.code).toBe(0);
  const next = random(seed);
  for (let i = 0; i < terms; i++) {
    const before = await listedIds(c);
    // Late enough that the backup has begun (start-up is ~0.7 s), before its end.
    const moment = (0.3 + 0.6 * next()) * timed.seconds * 1000;
    const run = await signalCliAt(args, moment, 'SIGTERM');
    const listed = (await listedIds(c)).length - before.length;
    const at = { term: i, moment: Math.round(moment), exit: run.code, seconds: run.exitSeconds, listed, orphans: run.orphans, stderr: run.stderr.trim().split('\n').slice(-12).join('\n') };
    // A signal before the CLI has loaded (no handler yet) ends it by default: nothing had begun.
    const stopped = run.code === 130 || run.signal === 'SIGTERM';
    // A signal once the backup is committed and reported, while the CLI exits, has nothing left to
    // stop: the backup is listed whole (and verifies below). Seen on Node 22, whose backup ended
    // before the drawn moment.
    const reportedFirst = listed === 1 && /^\w+ backup \S+: .* stored in /m.test(run.stderr);
    const ok = run.exitSeconds <= SIGTERM_EXIT_SECONDS && run.orphans.length === 0 && (run.code === 0 ? listed === 1 : stopped && (listed === 0 || reportedFirst));
    expect(ok ? 'ok' : at).toBe('ok');
    process.stderr.write(`SIGTERM ${i} at ${at.moment} ms: exit ${run.code ?? run.signal} after ${run.exitSeconds.toFixed(2)} s, ${listed} listed\n`);
  }
  expect((await runCli(args)).code).toBe(0);
  expect((await runVerify(c.config, c.source, { progress: silentProgress })).ok).toBe(true);
}

/**
 * The CLI with `args` SIGKILLed as soon as an upload of it is in flight (a `.tmp-` file under
 * `backupsDir`, <repo>/<source>/backups), its tools gone with it; nothing when it ends first.
 */
async function killWhileUploading(args: string[], backupsDir: string): Promise<void> {
  const child = spawnCli(args);
  child.stdout!.resume();
  child.stderr!.resume();
  const exited = once(child, 'exit');
  let ended = false;
  void exited.then(() => (ended = true));
  while (!ended && !(await waitForUploadInFlight(backupsDir, { minBytes: 1, timeoutMs: 0 }))) await new Promise((r) => setTimeout(r, 10));
  if (ended) return;
  const tools = descendants(child.pid!);
  child.kill('SIGKILL');
  await exited;
  expect(await waitForExit(tools)).toEqual([]);
}

/**
 * Retention's garbage collection after killed backups (a folder repository at `repoDir`): two days
 * on, every part the killed runs left is gone — uploads in flight included — and nothing else; the
 * listed backups are unchanged and verify.
 */
export async function expectRetentionCollectsLeftovers(c: BackupCase, repoDir: string): Promise<void> {
  const backupsDir = join(repoDir, c.source, 'backups');
  // The seeded kills before may all have landed where a run leaves nothing (before its first
  // object, or in its last moments): then a run is killed while an upload of it is in flight (one
  // that ended first is listed, hence the list read again).
  for (let tries = 0; tries < 3 && leftovers(backupsDir, await listedIds(c)).length === 0; tries++) await killWhileUploading(backupArgs(c), backupsDir);
  const listed = await listedIds(c);
  const left = leftovers(backupsDir, listed);
  expect(left.length).toBeGreaterThan(0);
  // A dead run's parts wait out its lease (24 h, the longest a backup may run) and a day's grace;
  // its uploads in flight (temp files) go once a day old. Two days pass:
  const now = new Date(Date.now() + 49 * 3_600_000);
  ageLeftovers(backupsDir, left, 49);
  const dry = await runRetention(c.config, c.source, { now });
  expect(dry.sources[0].delete.filter((d) => d.what !== 'unfinished')).toEqual([]);
  await runRetention(c.config, c.source, { apply: true, now });
  expect(leftovers(backupsDir, listed)).toEqual([]);
  expect(await listedIds(c)).toEqual(listed);
  expect((await runVerify(c.config, c.source, { progress: silentProgress })).ok).toBe(true);
}
