import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { Client } from 'pg';
import { mysqlBin } from '../../lib/core/engines/mysql/tools';
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
