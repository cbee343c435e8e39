/**
 * `npm run bench:mysql [-- --runs N] [--sizes 250000,1000000] [--note-bytes 500] [--level 3] [--quick] [--no-write]
 *   [--only backup|restore] [--parallel N]]`
 *
 * --only restore still takes every contender's backup each round (they are the restores' inputs) but
 * records only the restores, and skips the PITR set-up and contender; --only backup skips every
 * restore and the PITR. --parallel N is passed to tidemark's restore (its connections).
 *
 * Logical backup and restore of MariaDB: tidemark's CLI against the floor (`mariadb-dump | zstd`,
 * the same dump flags and zstd level as tidemark, in a shell), a plain `mariadb-dump > dump.sql` /
 * `mariadb < dump.sql`, and mydumper/myloader 0.10 with 2 threads; plus a point-in-time restore
 * whose binlog replay rate (events/s) is measured. One throwaway server, every contender in every
 * round, rounds interleaved (each starts one contender later), the same rounds at every size; then
 * BENCHMARKS.md's MySQL section is rewritten with the figures and the target verdicts.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { runStream } from '../lib/core/commands/wal';
import { loadConfig } from '../lib/core/config/load';
import { mysqlBinlogArchive } from '../lib/core/engines/mysql/binlog/binlog-method';
import { comparePositions } from '../lib/core/engines/mysql/binlog/names';
import { mysqlBin } from '../lib/core/engines/mysql/tools';
import { FileStore } from '../lib/core/repository/file-store';
import { Repository } from '../lib/core/repository/repository';
import { bundleCli } from '../lib/local/cli-bundle';
import { loadSampleMariadbData } from '../lib/local/sample-mariadb';
import { startThrowawayMariadb, type ThrowawayMariadb } from '../lib/local/throwaway-mariadb';
import { measureOk, type RunResult } from './measure';
import { MYSQL_CONTENDERS as C, type MysqlBenchResult, type MysqlSample, type MysqlSizeInfo } from './mysql-contenders';
import { renderMysqlMarkdown, writeMysqlSection } from './mysql-report';
import { DATA_NODE_FLAGS } from '../lib/local/node-flags';

const ROOT = resolve(__dirname, '..');
const USAGE = 'usage: npm run bench:mysql -- [--runs N] [--sizes 250000,1000000] [--note-bytes 500] [--level 3] [--quick] [--no-write] [--only backup|restore] [--parallel N]';
/** Settings for every contender alike: room for the restores' redo, big statements from the dumps. */
const SERVER_SETTINGS = { innodb_log_file_size: '512M', innodb_buffer_pool_size: '2G', max_allowed_packet: '256M' } as const;

interface Options {
  readonly runs: number;
  readonly sizes: readonly number[];
  readonly noteBytes: number;
  readonly level: number;
  readonly workDir: string;
  readonly only?: 'backup' | 'restore';
  /** Passed to tidemark restore as --parallel. */
  readonly parallel?: number;
}

const log = (line: string) => process.stdout.write(`${line}\n`);

/** Seconds of the stderr line matching `pattern` (progress notes reach the harness as they are printed). */
function lineAt(r: RunResult, pattern: RegExp): number | undefined {
  return r.stderrLines.find((l) => pattern.test(l.text))?.at;
}

function dirBytes(path: string): number {
  return readdirSync(path).reduce((n, f) => n + statSync(join(path, f)).size, 0);
}

class MysqlScenario {
  private maria!: ThrowawayMariadb;
  private cli = '';
  private readonly key = randomBytes(33).toString('base64');
  private readonly config: string;
  private readonly files: string;
  readonly samples: MysqlSample[] = [];
  readonly sizes: MysqlSizeInfo[] = [];
  private readonly pitrTarget = new Map<number, string>();

  constructor(private readonly options: Options) {
    this.config = join(options.workDir, 'tidemark.config.yaml');
    this.files = join(options.workDir, 'files');
  }

  private get env(): NodeJS.ProcessEnv {
    return { ...process.env, TIDEMARK_BENCH_KEY: this.key };
  }

  private db(rows: number): string {
    return `bench_${rows}`;
  }

  private url(database: string): string {
    return `mysql://root@127.0.0.1:${this.maria.port}/${database}`;
  }

  /** Client tools connect through the server's own option file (root over the socket's port). */
  private get defaults(): string {
    return `--defaults-file=${this.maria.defaultsFile}`;
  }

  private get dumpFlags(): string {
    // What tidemark passes (lib/core/engines/mysql/logical-backup.ts), binlog coordinates included.
    return '--single-transaction --routines --triggers --events --add-drop-trigger --hex-blob --default-character-set=utf8mb4 --skip-dump-date --master-data=2 --gtid';
  }

  async setUp(): Promise<void> {
    rmSync(this.options.workDir, { recursive: true, force: true });
    mkdirSync(this.files, { recursive: true });
    process.env.TIDEMARK_BENCH_KEY = this.key; // the PITR set-up streams and reads in this process
    log('bundling the CLI (lib/local/cli-bundle.ts, as npm run build does)');
    this.cli = bundleCli(ROOT, join(this.options.workDir, 'cli'));
    this.maria = await startThrowawayMariadb({ settings: SERVER_SETTINGS });
    log(`MariaDB on 127.0.0.1:${this.maria.port} (${SERVER_SETTINGS.innodb_log_file_size} redo, ${SERVER_SETTINGS.innodb_buffer_pool_size} buffer pool, binlog ROW)`);
    const sources = this.options.sizes.flatMap((rows) => [
      `  s${rows}: { engine: mysql, url: "${this.url(this.db(rows))}" }`,
      `  p${rows}: { engine: mysql, url: "${this.url(this.db(rows))}", stream: { flushSeconds: 1 } }`,
    ]);
    writeFileSync(
      this.config,
      [`repository: file://${join(this.options.workDir, 'repo')}`, 'encryption: { key: env:TIDEMARK_BENCH_KEY }', `compression: { level: ${this.options.level} }`, 'sources:', ...sources, ''].join('\n'),
    );
  }

  async tearDown(): Promise<void> {
    await this.maria?.stop();
    rmSync(this.options.workDir, { recursive: true, force: true });
  }

  private async sh(script: string): Promise<RunResult> {
    execFileSync('sync');
    return measureOk('bash', ['-o', 'pipefail', '-c', script]);
  }

  private async node(args: string[]): Promise<RunResult> {
    execFileSync('sync');
    return measureOk(process.execPath, [...DATA_NODE_FLAGS, this.cli, '--config', this.config, '--json', ...args], { env: this.env, pollRss: true });
  }

  /** The sample at this size, then the PITR source: a backup, binlog streamed while a load runs. */
  async load(rows: number): Promise<void> {
    const db = this.db(rows);
    const started = Date.now();
    await this.maria.createDatabase(db);
    await loadSampleMariadbData(this.url(db), { orders: rows, noteBytes: this.options.noteBytes });
    const loadSeconds = (Date.now() - started) / 1000;
    const [bytes] = (await this.maria.sql(`SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${db}'`)).split('\t');
    log(`size ${rows}: loaded in ${loadSeconds.toFixed(0)} s, ${(Number(bytes) / 2 ** 20).toFixed(0)} MiB in InnoDB`);
    if (this.options.only) {
      this.sizes.push({ rows, databaseBytes: Number(bytes), loadSeconds, pitrEvents: 0, pitrRows: 0 });
      return;
    }

    // PITR: backup p<rows>, stream, many small transactions (each a GTID, table map, rows, Xid).
    const backup = JSON.parse((await this.node(['backup', `p${rows}`, '--type', 'logical'])).stdout) as { id: string };
    const { config } = await loadConfig(this.config);
    const stop = new AbortController();
    const streaming = runStream(config, `p${rows}`, { spoolDir: join(this.options.workDir, `spool-${rows}`), signal: stop.signal, write: () => undefined });
    streaming.catch(() => undefined);
    const transactions = Math.max(2000, Math.floor(rows / 50));
    await this.maria.sql(
      `DELIMITER $$
       CREATE PROCEDURE bench_pitr_load(n INT) BEGIN DECLARE i INT DEFAULT 0; WHILE i < n DO
         INSERT INTO ledger (amount, memo) VALUES (i, 'pitr'); UPDATE orders SET status = 'paid' WHERE id = 1 + (i * 7919) % ${rows}; SET i = i + 1; END WHILE; END$$
       DELIMITER ;`,
      db,
    );
    const from = await this.binlogStart(backup.id, rows);
    await this.maria.sql(`CALL bench_pitr_load(${transactions})`, db);
    const [file, position] = (await this.maria.sql('SHOW MASTER STATUS')).split('\t');
    const end = { file, position: Number(position) };
    const store = new FileStore(join(this.options.workDir, 'repo'));
    for (const deadline = Date.now() + 600_000; ; await sleep(500)) {
      const point = await mysqlBinlogArchive.newestDurablePoint(store, `p${rows}`);
      if (point?.binlog && comparePositions(point.binlog, end) >= 0) break;
      if (Date.now() > deadline) throw new Error(`the binlog archive of p${rows} did not reach ${file}:${position}`);
    }
    stop.abort();
    await streaming.catch(() => undefined);
    const events = await this.countEvents(from, end);
    this.pitrTarget.set(rows, `${file}:${position}`);
    this.sizes.push({ rows, databaseBytes: Number(bytes), loadSeconds, pitrEvents: events, pitrRows: transactions * 2 });
    log(`size ${rows}: PITR archive holds ${events} events (${transactions * 2} transactions) after backup ${backup.id}`);
  }

  /** The binlog coordinates a backup recorded (its manifest's restore point). */
  private async binlogStart(id: string, rows: number): Promise<{ file: string; position: number }> {
    const { config } = await loadConfig(this.config);
    const catalog = await (await Repository.open(config)).catalog(`p${rows}`);
    const binlog = catalog.backups.find((b) => b.id === id)?.restorePoint.binlog;
    if (!binlog) throw new Error(`backup ${id} recorded no binlog coordinates`);
    return binlog;
  }

  private async countEvents(from: { file: string; position: number }, to: { file: string; position: number }): Promise<number> {
    const files = (await this.maria.sql('SHOW BINARY LOGS')).split('\n').map((l) => l.split('\t')[0]);
    let n = 0;
    for (const file of files.filter((f) => f >= from.file && f <= to.file)) {
      const rows = (await this.maria.sql(`SHOW BINLOG EVENTS IN '${file}'${file === from.file ? ` FROM ${from.position}` : ''}`)).split('\n').filter(Boolean);
      n += rows.filter((r) => file !== to.file || Number(r.split('\t')[1]) < to.position).length;
    }
    return n;
  }

  async round(round: number, rows: number): Promise<void> {
    const db = this.db(rows);
    const dir = join(this.files, `r${round}-${rows}`);
    mkdirSync(dir, { recursive: true });
    const floorFile = join(dir, 'floor.sql.zst');
    const plainFile = join(dir, 'dump.sql');
    const mydumperDir = join(dir, 'mydumper');
    const conn = `-h 127.0.0.1 -P ${this.maria.port} -u root`;
    const dumpTool = mysqlBin('dump');
    const client = mysqlBin('client');
    const sample = (contender: string, operation: 'backup' | 'restore', r: RunResult, extra: Partial<MysqlSample> = {}) =>
      this.options.only !== undefined && this.options.only !== operation ? undefined : void this.samples.push({ contender, operation, scale: rows, round, seconds: r.seconds, cpu: {}, ...(r.peakRssKb ? { peakRssKb: r.peakRssKb } : {}), ...extra });

    let backupId = '';
    const backups: [string, () => Promise<void>][] = [
      [C.cli, async () => {
        const r = await this.node(['backup', `s${rows}`, '--type', 'logical']);
        const out = JSON.parse(r.stdout) as { id: string; storedBytes: number; bytes: number };
        backupId = out.id;
        sample(C.cli, 'backup', r, { outputBytes: out.storedBytes, plainBytes: out.bytes });
      }],
      [C.floor(this.options.level), async () => {
        const r = await this.sh(`${dumpTool} ${this.defaults} ${this.dumpFlags} ${db} | zstd -q -c -T0 -${this.options.level} > ${floorFile}`);
        sample(C.floor(this.options.level), 'backup', r, { outputBytes: statSync(floorFile).size });
      }],
      [C.plainDump, async () => {
        const r = await this.sh(`${dumpTool} ${this.defaults} ${this.dumpFlags} ${db} > ${plainFile}`);
        sample(C.plainDump, 'backup', r, { outputBytes: statSync(plainFile).size });
      }],
      [C.mydumper, async () => {
        const r = await this.sh(`mydumper ${conn} --threads 2 --trx-consistency-only --triggers --events --routines --database ${db} --outputdir ${mydumperDir}`);
        sample(C.mydumper, 'backup', r, { outputBytes: dirBytes(mydumperDir) });
      }],
    ];
    for (const [, run] of rotate(backups, round)) await run();
    if (this.options.only === 'backup') {
      rmSync(dir, { recursive: true, force: true });
      return;
    }

    const expected = await this.maria.sql('SELECT COUNT(*) FROM orders', db);
    const restores: [string, () => Promise<void>][] = [
      [C.cli, async () => {
        const parallel = this.options.parallel === undefined ? [] : ['--parallel', String(this.options.parallel)];
        sample(C.cli, 'restore', await this.node(['restore', `s${rows}`, '--to', this.url('restored'), '--backup', backupId, ...parallel]));
      }],
      [C.floorRestore, async () => sample(C.floorRestore, 'restore', await this.sh(`${client} ${this.defaults} -e 'CREATE DATABASE restored' && zstd -q -d -c ${floorFile} | ${client} ${this.defaults} --binary-mode restored`))],
      [C.plainRestore, async () => sample(C.plainRestore, 'restore', await this.sh(`${client} ${this.defaults} -e 'CREATE DATABASE restored' && ${client} ${this.defaults} --binary-mode restored < ${plainFile}`))],
      [C.myloader, async () => sample(C.myloader, 'restore', await this.sh(`myloader ${conn} --threads 2 --directory ${mydumperDir} --database restored`))],
      [C.pitr, async () => {
        const r = await this.node(['restore', `p${rows}`, '--to', this.url('restored'), '--position', this.pitrTarget.get(rows)!]);
        const replayStarted = lineAt(r, /replaying the binlog/);
        const replaySeconds = replayStarted === undefined ? undefined : r.seconds - replayStarted;
        sample(C.pitr, 'restore', r, replaySeconds === undefined ? {} : { replaySeconds, events: this.sizes.find((s) => s.rows === rows)!.pitrEvents });
      }],
    ];
    const chosen = this.options.only === 'restore' ? restores.filter(([name]) => name !== C.pitr) : restores;
    for (const [name, run] of rotate(chosen, round)) {
      await run();
      const got = await this.maria.sql('SELECT COUNT(*) FROM orders', 'restored');
      if (got !== expected) throw new Error(`${name} restored ${got} orders, expected ${expected}`);
      await this.maria.sql('DROP DATABASE restored');
    }
    rmSync(dir, { recursive: true, force: true });
    // Every restore was binlogged (alike for all): the archive holds what PITR needs, the server need not.
    await this.maria.sql('FLUSH BINARY LOGS');
    const [current] = (await this.maria.sql('SHOW MASTER STATUS')).split('\t');
    await this.maria.sql(`PURGE BINARY LOGS TO '${current}'`);
  }

  facts(): MysqlBenchResult['facts'] {
    const version = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' }).trim().split('\n')[0];
    return {
      date: new Date().toISOString(),
      cpuModel: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      ramBytes: totalmem(),
      kernel: release(),
      server: version(mysqlBin('client'), ['--version']),
      dump: version(mysqlBin('dump'), ['--version']),
      mydumper: version('mydumper', ['--version']),
      zstd: version('zstd', ['--version']),
      node: process.version,
      commit: version('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']),
      loadBefore: loadavg().map((n) => n.toFixed(2)).join(' '),
    };
  }
}

/** Round r starts r contenders later: "who runs first" hits everyone alike. */
function rotate<T>(xs: readonly T[], round: number): T[] {
  const k = round % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

function positiveInts(flag: string, text: string): number[] {
  const xs = text.split(',').map(Number);
  if (xs.some((x) => !Number.isInteger(x) || x < 1)) {
    process.stderr.write(`${flag} ${text}: expected positive integers, comma-separated\n${USAGE}\n`);
    process.exit(2);
  }
  return xs;
}

function onlyOf(text: string): 'backup' | 'restore' {
  if (text === 'backup' || text === 'restore') return text;
  process.stderr.write(`--only ${text}: expected backup or restore\n${USAGE}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string' },
      sizes: { type: 'string' },
      'note-bytes': { type: 'string' },
      level: { type: 'string' },
      quick: { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
      only: { type: 'string' },
      parallel: { type: 'string' },
    },
    strict: true,
  });
  const quick = values.quick;
  const options: Options = {
    runs: positiveInts('--runs', values.runs ?? '3')[0],
    sizes: positiveInts('--sizes', values.sizes ?? (quick ? '5000,20000' : '250000,1000000')).sort((a, b) => a - b),
    noteBytes: positiveInts('--note-bytes', values['note-bytes'] ?? (quick ? '100' : '500'))[0],
    level: positiveInts('--level', values.level ?? '3')[0],
    workDir: join(ROOT, 'bench', '.work', 'mysql-logical'),
    ...(values.only !== undefined ? { only: onlyOf(values.only) } : {}),
    ...(values.parallel !== undefined ? { parallel: positiveInts('--parallel', values.parallel)[0] } : {}),
  };
  const args = process.argv.slice(2);
  const command = `npm run bench:mysql${args.length ? ` -- ${args.join(' ')}` : ''}`;
  const scenario = new MysqlScenario(options);
  const started = Date.now();
  let result: MysqlBenchResult;
  try {
    await scenario.setUp();
    const facts = scenario.facts();
    for (const rows of options.sizes) await scenario.load(rows);
    for (let round = 0; round < options.runs; round++) {
      for (const rows of options.sizes) {
        log(`round ${round + 1}/${options.runs}, size ${rows}`);
        await scenario.round(round, rows);
      }
    }
    result = { facts: { ...facts, loadAfter: loadavg().map((n) => n.toFixed(2)).join(' ') }, runs: options.runs, level: options.level, noteBytes: options.noteBytes, sizes: scenario.sizes, samples: scenario.samples, seconds: (Date.now() - started) / 1000 };
  } finally {
    await scenario.tearDown();
  }
  const markdown = renderMysqlMarkdown(result, command);
  if (!values['no-write']) {
    writeMysqlSection(join(ROOT, 'BENCHMARKS.md'), markdown);
    log('\nBENCHMARKS.md updated.');
  } else {
    log(`\n${markdown}\n\n(not written to BENCHMARKS.md: --no-write)`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:mysql failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
