import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mysqlBin } from '../../lib/core/engines/mysql/tools';
import { assertToolMatches } from '../../lib/core/engines/mysql/binlog/streamer';
import { ToolFailed, UsageError } from '../../lib/core/errors';
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

describe('the binlog reader matches the server', () => {
  const tmp = useTempDir();
  let savedPath: string | undefined;
  beforeEach(() => (savedPath = process.env.PATH));
  afterEach(() => (process.env.PATH = savedPath));

  function fakeReader(dir: string, name: string, version: string): string {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, name), `#!/bin/sh\necho '${version}'\n`);
    chmodSync(join(dir, name), 0o755);
    return dir;
  }

  it("refuses MySQL's mysqlbinlog for a MariaDB server and the other way round; accepts what it cannot tell apart", async () => {
    process.env.PATH = `${fakeReader(join(tmp.path, 'mysql8'), 'mysqlbinlog', 'mysqlbinlog  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)')}`;
    await expect(assertToolMatches('10.11.19-MariaDB-log', "source 'app'")).rejects.toThrow(
      /^source 'app': .*mysqlbinlog reads MySQL binlogs, but the server is MariaDB 10\.11\.19-MariaDB-log: install that vendor's client tools \(mariadb-client\)$/,
    );
    await expect(assertToolMatches('8.0.36', "source 'app'")).resolves.toBeUndefined();
    process.env.PATH = `${fakeReader(join(tmp.path, 'maria'), 'mariadb-binlog', 'mariadb-binlog Ver 3.5 for debian-linux-gnu at x86_64')}`;
    await expect(assertToolMatches('8.0.36', "source 'app'")).rejects.toThrow(UsageError);
    await expect(assertToolMatches('10.11.19-MariaDB-log', "source 'app'")).resolves.toBeUndefined();
    process.env.PATH = `${fakeReader(join(tmp.path, 'old'), 'mysqlbinlog', 'mysqlbinlog Ver 3.4 for Linux at x86_64')}`;
    await expect(assertToolMatches('10.11.19-MariaDB-log', "source 'app'")).resolves.toBeUndefined();
  });
});
