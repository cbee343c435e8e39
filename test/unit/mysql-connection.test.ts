import { existsSync, readFileSync, statSync } from 'node:fs';
import { describeEndpoint, MysqlToolSession, parseMysqlUrl } from '../../lib/core/engines/mysql/connection';
import { UsageError } from '../../lib/core/errors';

describe('MySQL endpoints and tool sessions', () => {
  it('parses mysql:// and mariadb:// URLs with defaults, and never shows the password', () => {
    const ep = parseMysqlUrl('mysql://backup:p%40ss@db.example:3307/shop', 'test');
    expect(ep).toEqual({ host: 'db.example', port: 3307, user: 'backup', database: 'shop', password: 'p@ss' });
    expect(describeEndpoint(ep)).toBe('backup@db.example:3307/shop');
    expect(parseMysqlUrl('mariadb://h', 'test')).toEqual({ host: 'h', port: 3306, user: 'root', database: '', password: undefined });
    expect(() => parseMysqlUrl('postgres://h/db', '--to')).toThrow(new UsageError('--to: expected a mysql:// URL, got postgres://'));
  });

  it('puts the password only into a private option file, removed on close', async () => {
    process.env.MYSQL_PWD = 'inherited';
    try {
      const session = await MysqlToolSession.open(parseMysqlUrl('mysql://u:it\'s%20a%20%22secret%22%20%5C@127.0.0.1:3306/db', 'test'));
      const file = session.defaultsFile;
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(readFileSync(file, 'utf8')).toContain('password="it\'s a \\"secret\\" \\\\"\n');
      expect(session.connectArgs).toEqual([`--defaults-file=${file}`]);
      expect(session.env.MYSQL_PWD).toBeUndefined();
      expect(JSON.stringify(session.env)).not.toContain('secret');
      await session.close();
      expect(existsSync(file)).toBe(false);
    } finally {
      delete process.env.MYSQL_PWD;
    }
  });

  it('refuses a password with a line break, which an option file cannot hold', async () => {
    await expect(MysqlToolSession.open({ host: 'h', port: 3306, user: 'u', database: 'd', password: 'a\nb' })).rejects.toThrow(UsageError);
  });
});
