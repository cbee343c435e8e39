import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { loadDumpInParallel } from '../../lib/core/engines/mysql/parallel-load';
import { ToolFailed } from '../../lib/core/errors';
import { useTempDir } from '../harness/tidemark';

/**
 * A stand-in for the mariadb client: "executes" its input line by line into a shared log (one
 * append per line, tagged with its pid), slowly for INSERTs so connections overlap, answers our
 * `SELECT n;` with n, and exits 1 at a line FAIL.
 */
const FAKE_CLIENT = `
const fs = require('fs');
const log = process.argv[1];
const lines = require('readline').createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line === 'FAIL') process.exit(1);
  if (line.startsWith('(')) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 15);
  fs.appendFileSync(log, process.pid + ' ' + line + '\\n');
  const n = /^SELECT (\\d+);$/.exec(line);
  if (n) process.stdout.write(n[1] + '\\n');
});
`;

const header = '/*!40101 SET NAMES utf8mb4 */;\n/*!40014 SET FOREIGN_KEY_CHECKS=0 */;\n';
const table = (name: string, statements: number) =>
  [
    '--',
    `-- Table structure for table \`${name}\``,
    '--',
    '',
    `DROP TABLE IF EXISTS \`${name}\`;`,
    `CREATE TABLE \`${name}\` (id int);`,
    '',
    '--',
    `-- Dumping data for table \`${name}\``,
    '--',
    '',
    `LOCK TABLES \`${name}\` WRITE;`,
    ...Array.from({ length: statements }, (_, i) => `INSERT INTO \`${name}\` VALUES\n(${i}1),\n(${i}2);`),
    `UNLOCK TABLES;`,
    `CREATE TRIGGER ${name}_bi BEFORE INSERT ON \`${name}\` FOR EACH ROW SET NEW.id = 0;`,
    '',
  ].join('\n');
const tail = "--\n-- Dumping routines for database 'app'\n--\nCREATE PROCEDURE p() SELECT 1;\n-- Dump completed\n";

describe('loading a dump through several connections (scheduling, with a stand-in client)', () => {
  const tmp = useTempDir();
  const client = (log: string) => ({ command: process.execPath, args: ['-e', FAKE_CLIENT, log] });
  const entries = (log: string) =>
    (existsSync(log) ? readFileSync(log, 'utf8') : '')
      .trimEnd()
      .split('\n')
      .map((l) => ({ pid: l.slice(0, l.indexOf(' ')), line: l.slice(l.indexOf(' ') + 1) }));

  it('replays the header on each connection, spreads the rows, and creates a trigger only after every row of its table ran', async () => {
    const log = join(tmp.path, 'ok.log');
    const dump = header + table('a', 12) + table('b', 1) + tail;
    await loadDumpInParallel(Readable.from([Buffer.from(dump)]), { connections: 3, client: client(log) });
    const ran = entries(log);
    const pids = [...new Set(ran.map((e) => e.pid))];
    expect(pids).toHaveLength(3);
    for (const pid of pids) expect(ran.find((e) => e.pid === pid)?.line).toBe('/*!40101 SET NAMES utf8mb4 */;');
    const rowsOfA = ran.filter((e) => /^\(\d+[12]\)[,;]$/.test(e.line) && ran.indexOf(e) < ran.findIndex((x) => x.line.startsWith('CREATE TRIGGER a_bi')));
    expect(rowsOfA).toHaveLength(24); // all 24 rows of a ran before its trigger
    expect(new Set(ran.filter((e) => e.line === 'INSERT INTO `a` VALUES').map((e) => e.pid)).size).toBeGreaterThan(1);
    expect(ran.some((e) => /LOCK TABLES/.test(e.line))).toBe(false);
    // The routine comes after everything else.
    const last = ran.findIndex((e) => e.line.startsWith('CREATE PROCEDURE'));
    expect(ran.slice(last + 1).every((e) => /^SELECT \d+;$|^-- /.test(e.line))).toBe(true);
  });

  it('fails with the failing connection\'s error and stops the others before they see the end of the dump', async () => {
    // FAIL is also something the splitter does not know between a table's statements: the rest goes in order.
    const log = join(tmp.path, 'fail.log');
    const dump = header + table('a', 6) + 'FAIL\n' + table('b', 40) + tail;
    await expect(loadDumpInParallel(Readable.from([Buffer.from(dump)]), { connections: 2, client: client(log) })).rejects.toThrow(ToolFailed);
    expect(entries(log).some((e) => e.line.startsWith('CREATE PROCEDURE'))).toBe(false);
  });

  it('fails with the input\'s error (a damaged backup) and runs nothing after it', async () => {
    const log = join(tmp.path, 'damaged.log');
    const input = new Readable({ read() {} });
    input.push(Buffer.from(header + table('a', 3)));
    setTimeout(() => input.destroy(new Error('backup x object dump: stored bytes do not match the manifest')), 200);
    await expect(loadDumpInParallel(input, { connections: 2, client: client(log) })).rejects.toThrow(/do not match the manifest/);
    expect(entries(log).some((e) => e.line.startsWith('CREATE TRIGGER'))).toBe(false);
  });
});
