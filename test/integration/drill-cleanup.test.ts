import { chmodSync, existsSync, mkdirSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runDrillCleanup } from '../../lib/core/commands/drill';
import { scratchDirFor } from '../../lib/core/drill/scratch';
import { startThrowawayMariadb } from '../../lib/core/process/throwaway-mariadb';
import { startThrowawayPostgres } from '../../lib/core/process/throwaway-postgres';
import { useTempDir } from '../harness/tidemark';

jest.setTimeout(300_000);

function processesUnder(dir: string): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((e) => {
      try {
        return readlinkSync(`/proc/${e}/cwd`).startsWith(dir);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/**
 * drill-cleanup on what a killed drill leaves: servers started untracked (as the worker starts
 * them) in a scratch dir are found by their pid files and stopped, whatever the engine; a stale pid
 * file naming someone else's process is left alone.
 */
describe('drill-cleanup', () => {
  const tmp = useTempDir('tidemark-drill-cleanup-');

  it('stops a PostgreSQL and a MariaDB server left in the scratch dir, removes it, and is idempotent', async () => {
    chmodSync(tmp.path, 0o755);
    const env = { TIDEMARK_SPOOL: join(tmp.path, 'spool') };
    const id = '20261201T110000Z-c1c1c1';
    const scratch = scratchDirFor(id, env);
    mkdirSync(scratch, { recursive: true, mode: 0o755 });
    chmodSync(join(scratch, '..'), 0o755);
    await startThrowawayPostgres({ dir: join(scratch, 'pg') });
    await startThrowawayMariadb({ dir: join(scratch, 'maria'), binlog: false });
    // A stale pid file naming a live process that is not ours (this test's own pid): never signalled.
    writeFileSync(join(scratch, 'stale.pid'), `${process.pid}\n`);
    expect(processesUnder(scratch).length).toBeGreaterThanOrEqual(2);

    const { stopped, removed, dir } = await runDrillCleanup(id, env);
    expect({ stopped, removed, dir }).toEqual({ stopped: 2, removed: true, dir: scratch });
    expect(existsSync(scratch)).toBe(false);
    expect(processesUnder(scratch)).toEqual([]);
    expect(await runDrillCleanup(id, env)).toEqual({ stopped: 0, removed: false, dir: scratch });
  });
});
