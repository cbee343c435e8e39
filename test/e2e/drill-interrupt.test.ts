import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBackup } from '../../lib/core/commands/backup';
import { parseConfig } from '../../lib/core/config/load';
import type { DrillReport } from '../../lib/core/drill/report';
import { silentProgress } from '../../lib/core/progress';
import { usePostgres } from '../harness/postgres';
import { spawnCli, TEST_KEY, useTempDir } from '../harness/tidemark';

/*
 * `tidemark drill` stopped with SIGTERM once its throwaway server is up (the restore running): like
 * StopExecution on AWS, the execution stops and teardown comes from outside it. The promise: the
 * CLI exits 130 saying it tore down, no server runs from the drill's scratch dir, the dir is gone,
 * and the drill is recorded as failed.
 */

jest.setTimeout(240_000);

/** Processes whose argv mention `dir` (the throwaway postgres runs with `-D <scratch>/…`). */
function processesMentioning(dir: string): string[] {
  return execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes(dir) && !l.includes('ps -eo'));
}

describe('tidemark drill interrupted', () => {
  const pg = usePostgres({ databases: ['app'] });
  const tmp = useTempDir('tidemark-drill-int-');

  test('SIGTERM mid-restore: exit 130, the throwaway server stopped, its scratch dir removed, the drill recorded failed', async () => {
    // Enough rows that the restore is still running when the signal lands.
    await pg.sql(`create table orders (id int primary key, note text); insert into orders select g, repeat('n', 60) || g from generate_series(1, 250000) g;`, 'app');
    const config = { repository: `file://${tmp.path}/repo`, encryption: { key: 'env:TIDEMARK_TEST_KEY' }, sources: { app: { engine: 'postgres', url: pg.url('app') } } };
    const path = join(tmp.path, 'tidemark.json');
    writeFileSync(path, JSON.stringify(config));
    process.env.TIDEMARK_TEST_KEY = TEST_KEY;
    await runBackup(parseConfig(JSON.stringify(config), path), 'app', { type: 'logical', progress: silentProgress });

    // The throwaway server runs as the postgres OS user when we are root: it must reach its dir.
    chmodSync(tmp.path, 0o755);
    const spool = join(tmp.path, 'spool');
    const drills = join(spool, 'drills');
    const cli = spawnCli(['-c', path, 'drill', 'app'], { TIDEMARK_TEST_KEY: TEST_KEY, TIDEMARK_SPOOL: spool });
    let stderr = '';
    cli.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => cli.on('close', resolve));

    // The moment: the drill's own server runs from its scratch dir (its pid file is there). A look
    // at the directory every 20 ms, not a process list: the window is a second or two.
    let scratch = '';
    for (const deadline = Date.now() + 180_000; ; await new Promise((r) => setTimeout(r, 20))) {
      // Not the data-dir templates (.templates) kept beside the scratch dirs.
      const [id] = existsSync(drills) ? readdirSync(drills).filter((e) => !e.startsWith('.')) : [];
      if (id && existsSync(join(drills, id, 'pg', 'pgdata', 'postmaster.pid'))) {
        scratch = join(drills, id);
        break;
      }
      if (Date.now() > deadline || cli.exitCode !== null) throw new Error(`the drill's server never started: ${stderr}`);
    }
    cli.kill('SIGTERM');
    const code = await exited;

    expect({ code, said: /drill \S+ of app stopped; torn down, recorded as failed/.test(stderr) }).toEqual({ code: 130, said: true });
    expect(stderr).toMatch(/tidemark: interrupted by SIGTERM/);
    expect(processesMentioning(scratch)).toEqual([]);
    expect(existsSync(scratch)).toBe(false);
    const id = scratch.split('/').pop()!;
    const report = JSON.parse(readFileSync(join(tmp.path, 'repo', 'app', 'drills', `${id}.json`), 'utf8')) as DrillReport;
    expect(report).toMatchObject({ id, ok: false, error: expect.stringMatching(/interrupted by SIGTERM|States\.Aborted/) });
    expect(report.rtoSeconds).toBeUndefined();
  });
});
