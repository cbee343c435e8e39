import { execFileSync } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

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
