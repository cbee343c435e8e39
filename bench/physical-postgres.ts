/**
 * The physical-backup scenario: tidemark's block-level full and incremental backups, their restore
 * and point-in-time recovery, against pg_basebackup (the raw and the compressed floor) and
 * pgBackRest 2.45, on one throwaway cluster with data checksums per pgbench scale. Every contender
 * once per round, rounds interleaved (each round starts one contender later), the same rounds at
 * every scale; then the streamer's recovery point under load and PITR over ≥ 1 GB of WAL.
 *
 * pgBackRest runs as `postgres` (it archives through archive_command on the same cluster), with zst
 * level 3, process-max 2, a local posix repository and archive-check off, as the issue asks.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseConfig } from '../lib/core/config/load';
import { WalArchive } from '../lib/core/engines/postgres/wal/wal-archive';
import { WalPrefetcher } from '../lib/core/engines/postgres/wal/wal-prefetch';
import { pgBin } from '../lib/core/engines/postgres/tools';
import { parseLsn } from '../lib/core/engines/postgres/physical/page-checksum';
import { Repository } from '../lib/core/repository/repository';
import { bundleCli } from '../lib/local/cli-bundle';
import { startThrowawayPostgres, type ThrowawayPostgres } from '../lib/local/throwaway-postgres';
import { bundleWorkerLikeDockerfile } from '../lib/local/worker-bundle';
import { freePort } from '../lib/core/free-port';
import { CpuSampler, measureOk, shq, type CpuBreakdown, type RunResult } from './measure';
import { quantileOf } from './targets';
import { DATA_NODE_FLAGS } from '../lib/local/node-flags';

const ROOT = resolve(__dirname, '..');

export const TIDEMARK = 'tidemark';
export const RAW_FLOOR = 'pg_basebackup -Ft -Xnone > /dev/null';
export const ZSTD_FLOOR = 'pg_basebackup -Ft -Xnone | zstd -T0 -3';
export const PGBACKREST = 'pgBackRest 2.45';
/** The Fargate worker's entry, bundled with the Dockerfile's esbuild line, on Node 22 (the image's runtime). */
export const WORKER = 'tidemark worker (Node 22)';
/** The same CLI bundle run by Node 22: its full backups compress packs in process, its restores stream them through zlib's zstd (restore.ts: streamPack). */
export const TIDEMARK_NODE22 = 'tidemark on Node 22';

export type PhysicalOperation = 'full' | 'incr' | 'restore' | 'pitr';

export interface PhysicalSample {
  readonly contender: string;
  readonly operation: PhysicalOperation;
  readonly scale: number;
  readonly round: number;
  readonly seconds: number;
  /** Bytes the backup added to its repository (or the floor's file). */
  readonly storedBytes?: number;
  /** tidemark only: VmHWM of the node process (CLI or worker), KiB. */
  readonly peakRssKb?: number;
  /** pitr only: WAL bytes between the base backup's end and the target. */
  readonly walBytes?: number;
  /** CPU seconds by process name (node, zstd, pg_basebackup, pgbackrest, server = the source cluster's processes). */
  readonly cpu?: CpuBreakdown;
  /** pitr only: seconds from the server's start (after the files were restored) to promotion. */
  readonly replaySeconds?: number;
}

export interface RecoveryPoint {
  readonly scale: number;
  readonly flushSeconds: number;
  /** Commit → durable in the repository, seconds, one per probe. */
  readonly lags: readonly number[];
  /** Probes still not durable when the load ended (their lag is at least the time left). */
  readonly lost: number;
}

/** WAL fetched the way restore_command asks for it: one segment at a time, in order. */
export interface WalFetch {
  readonly scale: number;
  readonly contender: string;
  readonly segments: number;
  readonly bytes: number;
  readonly seconds: number;
}

export interface PhysicalFacts {
  readonly date: string;
  readonly cpuModel: string;
  readonly cores: number;
  readonly ramBytes: number;
  readonly kernel: string;
  readonly postgres: string;
  readonly pgbackrest: string;
  readonly zstd: string;
  readonly node: string;
  readonly commit: string;
  readonly loadBefore: string;
  readonly loadAfter?: string;
}

export interface PhysicalResult {
  readonly facts: PhysicalFacts;
  readonly runs: number;
  readonly scales: readonly { scale: number; databaseBytes: number }[];
  readonly samples: readonly PhysicalSample[];
  readonly recoveryPoints: readonly RecoveryPoint[];
  readonly walFetches: readonly WalFetch[];
}

export interface PhysicalOptions {
  readonly runs: number;
  readonly scales: readonly number[];
  /** WAL to generate for the PITR comparison, MiB. */
  readonly pitrWalMiB: number;
  /** stream.flushSeconds of the streamer under test. */
  readonly flushSeconds: number;
  readonly workDir: string;
  readonly log: (line: string) => void;
}

/** "node 1.8, zstd 0.6, …": the groups with at least 0.05 s, largest first. */
export function cpuText(cpu: CpuBreakdown): string {
  return Object.entries(cpu)
    .filter(([, v]) => v >= 0.05)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v.toFixed(1)}`)
    .join(', ');
}

/** PG* variables of the harness's environment must not redirect the tools. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PG'))), ...extra };
}

function sh(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (e) {
    return `unknown (${(e as Error).message.split('\n')[0]})`;
  }
}

function treeBytes(path: string): number {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((n, name) => n + treeBytes(join(path, name)), 0);
}

const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const isRoot = () => process.getuid?.() === 0;
/** As root, the server's tools (pgBackRest, pg_ctl) run as the cluster's owner. */
const asPostgres = (command: string, args: string[]): [string, string[]] => (isRoot() ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args]);

/** One scale: a cluster with data checksums, pgBackRest's stanza on it, tidemark's config. */
class PhysicalScale {
  private pg!: ThrowawayPostgres;
  private readonly key = randomBytes(33).toString('base64');
  private cli = '';
  private pgbrConf = '';
  private pgbrRepo = '';
  private config = '';
  private tidemarkRepo = '';
  private restores = 0;
  /** The newest tidemark backup id and pgBackRest label: what the round's restore restores. */
  private tidemarkLatest = '';
  private pgbrLatest = '';
  readonly samples: PhysicalSample[] = [];
  databaseBytes = 0;

  constructor(
    private readonly scale: number,
    private readonly options: PhysicalOptions,
  ) {}

  private log(line: string): void {
    this.options.log(line);
  }

  private get dir(): string {
    return join(this.options.workDir, `s${this.scale}`);
  }

  private conn(): string[] {
    return ['-h', '127.0.0.1', '-p', String(this.pg.port), '-U', 'postgres'];
  }

  /** The Node 22 binary, when there is one (restores are also timed on it). */
  private node22: string | undefined;

  private tidemark(args: string[], pollRss = false, cpu?: CpuSampler, node = process.execPath): Promise<RunResult> {
    return measureOk(node, [...DATA_NODE_FLAGS, this.cli, '--config', this.config, ...args], { env: cleanEnv({ TIDEMARK_BENCH_KEY: this.key }), pollRss, cpu });
  }

  private pgbackrest(args: string[], cpu?: CpuSampler): Promise<RunResult> {
    const [command, argv] = asPostgres('pgbackrest', [`--config=${this.pgbrConf}`, '--stanza=bench', ...args]);
    return measureOk(command, argv, { env: cleanEnv(), cpu });
  }

  /** CPU seconds of the measured command's processes and of the source server's, by name. */
  private sampler(): CpuSampler {
    const serverPid = Number(readFileSync(join(this.pg.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return new CpuSampler(serverPid, (comm, _cmdline, underServer) => (underServer ? 'server' : comm.startsWith('node') ? 'node' : comm));
  }

  async setUp(cli: string): Promise<void> {
    this.cli = cli;
    mkdirSync(this.dir, { recursive: true });
    this.pg = await startThrowawayPostgres({
      dataChecksums: true,
      // autovacuum off: a vacuum between the full and the incr would change what the incr stores.
      settings: { max_wal_size: '4GB', checkpoint_timeout: '30min', autovacuum: 'off', wal_level: 'replica' },
    });
    // pgBackRest archives as the server's user, so its files live in the cluster's (postgres-owned) dir.
    this.pgbrRepo = join(this.pg.dir, 'pgbackrest-repo');
    this.pgbrConf = join(this.pg.dir, 'pgbackrest.conf');
    const lines = [
      '[global]',
      `repo1-path=${this.pgbrRepo}`,
      'repo1-type=posix',
      'compress-type=zst',
      'compress-level=3',
      'process-max=2',
      'archive-check=n',
      'start-fast=y',
      'log-level-console=warn',
      'log-level-file=off',
      `lock-path=${join(this.pg.dir, 'pgbackrest-lock')}`,
      `spool-path=${join(this.pg.dir, 'pgbackrest-spool')}`,
      '[bench]',
      `pg1-path=${this.pg.dataDir}`,
      `pg1-port=${this.pg.port}`,
      `pg1-socket-path=${this.pg.dir}`,
      'pg1-user=postgres',
      '',
    ];
    writeFileSync(this.pgbrConf, lines.join('\n'));
    if (isRoot()) {
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
      const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
      chownSync(this.pgbrConf, uid, gid);
    }
    // archive_mode stays off until the PITR phase (startArchiving): with it on, pg_basebackup -Xnone
    // waits at its end until the server archived the last segment, polling once a second, which
    // would put 0–1 s of noise and a pgBackRest process start into every floor's time.
    await this.pgbackrest(['stanza-create']);

    this.tidemarkRepo = join(this.dir, 'tidemark-repo');
    this.config = join(this.dir, 'tidemark.config.yaml');
    const text = [
      `repository: file://${this.tidemarkRepo}`,
      'encryption: { key: env:TIDEMARK_BENCH_KEY }',
      'sources:',
      `  app: { engine: postgres, url: "postgres://postgres@127.0.0.1:${this.pg.port}/app", stream: { flushSeconds: ${this.options.flushSeconds} } }`,
      '',
    ].join('\n');
    writeFileSync(this.config, text);
    parseConfig(text, this.config); // fails here, not in the first timed run

    await this.pg.createDatabase('app');
    this.log(`scale ${this.scale}: pgbench -i on 127.0.0.1:${this.pg.port} (data checksums on) …`);
    await measureOk(pgBin('pgbench'), ['-i', '-q', '-s', String(this.scale), ...this.conn(), 'app'], { env: cleanEnv() });
    this.databaseBytes = Number(await this.pg.sql(`select pg_database_size('app')`));
    this.log(`  database ${(this.databaseBytes / 2 ** 20).toFixed(0)} MiB`);
  }

  /**
   * pgBackRest's archive-push as archive_command, from here on (a restart). Only the source
   * archives: a restored copy runs the same command in its own directory, and its new timeline must
   * not reach the repository the next PITR round reads.
   */
  private async startArchiving(): Promise<void> {
    const push = `pgbackrest --config=${this.pgbrConf} --stanza=bench archive-push %p`;
    await this.pg.restart({ archive_mode: 'on', archive_command: `test "$(/bin/pwd)" != '${this.pg.dataDir}' || ${push}` });
  }

  async tearDown(): Promise<void> {
    await this.pg?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Every timed operation starts from the same state: no dirty buffers, no pending writeback. */
  private async settle(): Promise<void> {
    await this.pg.sql('CHECKPOINT');
    execFileSync('sync');
  }

  private record(sample: PhysicalSample): void {
    this.samples.push(sample);
    const extra = [
      sample.storedBytes !== undefined ? `stored ${(sample.storedBytes / 2 ** 20).toFixed(1)} MiB` : '',
      sample.peakRssKb !== undefined ? `peak RSS ${(sample.peakRssKb / 1024).toFixed(0)} MiB` : '',
      sample.walBytes !== undefined ? `WAL ${(sample.walBytes / 2 ** 20).toFixed(0)} MiB` : '',
      sample.replaySeconds !== undefined ? `start + replay ${sample.replaySeconds.toFixed(2)} s` : '',
      sample.cpu ? `cpu s: ${cpuText(sample.cpu)}` : '',
    ].filter(Boolean);
    this.log(`  s${this.scale} #${sample.round} ${sample.operation.padEnd(7)} ${sample.contender.padEnd(38)} ${sample.seconds.toFixed(2).padStart(7)} s  ${extra.join(', ')}`);
  }

  /** pgBackRest's newest backup: label and the bytes it added to the repository. */
  private async pgbrNewest(): Promise<{ label: string; delta: number }> {
    const r = await this.pgbackrest(['info', '--output=json']);
    const info = JSON.parse(r.stdout) as { backup: { label: string; info: { repository: { delta: number } } }[] }[];
    const newest = info[0].backup[info[0].backup.length - 1];
    return { label: newest.label, delta: newest.info.repository.delta };
  }

  async backup(contender: string, type: 'full' | 'incr', round: number): Promise<void> {
    await this.settle();
    let sample: PhysicalSample;
    if (contender === TIDEMARK || contender === TIDEMARK_NODE22) {
      const node = contender === TIDEMARK_NODE22 ? this.node22 : process.execPath;
      const r = await this.tidemark(['--json', 'backup', 'app', '--type', type], true, this.sampler(), node);
      const out = JSON.parse(r.stdout) as { id: string; type: string; storedBytes: number };
      if (out.type !== type) throw new Error(`tidemark took a ${out.type} backup where a ${type} was asked for`);
      this.tidemarkLatest = out.id;
      sample = { contender, operation: type, scale: this.scale, round, seconds: r.seconds, storedBytes: out.storedBytes, cpu: r.cpu, ...(r.peakRssKb ? { peakRssKb: r.peakRssKb } : {}) };
    } else if (contender === PGBACKREST) {
      const r = await this.pgbackrest(['backup', `--type=${type}`], this.sampler());
      const newest = await this.pgbrNewest();
      this.pgbrLatest = newest.label;
      sample = { contender, operation: type, scale: this.scale, round, seconds: r.seconds, storedBytes: newest.delta, cpu: r.cpu };
    } else if (contender === RAW_FLOOR || contender === ZSTD_FLOOR) {
      const out = join(this.dir, 'floor.tar.zst');
      const basebackup = shq([pgBin('pg_basebackup'), ...this.conn(), '-Ft', '-Xnone', '--checkpoint=fast', '--no-password', '-D', '-']);
      const script = contender === RAW_FLOOR ? `${basebackup} > /dev/null` : `set -o pipefail; ${basebackup} | zstd -q -T0 -3 > ${shq([out])}`;
      const r = await measureOk('bash', ['-c', script], { env: cleanEnv(), cpu: this.sampler() });
      sample = { contender, operation: type, scale: this.scale, round, seconds: r.seconds, cpu: r.cpu, ...(contender === ZSTD_FLOOR ? { storedBytes: treeBytes(out) } : {}) };
      rmSync(out, { force: true });
    } else {
      throw new Error(`unknown backup contender ${contender}`);
    }
    this.record(sample);
  }

  /**
   * The worker as a scheduled task runs it: a full, the 1% update, an incr, once per scale after
   * the rounds (its backups would change the chain the rounds' incrs build on): peak RSS, mainly.
   */
  async workerBackups(worker: { entry: string; node: string }): Promise<void> {
    const run = async (type: 'full' | 'incr') => {
      await this.settle();
      const env = cleanEnv({ TIDEMARK_BENCH_KEY: this.key, TIDEMARK_CONFIG: this.config });
      const r = await measureOk(worker.node, [...DATA_NODE_FLAGS, worker.entry, 'backup', 'app', '--type', type], { env, pollRss: true });
      const done = r.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { msg: string; result?: { id: string; storedBytes: number } })
        .find((l) => l.msg === 'backup committed');
      if (!done?.result) throw new Error(`the worker did not report a committed backup:\n${r.stdout}`);
      this.tidemarkLatest = done.result.id;
      this.record({ contender: WORKER, operation: type, scale: this.scale, round: 1, seconds: r.seconds, storedBytes: done.result.storedBytes, ...(r.peakRssKb ? { peakRssKb: r.peakRssKb } : {}) });
    };
    await run('full');
    await this.updateOnePercent(this.options.runs + 1);
    await run('incr');
  }

  /** Changes one contiguous 1% of pgbench_accounts (by aid), a different range each round. */
  async updateOnePercent(round: number): Promise<void> {
    const rows = 100000 * this.scale;
    const width = rows / 100;
    const from = ((round * 37) % 99) * width + 1;
    await this.pg.sql(`update pgbench_accounts set abalance = abalance + 1 where aid between ${from} and ${from + width - 1}`, 'app');
  }

  private freshDir(): string {
    const dir = join(this.pg.dir, `restore-${++this.restores}`);
    mkdirSync(dir);
    if (isRoot()) execFileSync('chown', ['postgres:postgres', dir]);
    return dir;
  }

  /** A restored data directory must hold the cluster's relation files, or the timing means nothing. */
  private checkRestored(dir: string, what: string): void {
    const want = treeBytes(join(this.pg.dataDir, 'base'));
    const got = treeBytes(join(dir, 'base'));
    if (!existsSync(join(dir, 'PG_VERSION')) || got < 0.9 * want || got > 1.1 * want) {
      throw new Error(`${what} into ${dir} looks incomplete: base/ holds ${got} bytes, the source's ${want}`);
    }
  }

  /** Restore of the newest chain (full + incr) into an empty directory, without starting it. */
  async restore(contender: string, round: number): Promise<void> {
    const dir = this.freshDir();
    await this.settle();
    let r: RunResult;
    if (contender === TIDEMARK || contender === TIDEMARK_NODE22) {
      const node = contender === TIDEMARK_NODE22 ? this.node22 : process.execPath;
      r = await this.tidemark(['--json', 'restore', 'app', '--to', dir, '--backup', this.tidemarkLatest], true, this.sampler(), node);
    } else if (contender === PGBACKREST) {
      r = await this.pgbackrest(['restore', `--set=${this.pgbrLatest}`, `--pg1-path=${dir}`, '--type=immediate'], this.sampler());
    } else {
      throw new Error(`unknown restore contender ${contender}`);
    }
    this.checkRestored(dir, contender);
    rmSync(dir, { recursive: true, force: true });
    this.record({ contender, operation: 'restore', scale: this.scale, round, seconds: r.seconds, cpu: r.cpu, ...(r.peakRssKb ? { peakRssKb: r.peakRssKb } : {}) });
  }

  /** Rounds of full, 1% update, incr, restore of the chain. */
  async compare(): Promise<void> {
    // Node 22 takes fulls too: the worker's runtime, which compresses packs in process.
    const fulls = this.node22 ? [TIDEMARK, TIDEMARK_NODE22, RAW_FLOOR, ZSTD_FLOOR, PGBACKREST] : [TIDEMARK, RAW_FLOOR, ZSTD_FLOOR, PGBACKREST];
    const pair = [TIDEMARK, PGBACKREST];
    const restorers = this.node22 ? [TIDEMARK, TIDEMARK_NODE22, PGBACKREST] : pair;
    for (let round = 1; round <= this.options.runs; round++) {
      const rotate = <T>(xs: readonly T[]) => xs.map((_, i) => xs[(i + round - 1) % xs.length]);
      for (const c of rotate(fulls)) await this.backup(c, 'full', round);
      await this.updateOnePercent(round);
      for (const c of rotate(pair)) await this.backup(c, 'incr', round);
      for (const c of rotate(restorers)) await this.restore(c, round);
    }
  }

  /**
   * The streamer under pgbench load: a probe commits a row every 200 ms and notes its LSN; the
   * harness polls the repository's newest durable WAL point; a probe's recovery point is the time
   * from its commit until the archive reaches its LSN. The same load writes the WAL the PITR
   * comparison replays; it ends at a marker row whose commit time is the recovery target.
   */
  async streamAndLoad(): Promise<{ rpo: RecoveryPoint; target: string; baseStopLsn: string; targetLsn: string }> {
    await this.startArchiving();
    const streamer = spawn(process.execPath, [...DATA_NODE_FLAGS, this.cli, '--config', this.config, 'stream', 'app', '--spool', join(this.dir, 'spool')], {
      env: cleanEnv({ TIDEMARK_BENCH_KEY: this.key }),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let streamerErr = '';
    streamer.stderr?.setEncoding('utf8').on('data', (d: string) => (streamerErr = (streamerErr + d).slice(-4000)));
    const exited = new Promise<number | null>((r) => streamer.on('exit', (code) => r(code)));
    try {
      const config = parseConfig(readFileSync(this.config, 'utf8'), this.config);
      process.env.TIDEMARK_BENCH_KEY = this.key;
      const archive = new WalArchive(await Repository.open(config), 'app');
      const durableLsn = async (): Promise<number> => {
        const point = await archive.newestDurablePoint().catch(() => undefined);
        return point ? parseLsn(point.lsn) : 0;
      };
      // The streamer holds its slot from here: a base backup taken now has all its WAL archived.
      const startedAt = Date.now();
      await sleep(2000);
      await this.pg.sql('select pg_switch_wal()');
      while ((await durableLsn()) === 0) {
        if (streamer.exitCode !== null) throw new Error(`tidemark stream exited:\n${streamerErr}`);
        if (Date.now() - startedAt > 120_000) throw new Error(`tidemark stream archived nothing in 2 minutes:\n${streamerErr}`);
        await sleep(500);
      }
      this.log(`  streamer running; PITR bases: a tidemark incr and a pgBackRest incr (not timed)`);
      await this.backup(TIDEMARK, 'incr', 0);
      await this.backup(PGBACKREST, 'incr', 0);
      this.samples.splice(-2, 2); // bases, not samples
      const baseStopLsn = await this.pg.sql('select pg_current_wal_lsn()');

      // The load, the probes, the poller.
      const startLsn = parseLsn(baseStopLsn);
      const goal = this.options.pitrWalMiB * 2 ** 20;
      const probes: { lsn: number; at: number; durableAt?: number }[] = [];
      let loading = true;
      let stoppedAt = Infinity;
      const probeLoop = (async () => {
        await this.pg.sql('create table if not exists bench_probe (id serial primary key, at timestamptz default clock_timestamp())', 'app');
        while (loading) {
          const out = await this.pg.sql('insert into bench_probe default values; select pg_current_wal_insert_lsn()', 'app');
          probes.push({ lsn: parseLsn(out.split('\n').pop()!), at: Date.now() });
          await sleep(200);
        }
      })();
      const pollLoop = (async () => {
        while (loading || probes.some((p) => p.durableAt === undefined)) {
          const lsn = await durableLsn();
          const now = Date.now();
          for (const p of probes) if (p.durableAt === undefined && p.lsn <= lsn) p.durableAt = now;
          if (!loading && now - stoppedAt > (this.options.flushSeconds + 30) * 1000) break;
          await sleep(100);
        }
      })();
      this.log(`  pgbench load until ${this.options.pitrWalMiB} MiB of WAL (streamer flushSeconds ${this.options.flushSeconds}) …`);
      for (;;) {
        await measureOk(pgBin('pgbench'), ['-n', '-c', '2', '-j', '2', '-T', '5', ...this.conn(), 'app'], { env: cleanEnv() });
        const at = parseLsn(await this.pg.sql('select pg_current_wal_lsn()'));
        if (at - startLsn >= goal) break;
        if (streamer.exitCode !== null) throw new Error(`tidemark stream exited during the load:\n${streamerErr}`);
      }
      loading = false;
      stoppedAt = Date.now();
      await probeLoop;
      // The target: just after a marker committed after the load; then a segment switch, so both archives close it.
      // recovery_target_time compares commit times: the target is taken after the marker committed.
      await this.pg.sql('insert into bench_probe default values', 'app');
      const target = await this.pg.sql(`select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`);
      const targetLsn = await this.pg.sql('select pg_current_wal_insert_lsn()');
      await sleep(1100);
      await this.pg.sql('insert into bench_probe default values; select pg_switch_wal()', 'app');
      await pollLoop;
      const deadline = Date.now() + 120_000;
      while ((await durableLsn()) < parseLsn(targetLsn) && Date.now() < deadline) await sleep(200);
      await this.waitForPgbackrestArchive(await this.pg.sql(`select pg_walfile_name('${targetLsn}')`));
      const lags = probes.filter((p) => p.durableAt !== undefined).map((p) => (p.durableAt! - p.at) / 1000);
      const rpo: RecoveryPoint = { scale: this.scale, flushSeconds: this.options.flushSeconds, lags, lost: probes.length - lags.length };
      this.log(`  recovery point: p50 ${quantileOf(lags, 0.5).toFixed(1)} s, p99 ${quantileOf(lags, 0.99).toFixed(1)} s over ${lags.length} probes (${rpo.lost} never durable)`);
      return { rpo, target, baseStopLsn, targetLsn };
    } finally {
      streamer.kill('SIGTERM');
      await Promise.race([exited, sleep(30_000)]);
    }
  }

  private async waitForPgbackrestArchive(segment: string): Promise<void> {
    const deadline = Date.now() + 120_000;
    const archiveDir = join(this.pgbrRepo, 'archive', 'bench');
    const has = (dir: string): boolean =>
      existsSync(dir) && readdirSync(dir, { withFileTypes: true }).some((e) => (e.isDirectory() ? has(join(dir, e.name)) : e.name.startsWith(segment)));
    while (!has(archiveDir)) {
      if (Date.now() > deadline) throw new Error(`pgBackRest did not archive ${segment} in 2 minutes`);
      await sleep(200);
    }
  }

  /**
   * WAL fetch throughput: every completed segment from the PITR base to the target, fetched in
   * order as PostgreSQL's restore_command asks for them (a shell runs the command per segment):
   * tidemark's prefetcher (what `tidemark restore` sets up: 4 downloads ahead, decrypted into a
   * spool the command moves from) against `pgbackrest archive-get` (2.45's restore_command).
   */
  async walFetch(baseStopLsn: string, targetLsn: string): Promise<WalFetch[]> {
    const names = (
      await this.pg.sql(
        `select distinct pg_walfile_name('${baseStopLsn}'::pg_lsn + (g::numeric * 16777216)) n from generate_series(0, ceil(pg_wal_lsn_diff('${targetLsn}', '${baseStopLsn}') / 16777216)::int) g order by n`,
      )
    )
      .split('\n')
      .filter(Boolean);
    const segments = names.slice(0, -1); // the target's own segment may be archived only as a partial
    const dest = join(this.dir, 'RECOVERYXLOG');
    const bytes = segments.length * 16 * 2 ** 20;
    const out: WalFetch[] = [];
    const config = parseConfig(readFileSync(this.config, 'utf8'), this.config);
    const prefetcher = new WalPrefetcher(new WalArchive(await Repository.open(config), 'app'), { spoolDir: join(this.dir, 'fetch-spool') });
    // One shell runs the command per segment, as PostgreSQL's startup process would: started from
    // here per segment, each start would cost this (large) node process a round of page faults
    // (BENCHMARKS.md, "What a process start costs"), and the prefetcher runs in this process.
    const perSegment = (command: (name: string) => string) => ['set -e', ...segments.map((name) => `sh -c ${shq([command(name)])}`)].join('\n');
    let started = process.hrtime.bigint();
    await prefetcher.start(segments[0]);
    await measureOk('sh', ['-c', perSegment((name) => prefetcher.restoreCommand.replace(/%f/g, name).replace(/%p/g, dest))]);
    await prefetcher.stop();
    out.push({ scale: this.scale, contender: TIDEMARK, segments: segments.length, bytes, seconds: Number(process.hrtime.bigint() - started) / 1e9 });
    const pgbrDest = join(this.pg.dir, 'RECOVERYXLOG');
    const archiveGet = (name: string) => shq(['pgbackrest', `--config=${this.pgbrConf}`, '--stanza=bench', 'archive-get', name, pgbrDest]);
    const [shell, shellArgs] = asPostgres('sh', ['-c', perSegment(archiveGet)]);
    started = process.hrtime.bigint();
    await measureOk(shell, shellArgs, { env: cleanEnv() });
    out.push({ scale: this.scale, contender: PGBACKREST, segments: segments.length, bytes, seconds: Number(process.hrtime.bigint() - started) / 1e9 });
    rmSync(dest, { force: true });
    for (const f of out) this.log(`  WAL fetch, ${f.contender}: ${f.segments} segments in ${f.seconds.toFixed(2)} s = ${(f.bytes / 1e6 / f.seconds).toFixed(0)} MB/s`);
    return out;
  }

  /** PITR to `target`: restore, start, replay until promoted, both tools; the server stopped after. */
  async pitr(contender: string, round: number, target: string, walBytes: number): Promise<void> {
    const dir = this.freshDir();
    const port = await freePort();
    await this.settle();
    const started = process.hrtime.bigint();
    let replaySeconds: number | undefined;
    if (contender === TIDEMARK) {
      const r = await this.tidemark(['restore', 'app', '--to', dir, '--time', target, '--start', '--port', String(port)], true);
      // Its progress line on stderr marks where the files are in place and the server starts.
      const replayFrom = r.stderrLines.find((l) => /^replaying WAL from /.test(l.text))?.at;
      if (replayFrom !== undefined) replaySeconds = r.seconds - replayFrom;
    } else {
      const restored = await this.pgbackrest(['restore', `--pg1-path=${dir}`, '--type=time', `--target=${target.replace('T', ' ').replace('Z', '+00')}`, '--target-action=promote', '--target-timeline=current']);
      replaySeconds = -restored.seconds;
      const opts = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${dir} -c archive_mode=off`;
      const [cmd, args] = asPostgres(pgBin('pg_ctl'), ['-D', dir, '-w', '-t', '3600', '-l', join(dir, 'server.log'), '-o', opts, 'start']);
      await measureOk(cmd, args, { env: cleanEnv() });
      // pg_ctl -w returns when connections are accepted, which during a PITR is after promotion.
      for (;;) {
        const inRecovery = sh(pgBin('psql'), ['-X', '-A', '-t', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'app', '-c', 'select pg_is_in_recovery()']);
        if (inRecovery === 'f') break;
        await sleep(50);
      }
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (contender !== TIDEMARK && replaySeconds !== undefined) replaySeconds += seconds;
    const count = sh(pgBin('psql'), ['-X', '-A', '-t', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'app', '-c', `select count(*) from bench_probe where at <= '${target}'`]);
    const after = sh(pgBin('psql'), ['-X', '-A', '-t', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'app', '-c', `select count(*) from bench_probe where at > '${target}'`]);
    const [cmd, args] = asPostgres(pgBin('pg_ctl'), ['-D', dir, '-m', 'immediate', '-w', 'stop']);
    await measureOk(cmd, args, { env: cleanEnv() }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    const want = await this.pg.sql(`select count(*) from bench_probe where at <= '${target}'`, 'app');
    if (count !== want || after !== '0') throw new Error(`${contender} PITR to ${target} is wrong: ${count} probe rows up to the target (want ${want}), ${after} after it`);
    this.record({ contender, operation: 'pitr', scale: this.scale, round, seconds, walBytes, ...(replaySeconds !== undefined ? { replaySeconds } : {}) });
  }

  async run(cli: string, worker: { entry: string; node: string } | undefined): Promise<{ samples: PhysicalSample[]; rpo: RecoveryPoint; walFetches: WalFetch[]; databaseBytes: number }> {
    try {
      this.node22 = worker?.node;
      await this.setUp(cli);
      await this.compare();
      if (worker) await this.workerBackups(worker);
      const { rpo, target, baseStopLsn, targetLsn } = await this.streamAndLoad();
      const walBytes = parseLsn(targetLsn) - parseLsn(baseStopLsn);
      this.log(`  PITR to ${target}: ${(walBytes / 2 ** 20).toFixed(0)} MiB of WAL after the bases`);
      for (let round = 1; round <= this.options.runs; round++) {
        const order = round % 2 ? [TIDEMARK, PGBACKREST] : [PGBACKREST, TIDEMARK];
        for (const c of order) await this.pitr(c, round, target, walBytes);
      }
      const walFetches = await this.walFetch(baseStopLsn, targetLsn);
      return { samples: this.samples, rpo, walFetches, databaseBytes: this.databaseBytes };
    } finally {
      await this.tearDown();
    }
  }
}

/** The worker bundle and Node 22 (scripts/node22.sh), or undefined with the reason logged. */
function findWorker(options: PhysicalOptions): { entry: string; node: string } | undefined {
  try {
    const node = execFileSync(join(ROOT, 'scripts', 'node22.sh'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const entry = join(options.workDir, 'worker', 'worker.js');
    bundleWorkerLikeDockerfile(ROOT, entry);
    options.log(`worker: ${execFileSync(node, ['--version'], { encoding: 'utf8' }).trim()} (scripts/node22.sh), the Dockerfile's bundle`);
    return { entry, node };
  } catch (e) {
    options.log(`worker left out: ${(e as Error).message.split('\n')[0]} (set TIDEMARK_NODE22 to a Node 22 binary)`);
    return undefined;
  }
}

export async function runPhysicalPostgres(options: PhysicalOptions): Promise<PhysicalResult> {
  rmSync(options.workDir, { recursive: true, force: true });
  mkdirSync(options.workDir, { recursive: true });
  const loadBefore = loadAverage();
  try {
    options.log('bundling the CLI (lib/local/cli-bundle.ts, as npm run build does)');
    const cli = bundleCli(ROOT, join(options.workDir, 'cli'));
    const worker = findWorker(options);
    const samples: PhysicalSample[] = [];
    const recoveryPoints: RecoveryPoint[] = [];
    const walFetches: WalFetch[] = [];
    const scales: { scale: number; databaseBytes: number }[] = [];
    for (const scale of options.scales) {
      const r = await new PhysicalScale(scale, options).run(cli, worker);
      samples.push(...r.samples);
      recoveryPoints.push(r.rpo);
      walFetches.push(...r.walFetches);
      scales.push({ scale, databaseBytes: r.databaseBytes });
    }
    const facts: PhysicalFacts = {
      date: new Date().toISOString(),
      cpuModel: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      ramBytes: totalmem(),
      kernel: release(),
      postgres: sh(pgBin('postgres'), ['--version']),
      pgbackrest: sh('pgbackrest', ['version']),
      zstd: sh('zstd', ['--version']).replace(/^\*+\s*|\s*\*+$/g, ''),
      node: process.version,
      commit: `${sh('git', ['rev-parse', '--short', 'HEAD'])}${sh('git', ['status', '--porcelain', '--', 'lib', 'bin']) ? ' + uncommitted changes' : ''}`,
      loadBefore,
      loadAfter: loadAverage(),
    };
    return { facts, runs: options.runs, scales, samples, recoveryPoints, walFetches };
  } finally {
    rmSync(options.workDir, { recursive: true, force: true });
  }
}
