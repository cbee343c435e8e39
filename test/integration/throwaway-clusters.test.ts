import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { mysqlBin } from '../../lib/core/engines/mysql/tools';
import { stopPostmaster } from '../../lib/core/engines/postgres/postmaster';
import { startThrowawayMariadb, type ThrowawayMariadb } from '../../lib/local/throwaway-mariadb';
import { startThrowawayPostgres, type ThrowawayPostgres } from '../../lib/local/throwaway-postgres';
import { useMariadb } from '../harness/mariadb';
import { usePostgres } from '../harness/postgres';

const asRoot = process.getuid?.() === 0;
const uidOf = (user: string) => Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());

/** Connects the way an outside client would: only what url() says, over TCP. */
function mariadbByUrl(url: string, statement: string): string {
  const { hostname, port, username, pathname } = new URL(url);
  const args = ['--no-defaults', '--protocol=TCP', '-h', hostname, '-P', port, '-u', username, '-N', '-B'];
  return execFileSync(mysqlBin('client'), [...args, '-D', pathname.slice(1), '-e', statement], { encoding: 'utf8' }).trim();
}

describe('throwaway PostgreSQL', () => {
  const pg = usePostgres({ settings: { wal_level: 'logical' }, databases: ['shop'] });

  test('applies custom settings', async () => {
    expect(await pg.sql('SHOW wal_level')).toBe('logical');
    expect(await pg.sql('SHOW port')).toBe(String(pg.port));
  });

  test('accepts a connection at url()', async () => {
    const client = new Client({ connectionString: pg.url('shop') });
    await client.connect();
    try {
      const { rows } = await client.query<{ db: string }>('SELECT current_database() AS db');
      expect(rows).toEqual([{ db: 'shop' }]);
    } finally {
      await client.end();
    }
  });

  test('leaves dir to the server user, for archives the server writes', () => {
    expect(statSync(pg.dir).uid).toBe(asRoot ? uidOf('postgres') : process.getuid?.());
  });

  test('reports SQL errors with psql stderr', async () => {
    await expect(pg.sql('SELECT no_such_column')).rejects.toThrow(/no_such_column/);
  });

  test('two clusters run at once on different ports, and stop removes their directories', async () => {
    const clusters: ThrowawayPostgres[] = await Promise.all([startThrowawayPostgres(), startThrowawayPostgres()]);
    try {
      expect(clusters[0].port).not.toBe(clusters[1].port);
      expect(await Promise.all(clusters.map((c) => c.sql('SELECT 40 + 2')))).toEqual(['42', '42']);
    } finally {
      await Promise.all(clusters.map((c) => c.stop()));
    }
    for (const c of clusters) expect(existsSync(c.dir)).toBe(false);
    await clusters[0].stop(); // idempotent
  });

  test('fails to start with the server log in the error', async () => {
    await expect(startThrowawayPostgres({ settings: { shared_buffers: 'plenty' } })).rejects.toThrow(/shared_buffers/);
  });
});

describe('postmaster start and stop (postmaster.ts)', () => {
  test('start resolves once the server takes connections; stop returns once it is gone', async () => {
    const pg = await startThrowawayPostgres();
    try {
      // The start resolved: a connection now needs no retry.
      expect(await pg.sql('SELECT 1')).toBe('1');
      const pid = Number(readFileSync(join(pg.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      expect(await stopPostmaster(pg.dataDir, 'fast', { timeoutSeconds: 30 })).toBe(true);
      expect(existsSync(join(pg.dataDir, 'postmaster.pid'))).toBe(false);
      expect(() => process.kill(pid, 0)).toThrow();
      expect(await stopPostmaster(pg.dataDir, 'fast', { timeoutSeconds: 30 })).toBe(false); // nothing running
    } finally {
      await pg.stop();
    }
  });

  test('a stale pid file naming another process: that process is not signalled', async () => {
    const pg = await startThrowawayPostgres();
    const stranger = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      await stopPostmaster(pg.dataDir, 'immediate', { timeoutSeconds: 30 });
      const pidFile = join(pg.dataDir, 'postmaster.pid');
      writeFileSync(pidFile, `${stranger.pid}\n${pg.dataDir}\n`);
      expect(await stopPostmaster(pg.dataDir, 'immediate', { timeoutSeconds: 5 })).toBe(false);
      expect(stranger.exitCode).toBeNull();
      expect(() => process.kill(stranger.pid!, 0)).not.toThrow();
      rmSync(pidFile);
    } finally {
      stranger.kill('SIGKILL');
      await pg.stop();
    }
  });
});

describe('throwaway MariaDB', () => {
  const db = useMariadb({ databases: ['shop'] });

  test('has the binary log on', async () => {
    expect(await db.sql("SHOW VARIABLES LIKE 'log_bin'")).toBe('log_bin\tON');
    expect(await db.sql("SHOW VARIABLES LIKE 'binlog_format'")).toBe('binlog_format\tROW');
  });

  test('accepts a connection at url()', () => {
    expect(mariadbByUrl(db.url('shop'), 'SELECT DATABASE()')).toBe('shop');
  });

  test('reports SQL errors with the client stderr', async () => {
    await expect(db.sql('SELECT no_such_column')).rejects.toThrow(/no_such_column/);
  });

  test('two servers run at once on different ports, and stop removes their directories', async () => {
    const servers: ThrowawayMariadb[] = await Promise.all([startThrowawayMariadb({ binlog: false }), startThrowawayMariadb({ binlog: false })]);
    try {
      expect(servers[0].port).not.toBe(servers[1].port);
      expect(await Promise.all(servers.map((s) => s.sql("SHOW VARIABLES LIKE 'log_bin'")))).toEqual(['log_bin\tOFF', 'log_bin\tOFF']);
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
    for (const s of servers) expect(existsSync(s.dir)).toBe(false);
    await servers[0].stop(); // idempotent
  });
});
