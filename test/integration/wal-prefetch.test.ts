import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WalArchive } from '../../lib/core/engines/postgres/wal/wal-archive';
import { WalPrefetcher } from '../../lib/core/engines/postgres/wal/wal-prefetch';
import { pushWalFile } from '../../lib/core/engines/postgres/wal/wal-push';
import { Repository } from '../../lib/core/repository/repository';
import { useTempDir, writeConfig } from '../harness/tidemark';

/**
 * The prefetcher's handshake with restore_command when PostgreSQL asks for the same file twice in
 * a row, as it does for a timeline history file (existsTimeLineHistory, then readTimeLineHistory)
 * and for a history file past the newest timeline. A full test run once hung 240 s in a restore
 * across a failover: the prefetcher removed the first request's `.want` late (a busy event loop)
 * and took the second request's, which then waited for an answer that never came. Here the
 * prefetcher's removals of requests are made late on purpose.
 */
// A busy event loop, made reliable: the prefetcher's removal of a request comes 500 ms late.
const lateRemovals: string[] = [];
jest.mock('node:fs/promises', () => {
  const actual = jest.requireActual<typeof import('node:fs/promises')>('node:fs/promises');
  const { setTimeout: wait } = jest.requireActual<typeof import('node:timers/promises')>('node:timers/promises');
  return {
    ...actual,
    unlink: async (path: string) => {
      if (/\.want/.test(path)) {
        lateRemovals.push(path);
        await wait(500);
      }
      return actual.unlink(path);
    },
  };
});

const sh = (command: string) => promisify(execFile)('sh', ['-c', command], { timeout: 20_000 });

describe('WAL prefetcher: the same file asked for twice in a row', () => {
  const tmp = useTempDir('tidemark-prefetch-');
  const HISTORY = '1\t0/5000110\tno recovery target specified\n';

  it('answers both requests, the second too when the first request’s clean-up comes late (history file present, then absent)', async () => {
    const { config } = writeConfig(tmp.path, 'tidemark.yaml', {
      repository: `file://${join(tmp.path, 'repo')}`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: 'postgres://postgres@127.0.0.1:1/app' } },
    });
    const repository = await Repository.open(config);
    const local = join(tmp.path, '00000002.history');
    writeFileSync(local, HISTORY);
    await pushWalFile(repository, 'app', local, config.compression);

    const prefetcher = new WalPrefetcher(new WalArchive(repository, 'app'), { spoolDir: join(tmp.path, 'spool') });
    await prefetcher.start();
    try {
      const ask = (file: string) => sh(prefetcher.restoreCommand.replace(/%f/g, file).replace(/%p/g, join(tmp.path, 'RECOVERYHISTORY'))).then(
        () => 0,
        (e: { code?: number; killed?: boolean }) => (e.killed ? 'no answer within 20 s' : e.code),
      );
      for (let i = 0; i < 2; i++) {
        expect(await ask('00000002.history')).toBe(0);
        expect(readFileSync(join(tmp.path, 'RECOVERYHISTORY'), 'utf8')).toBe(HISTORY);
      }
      // Past the newest timeline: "not there" (exit 1), both times.
      expect([await ask('00000003.history'), await ask('00000003.history')]).toEqual([1, 1]);
      expect(lateRemovals.length).toBeGreaterThanOrEqual(2);
    } finally {
      await prefetcher.stop();
    }
  });
});
