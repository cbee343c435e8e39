import { existsSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { runBackup } from '../../lib/core/commands/backup';
import type { BackupType } from '../../lib/core/engines/backup-types';
import { silentProgress as progress } from '../../lib/core/progress';
import { useTempDir, writeConfig } from '../harness/tidemark';

/**
 * DESIGN.md §6: nothing is written to the repository before the key is known to be right and the
 * source answered. A source that takes its time to refuse (a slow network, a server under load)
 * must not let the backup claim its place meanwhile: the key check (scrypt) is done long before
 * this one hangs up, and a backup that began then would leave the new repository behind.
 */
const HANG_UP_MS = 1_500;

describe('a source that hangs up after a while: the repository is never created', () => {
  const tmp = useTempDir('tidemark-slow-source-');
  let server: Server;
  let port = 0;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    // Accepts, says nothing, and closes the connection: neither PostgreSQL nor MariaDB ever answers.
    server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      setTimeout(() => socket.destroy(), HANG_UP_MS);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it.each<[string, 'postgres' | 'mysql', BackupType]>([
    ['PostgreSQL logical', 'postgres', 'logical'],
    ['PostgreSQL physical', 'postgres', 'full'],
    ['MySQL logical', 'mysql', 'logical'],
  ])('%s', async (_name, engine, type) => {
    const repo = join(tmp.path, `${engine}-${type}-repo`);
    const url = engine === 'postgres' ? `postgres://backup@127.0.0.1:${port}/app` : `mysql://backup@127.0.0.1:${port}/app`;
    const { config } = writeConfig(tmp.path, `${engine}-${type}.yaml`, {
      repository: `file://${repo}`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine, url } },
    });
    const started = Date.now();
    await expect(runBackup(config, 'app', { type, progress })).rejects.toThrow(new RegExp(`^source 'app': cannot connect to 127\\.0\\.0\\.1:${port} as backup: `));
    expect(Date.now() - started).toBeGreaterThanOrEqual(HANG_UP_MS - 100); // it waited for the source, as meant
    expect(existsSync(repo)).toBe(false);
  });
});
