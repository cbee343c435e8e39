import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { SecretFile, sweepOrphans } from '../../lib/core/process/secret-file';

const ROOT = resolve(__dirname, '../..');

/** A pid that no process has any more: a child that has exited. */
function deadPid(): number {
  const child = spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' });
  return Number(child.stdout.trim());
}

describe('secret files for child tools', () => {
  it('are private to this user and gone after remove()', async () => {
    const file = await SecretFile.write('unittest', 'pgpass', 'h:5432:*:u:hunter2\n');
    expect(statSync(file.path).mode & 0o777).toBe(0o600);
    expect(dirname(file.path)).toContain(`tidemark-unittest-${process.pid}-`);
    expect(readFileSync(file.path, 'utf8')).toBe('h:5432:*:u:hunter2\n');
    await file.remove();
    expect(existsSync(dirname(file.path))).toBe(false);
  });

  it('removes the files of owners that are gone, and keeps those of live ones', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tidemark-sweep-test-'));
    try {
      const dead = join(dir, `tidemark-pgpass-${deadPid()}-abc123`);
      const live = join(dir, `tidemark-pgpass-${process.ppid}-def456`);
      const other = join(dir, `tidemark-mycnf-${deadPid()}-ghi789`);
      for (const d of [dead, live, other]) {
        mkdirSync(d);
        writeFileSync(join(d, 'secret'), 'x', { mode: 0o600 });
      }
      expect(await sweepOrphans('pgpass', dir)).toBe(1);
      expect([existsSync(dead), existsSync(live), existsSync(other)]).toEqual([false, true, true]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a password left behind by a SIGKILLed process is removed by the next session', async () => {
    const script = `
      const { SecretFile } = require(${JSON.stringify(join(ROOT, 'lib/core/process/secret-file.ts'))});
      SecretFile.write('killtest', 'pgpass', 'h:1:*:u:left-behind\\n').then((f) => { console.log(f.path); setInterval(() => {}, 1000); });
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    const [path] = (await createInterface({ input: child.stdout! })[Symbol.asyncIterator]().next()).value.split('\n');
    expect(readFileSync(path, 'utf8')).toContain('left-behind');
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    expect(existsSync(path)).toBe(true); // nothing can clean up after SIGKILL in the process itself

    const next = await SecretFile.write('killtest', 'pgpass', 'h:1:*:u:fresh\n');
    await next.remove();
    expect(existsSync(path)).toBe(false);
  }, 30_000);
});
