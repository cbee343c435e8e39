import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mysqlBin } from '../../lib/core/engines/mysql/tools';
import { ToolFailed } from '../../lib/core/errors';
import { useTempDir } from '../harness/tidemark';

describe('mysqlBin', () => {
  const tmp = useTempDir();
  let savedPath: string | undefined;
  beforeEach(() => (savedPath = process.env.PATH));
  afterEach(() => (process.env.PATH = savedPath));

  function fakeTools(dir: string, names: string[]): string {
    mkdirSync(dir, { recursive: true });
    for (const name of names) {
      writeFileSync(join(dir, name), '#!/bin/sh\nexit 0\n');
      chmodSync(join(dir, name), 0o755);
    }
    return dir;
  }

  it('finds the mysql* names where only MySQL is installed', () => {
    const bin = fakeTools(join(tmp.path, 'mysql-only'), ['mysqldump', 'mysql', 'mysqlbinlog', 'mysqladmin']);
    process.env.PATH = bin;
    expect(mysqlBin('dump', [])).toBe(join(bin, 'mysqldump'));
    expect(mysqlBin('client', [])).toBe(join(bin, 'mysql'));
    expect(mysqlBin('binlog', [])).toBe(join(bin, 'mysqlbinlog'));
    expect(mysqlBin('admin', [])).toBe(join(bin, 'mysqladmin'));
  });

  it('prefers the MariaDB name when both exist, and the sbin directories come after PATH', () => {
    const bin = fakeTools(join(tmp.path, 'both'), ['mariadb-dump', 'mysqldump']);
    const sbin = fakeTools(join(tmp.path, 'sbin'), ['mysqld']);
    process.env.PATH = bin;
    expect(mysqlBin('dump', [sbin])).toBe(join(bin, 'mariadb-dump'));
    expect(mysqlBin('server', [sbin])).toBe(join(sbin, 'mysqld'));
  });

  it('fails with what to install when no name is found', () => {
    process.env.PATH = fakeTools(join(tmp.path, 'empty'), []);
    expect(() => mysqlBin('dump', [])).toThrow(ToolFailed);
    expect(() => mysqlBin('dump', [])).toThrow(/mariadb-dump or mysqldump not found/);
  });
});
