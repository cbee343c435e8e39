import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { runDrillLocally } from '../../lib/local/local-drill-pipeline';
import { testWorker } from './bundles';

/*
 * Faults for the drill machine's e2e tests (issue 10: a worker killed mid-restore, a corrupted
 * backup), the same for every engine.
 */

/** A drill id as the worker's first lines print it ("drill <id>: …"). */
const DRILL_ID = /"drill (\d{8}T\d{6}Z-[0-9a-f]{6}):/;

/**
 * An `onWorkerOutput` that SIGKILLs the drill worker (`worker` entry, `source`) at its first output
 * line matching `at`, once the drill's id is known; `id` and `killed` say what it did.
 */
export function killWorkerAt(at: RegExp, worker: string, source: string) {
  const state = { id: '', killed: false };
  return {
    state,
    onWorkerOutput: (line: string) => {
      state.id ||= DRILL_ID.exec(line)?.[1] ?? '';
      if (!state.id || state.killed || !at.test(line)) return;
      const found = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
        .split('\n')
        .find((l) => l.includes(`${worker} drill ${source}`) && l.includes(`--id ${state.id}`));
      if (!found) return;
      process.kill(Number(found.trim().split(/\s+/)[0]), 'SIGKILL');
      state.killed = true;
    },
  };
}

/**
 * Copies the folder repository `repo` to `dest` and flips a byte in the middle of the largest
 * object of `source`'s only backup (a pack, a table's data): returns that object's file name.
 */
export function corruptLargestObject(repo: string, dest: string, source: string): string {
  cpSync(repo, dest, { recursive: true });
  const backups = join(dest, source, 'backups');
  const [id] = readdirSync(backups);
  const dir = join(backups, id);
  const [victim] = readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f !== 'manifest.json' && statSync(join(dir, f)).isFile())
    .map((f) => ({ f, size: statSync(join(dir, f)).size }))
    .sort((a, b) => b.size - a.size);
  const bytes = readFileSync(join(dir, victim.f));
  bytes[Math.floor(bytes.length / 2)] ^= 0xff;
  writeFileSync(join(dir, victim.f), bytes);
  return victim.f;
}

/** A drill's scratch dir when TIDEMARK_SPOOL is not set, and the processes running from it. */
export const scratchOf = (id: string) => join(tmpdir(), 'tidemark-drills', id);
export const serversIn = (dir: string) => execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(dir));

/**
 * The two fault tests every engine's drill machine gets (issue 10): the worker SIGKILLed at the
 * output line `killAt` (mid-restore), and a corrupted backup. `drill` runs a passing drill of
 * `source`, against the folder repository `repo` (under `dir()`) when given.
 */
export function drillFaultTests(options: {
  readonly source: string;
  readonly killAt: RegExp;
  readonly dir: () => string;
  readonly drill: (o: { repo?: string; onWorkerOutput?: (line: string) => void }) => ReturnType<typeof runDrillLocally>;
}): void {
  const { source, killAt, dir, drill } = options;
  test('the worker killed mid-restore: drill-cleanup stops what it left running and removes the scratch dir', async () => {
    const kill = killWorkerAt(killAt, testWorker(), source);
    const result = await drill({ onWorkerOutput: kill.onWorkerOutput });
    expect(kill.state).toMatchObject({ killed: true });
    expect(result.status).toBe('FAILED');
    expect(result.tasks.map((t) => t[0])).toEqual(['drill', 'drill-cleanup']);
    expect(result.report).toMatchObject({ ok: false, error: expect.stringContaining('SIGKILL') });
    expect(serversIn(scratchOf(kill.state.id))).toEqual([]);
    expect(existsSync(scratchOf(kill.state.id))).toBe(false);
  }, 300_000);

  test('a corrupted backup: failed naming the object, torn down', async () => {
    const victim = corruptLargestObject(join(dir(), 'repo'), join(dir(), 'corrupt'), source);
    const result = await drill({ repo: 'corrupt' });
    expect(result.status).toBe('FAILED');
    expect(result.tasks.map((t) => t[0])).toEqual(['drill', 'drill-cleanup']);
    expect(result.report?.error).toContain(victim);
    expect(serversIn(scratchOf(result.report!.id))).toEqual([]);
    expect(existsSync(scratchOf(result.report!.id))).toBe(false);
  }, 300_000);
}
