import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { runList } from '../../lib/core/commands/list';
import { runRestore } from '../../lib/core/commands/restore';
import { runVerify } from '../../lib/core/commands/verify';
import type { TidemarkConfig, TidemarkConfigInput } from '../../lib/core/config/schema';
import { fingerprintMysqlDatabaseAt } from '../../lib/core/engines/mysql/fingerprint';
import { mysqlBinlogArchive } from '../../lib/core/engines/mysql/binlog/binlog-method';
import { comparePositions } from '../../lib/core/engines/mysql/binlog/names';
import { fingerprintDatabaseAt } from '../../lib/core/engines/postgres/fingerprint';
import { pgBin } from '../../lib/core/engines/postgres/tools';
import { WalArchive } from '../../lib/core/engines/postgres/wal/wal-archive';
import { segmentArchiveName } from '../../lib/core/engines/postgres/wal/wal-names';
import { freePort } from '../../lib/core/free-port';
import { serverUserWhenRoot } from '../../lib/core/process/os-user';
import { runTool } from '../../lib/core/process/tool';
import { silentProgress as progress } from '../../lib/core/progress';
import { FileStore } from '../../lib/core/repository/file-store';
import { Repository } from '../../lib/core/repository/repository';
import { BackupStateMachine, BackupStateNames as S } from '../../lib/infra/backup-state-machine';
import { runBackupsLocally, type LocalBackupPipelineResult, type LocalBackupRun } from '../../lib/local/local-backup-pipeline';
import { stateMachineDefinition } from '../../lib/local/template-definition';
import { fixture } from '../harness/backup-state-machine-stack';
import { useMariadb } from '../harness/mariadb';
import { usePostgres } from '../harness/postgres';
import { ROOT, useTempDir, writeConfig } from '../harness/tidemark';
import { testCli, testWorker } from '../harness/bundles';

/**
 * Load (issue 11): a fleet of 20 sources (8 in CI: FLEET) — PostgreSQL logical in two clusters, two PostgreSQL
 * physical fulls, MariaDB logical — through one run of the synthesized backup state machine at its
 * default MaxConcurrency (4), with the workers as the Dockerfile's bundle, while `tidemark stream`
 * archives WAL and binlog under light write load. Every backup is listed and verifies, a sample
 * restores equal to its source, the archives have no gap, at most 4 workers live at once; the wall
 * time and peak RSS of workers, this process and the streamers go to one line and a JSON file.
 * TIDEMARK_SOAK=1: three rounds instead of one.
 */

const SOAK = process.env.TIDEMARK_SOAK === '1';
const ROUNDS = SOAK ? 3 : 1;
/**
 * Sources in the fleet: 20 in the soak; 8 in CI (the suite's 15 minutes), still twice the
 * MaxConcurrency, so the slots fill and sources wait for them, with both streamers running.
 */
const FLEET = SOAK ? 20 : 8;
const MAX_CONCURRENCY = 4;
/** Quoted by the report; os.tmpdir() follows $TMPDIR. */
const FIGURES_FILE = process.env.TIDEMARK_LOAD_FIGURES ?? join(tmpdir(), 'tidemark-load-figures.json');
const MiB = 1024 * 1024;
/**
 * Every flush stores a new generation of the open WAL segment (16 MiB before compression) or
 * binlog file, and verify reads each one: 1 s made ~200 WAL objects a run and verify took minutes.
 */
const FLUSH_SECONDS = 5;

jest.setTimeout(240_000 * ROUNDS);

/** Each worker process, as it describes itself on exit (the probe below, preloaded via NODE_OPTIONS). */
interface WorkerProbe {
  readonly argv: string[];
  readonly startedAt: number;
  readonly exitedAt: number;
  /**
   * VmHWM of the worker's own address space, not its tools'. Not ru_maxrss: Linux carries that over
   * from the forked parent through exec, so every worker "peaked" near this test process's size.
   */
  readonly maxRssKiB: number;
  readonly code: number;
}

const PROBE = `'use strict';
const { appendFileSync, readFileSync } = require('node:fs');
const startedAt = Date.now();
process.on('exit', (code) => {
  const maxRssKiB = Number(/^VmHWM:\\s+(\\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
  appendFileSync(process.env.TIDEMARK_LOAD_PROBE, JSON.stringify({ argv: process.argv.slice(2), startedAt, exitedAt: Date.now(), maxRssKiB, code }) + '\\n');
});
`;

/** Most intervals open at one moment; an interval ending at the instant another starts does not overlap it. */
function mostAtOnce(intervals: readonly (readonly [number, number])[]): number {
  const edges = intervals.flatMap(([from, to]) => [[from, 1] as const, [to, -1] as const]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let open = 0;
  let most = 0;
  for (const [, step] of edges) most = Math.max(most, (open += step));
  return most;
}

/** VmHWM and VmRSS of a live process, in bytes. */
function memoryOf(pid: number): { hwm: number; rss: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { hwm: kib('VmHWM'), rss: kib('VmRSS') };
}

const median = (values: readonly number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const mib = (bytes: number) => Math.round((bytes / MiB) * 10) / 10;

/** A `tidemark stream` process (the bundled CLI), its JSON lines kept. */
class Streamer {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  private readonly closed: Promise<unknown>;

  constructor(cli: string, source: string, spool: string, configPath: string) {
    this.child = spawn(process.execPath, [cli, 'stream', source, '--spool', spool, '--config', configPath], {
      cwd: ROOT,
      env: { ...process.env }, // jest's process.env (TIDEMARK_TEST_KEY), not the worker's own
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.closed = once(this.child, 'close');
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      let pending = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const lines = (pending + chunk).split('\n');
        pending = lines.pop() ?? '';
        this.lines.push(...lines);
      });
    }
  }

  async started(message: string): Promise<void> {
    for (const deadline = Date.now() + 60_000; !this.lines.some((l) => l.includes(message)); await sleep(100)) {
      if (Date.now() > deadline || this.child.exitCode !== null) throw new Error(`the streamer did not start:\n${this.lines.join('\n')}`);
    }
  }

  /** SIGTERM, as ECS stops the service; resolves to the exit code. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    await this.closed;
    return this.child.exitCode;
  }
}

describe(`load: ${FLEET} sources through the backup state machine at MaxConcurrency 4 while two streamers run`, () => {
  // pgA: the WAL-streamed source (backed up physically) and some logical; pgB: one physical and some logical.
  const pgA = usePostgres({ settings: { wal_level: 'replica', max_replication_slots: 10 } });
  const pgB = usePostgres();
  const maria = useMariadb();
  const tmp = useTempDir('tidemark-load-');

  // Three streamed or physical sources and the rest logical, spread over the three servers.
  const logical = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}_${i + 1}`);
  const pgaLogical = logical('pga', SOAK ? 6 : 2);
  const pgbLogical = logical('pgb', SOAK ? 5 : 2);
  const mariaLogical = logical('maria', FLEET - 3 - pgaLogical.length - pgbLogical.length);
  const runs: LocalBackupRun[] = [
    { source: 'pg_stream', type: 'full' },
    { source: 'pg_full', type: 'full' },
    { source: 'maria_stream', type: 'logical' },
    ...[...pgaLogical, ...pgbLogical, ...mariaLogical].map((source) => ({ source, type: 'logical' as const })),
  ];

  let config: TidemarkConfig;
  let definition: object;
  let worker: string;
  let probeFile: string;
  let streamers: { pg: Streamer; maria: Streamer };
  let writing = true;
  let writes: Promise<{ pg: number; maria: number }>;
  const results: LocalBackupPipelineResult[] = [];
  const roundSeconds: number[] = [];
  let runStartedAt = 0;
  let runFinishedAt = 0;
  let testPeakRss = 0;
  /** Wall seconds of each phase, for the figures. */
  const phases: Record<string, number> = {};
  const timed = async <T>(phase: string, work: () => Promise<T>): Promise<T> => {
    const started = Date.now();
    try {
      return await work();
    } finally {
      phases[phase] = (Date.now() - started) / 1000;
    }
  };

  beforeAll(() => timed('setup', async () => {
    chmodSync(tmp.path, 0o755); // a restored physical cluster runs as postgres and must reach its directory
    const seed = (name: string, i: number) => `CREATE TABLE items (id int PRIMARY KEY, source text NOT NULL, body text NOT NULL);
      INSERT INTO items SELECT g, '${name}', md5('${name}' || g) FROM generate_series(1, ${200 + 37 * i}) g;`;
    const seedPg = async (pg: typeof pgA, names: string[]) => {
      await pg.sql(names.map((n) => `CREATE DATABASE ${n};`).join('\n'));
      await pg.sql(names.map((n, i) => `\\connect ${n}\n${seed(n, i)}`).join('\n'));
    };
    const mariaNames = ['maria_stream', ...mariaLogical];
    await Promise.all([
      seedPg(pgA, ['pg_stream', ...pgaLogical]).then(() => pgA.sql('CREATE TABLE ledger (id bigserial PRIMARY KEY, note text)', 'pg_stream')),
      seedPg(pgB, pgbLogical),
      maria.sql(
        mariaNames
          .map((n, i) => `CREATE DATABASE ${n}; USE ${n}; CREATE TABLE items (id INT PRIMARY KEY, source VARCHAR(40) NOT NULL, body CHAR(32) NOT NULL) ENGINE=InnoDB;
            INSERT INTO items SELECT seq, '${n}', MD5(CONCAT('${n}', seq)) FROM seq_1_to_${200 + 37 * i};`)
          .join('\n') + '\nCREATE TABLE maria_stream.ledger (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(40)) ENGINE=InnoDB;',
      ),
    ]);

    const sources: TidemarkConfigInput['sources'] = {
      pg_stream: { engine: 'postgres', url: pgA.url('pg_stream'), stream: { flushSeconds: FLUSH_SECONDS } },
      pg_full: { engine: 'postgres', url: pgB.url('postgres') },
      maria_stream: { engine: 'mysql', url: maria.url('maria_stream'), stream: { flushSeconds: FLUSH_SECONDS } },
    };
    for (const n of pgaLogical) sources[n] = { engine: 'postgres', url: pgA.url(n) };
    for (const n of pgbLogical) sources[n] = { engine: 'postgres', url: pgB.url(n) };
    for (const n of mariaLogical) sources[n] = { engine: 'mysql', url: maria.url(n) };
    const written = writeConfig(tmp.path, 'fleet.yaml', { repository: `file://${tmp.path}/repo`, encryption: { key: 'env:TIDEMARK_TEST_KEY' }, sources });
    config = written.config;

    // The backup state machine construct with its default MaxConcurrency, in test/e2e's small stack
    // (the whole TidemarkStack of 20 sources takes ~10 s of CPU to synthesize). record-result sits
    // where TidemarkStack puts it (Functions/RecordResult), which is how runBackupsLocally finds it.
    const { stack, machineProps } = fixture();
    const recordResult = new lambda.Function(new Construct(stack, 'Functions'), 'RecordResult', {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromInline('exports.handler = async () => ({});'),
    });
    new BackupStateMachine(stack, 'Backup', { ...machineProps, recordResult });
    definition = stateMachineDefinition(Template.fromStack(stack).toJSON());
    worker = testWorker();
    const cli = testCli();
    probeFile = join(tmp.path, 'workers.jsonl');
    writeFileSync(join(tmp.path, 'probe.cjs'), PROBE);

    streamers = {
      pg: new Streamer(cli, 'pg_stream', join(tmp.path, 'spool-pg'), written.path),
      maria: new Streamer(cli, 'maria_stream', join(tmp.path, 'spool-maria'), written.path),
    };
    await Promise.all([streamers.pg.started('"streamer started"'), streamers.maria.started('binlog streamer started')]);

    // Light write load on both streamed sources, with a WAL switch and a binlog rotation now and then.
    writes = (async () => {
      let pg = 0;
      let mariaRows = 0;
      for (let i = 1; writing; i++) {
        await Promise.all([
          pgA.sql(`INSERT INTO ledger (note) VALUES ('write ${i}')${i % 50 === 0 ? '; SELECT pg_switch_wal()' : ''}`, 'pg_stream').then(() => pg++),
          maria.sql(`INSERT INTO ledger (note) VALUES ('write ${i}')${i % 50 === 25 ? '; FLUSH BINARY LOGS' : ''}`, 'maria_stream').then(() => mariaRows++),
          sleep(200),
        ]);
      }
      return { pg, maria: mariaRows };
    })();
    writes.catch(() => undefined); // awaited by the streamer test; a failed write fails it there
  }), 180_000);

  afterAll(async () => {
    writing = false;
    await writes?.catch(() => undefined);
    await Promise.all([streamers?.pg.stop(), streamers?.maria.stop()]);
  }, 60_000);

  it(`runs all ${FLEET} to SUCCEEDED ${ROUNDS === 1 ? 'in one execution' : `in each of ${ROUNDS} executions`}, never more than 4 workers at once`, async () => {
    const mapState = (definition as { States: Record<string, { MaxConcurrency?: number }> }).States[S.eachSource];
    expect(mapState.MaxConcurrency).toBe(MAX_CONCURRENCY);
    expect(new Set(runs.map((r) => r.source)).size).toBe(FLEET);

    const sampler = setInterval(() => (testPeakRss = Math.max(testPeakRss, process.memoryUsage().rss)), 100);
    runStartedAt = Date.now();
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const started = Date.now();
        const result = await runBackupsLocally(runs, {
          definition,
          workerConfigJson: JSON.stringify(config),
          workerEnv: { NODE_OPTIONS: `--require ${join(tmp.path, 'probe.cjs')}`, TIDEMARK_LOAD_PROBE: probeFile },
          workerEntry: worker,
          store: new FileStore(join(tmp.path, 'repo')),
        });
        roundSeconds.push((Date.now() - started) / 1000);
        results.push(result);
        // The failed sources first, with their workers' last lines: what to fix when this fails.
        expect({ round, failed: result.notifications.map((n) => n.message) }).toEqual({ round, failed: [] });
        expect({ round, status: result.status, error: result.error }).toEqual({ round, status: 'SUCCEEDED', error: undefined });
        // No worker needed its retry; record-result counted each source once.
        expect(result.history.filter((h) => h.type === 'StateRetried')).toEqual([]);
        expect(result.metrics.filter((m) => m.BackupSucceeded === 1).map((m) => m.Source).sort()).toEqual(runs.map((r) => r.source).sort());
      }
    } finally {
      runFinishedAt = Date.now();
      clearInterval(sampler);
    }

    // Upper bound: a worker lives inside its Task state, from entering it to leaving it.
    for (const result of results) {
      const tasks = new Map<number, [number, number]>();
      for (const h of result.history.filter((e) => e.state === S.runWorker)) {
        const span = tasks.get(h.index!) ?? [NaN, NaN];
        if (h.type === 'StateEntered') span[0] = h.timestamp;
        if (h.type === 'StateExited') span[1] = h.timestamp;
        tasks.set(h.index!, span);
      }
      expect(tasks.size).toBe(FLEET);
      expect([...tasks.values()].every(([a, b]) => a <= b)).toBe(true);
      expect(mostAtOnce([...tasks.values()])).toBe(MAX_CONCURRENCY); // never more, and the fleet did fill the slots
    }
    // And the processes themselves: from the worker's first line of code to its exit.
    const probes = workerProbes();
    expect(probes).toHaveLength(FLEET * ROUNDS);
    expect(probes.every((p) => p.code === 0)).toBe(true);
    expect(probes.map((p) => p.argv.slice(1).join(' ')).sort()).toEqual(
      runs.flatMap((r) => Array.from({ length: ROUNDS }, () => `${r.source} --type ${r.type}`)).sort(),
    );
    expect(mostAtOnce(probes.map((p) => [p.startedAt, p.exitedAt]))).toBeLessThanOrEqual(MAX_CONCURRENCY);
  });

  it(`lists ${FLEET} backups per round, one per source, and every one verifies`, () => timed('listAndVerify', async () => {
    for (const { source, type } of runs) {
      const listed = await runList(config, source);
      expect({ source, types: listed.backups.map((b) => b.type), incomplete: listed.incomplete, problems: listed.problems }).toEqual({
        source,
        types: Array.from({ length: ROUNDS }, () => type),
        incomplete: [],
        problems: [],
      });
      // The streamed sources' archives are verified by the streamer test, once they have stopped.
      const verified = await Promise.all(listed.backups.map((b) => runVerify(config, source, { backup: b.id, progress })));
      expect({ source, ok: verified.map((v) => v.ok) }).toEqual({ source, ok: Array.from({ length: ROUNDS }, () => true) });
    }
  }));

  it('restores a sample equal to its source: a PostgreSQL logical, a MariaDB logical and a physical cluster', () => timed('restoreSample', async () => {
    const [pgSample, mariaSample] = [pgaLogical.at(-1)!, mariaLogical.at(-1)!];
    await runRestore(config, pgSample, { to: pgB.url(`restored_${pgSample}`), progress });
    expect(await fingerprintDatabaseAt(pgB.url(`restored_${pgSample}`))).toEqual(await fingerprintDatabaseAt(pgA.url(pgSample)));

    await runRestore(config, mariaSample, { to: maria.url(`restored_${mariaSample}`), progress });
    expect(await fingerprintMysqlDatabaseAt(maria.url(`restored_${mariaSample}`))).toEqual(await fingerprintMysqlDatabaseAt(maria.url(mariaSample)));

    const dir = join(tmp.path, 'restored-pg-full');
    const port = await freePort();
    await runRestore(config, 'pg_full', { to: dir, start: true, port, progress });
    try {
      const restored = `postgres://postgres@127.0.0.1:${port}`;
      for (const db of [pgbLogical[0], pgbLogical.at(-1)!]) expect(await fingerprintDatabaseAt(`${restored}/${db}`)).toEqual(await fingerprintDatabaseAt(pgB.url(db)));
    } finally {
      await runTool(pgBin('pg_ctl'), ['-D', dir, '-m', 'fast', '-w', 'stop'], { cwd: dir, ...serverUserWhenRoot('postgres') }).catch(() => undefined);
    }
  }));

  it('the streamers archived WAL and binlog without a gap across the run, and stop cleanly with everything archived', async () => {
    const started = Date.now();
    // Stop the load, then close a WAL segment and note the binlog position: the archives must reach both.
    writing = false;
    const written = await writes;
    expect(written.pg).toBeGreaterThan(5);
    const lastSegment = await pgA.sql('select pg_walfile_name(pg_switch_wal())', 'pg_stream');
    const [file, position] = (await maria.sql('SHOW MASTER STATUS')).split('\t');
    const repository = await Repository.open(config);
    const wal = new WalArchive(repository, 'pg_stream');
    for (const deadline = Date.now() + 60_000; ; await sleep(200)) {
      const walDone = (await wal.list()).some((o) => o.name === segmentArchiveName(lastSegment));
      const binlog = (await mysqlBinlogArchive.newestDurablePoint(repository.store, 'maria_stream'))?.binlog;
      if (walDone && binlog && comparePositions(binlog, { file, position: Number(position) }) >= 0) break;
      if (Date.now() > deadline) throw new Error(`the archives did not reach WAL ${lastSegment} and binlog ${file}:${position}`);
    }
    const memory = { pg: memoryOf(streamers.pg.child.pid!), maria: memoryOf(streamers.maria.child.pid!) };
    expect(await streamers.pg.stop()).toBe(0);
    expect(await streamers.maria.stop()).toBe(0);
    for (const s of [streamers.pg, streamers.maria]) expect(s.lines.filter((l) => l.includes('"level":"error"'))).toEqual([]);

    for (const source of ['pg_stream', 'maria_stream']) {
      const listed = await runList(config, source);
      // One unbroken run from before the first backup to past the last write, replayable from every backup.
      expect({ source, gaps: listed.archive?.gaps, runs: listed.archive?.runs.length }).toEqual({ source, gaps: [], runs: 1 });
      expect(listed.archive!.windows).toHaveLength(1);
      expect(Date.parse(listed.archive!.windows[0].to)).toBeGreaterThanOrEqual(runFinishedAt);
      expect(listed.archive!.windows[0].from <= listed.backups[0].restorePoint).toBe(true);
      const verified = await runVerify(config, source, { progress });
      expect({ source, ok: verified.ok, archive: verified.archive?.problems }).toEqual({ source, ok: true, archive: [] });
    }
    // The rows written during the run are all in the binlog: a --latest restore brings every one back.
    await runRestore(config, 'maria_stream', { to: maria.url('restored_maria_stream'), latest: true, progress });
    expect(await maria.sql('SELECT COUNT(*) FROM ledger', 'restored_maria_stream')).toBe(String(written.maria));

    phases.streamers = (Date.now() - started) / 1000;
    report(written, memory);
  });

  function workerProbes(): WorkerProbe[] {
    return readFileSync(probeFile, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as WorkerProbe);
  }

  function report(written: { pg: number; maria: number }, streamerMemory: Record<'pg' | 'maria', { hwm: number; rss: number }>): void {
    const probes = workerProbes();
    const workerRss = probes.map((p) => p.maxRssKiB * 1024);
    const self = memoryOf(process.pid);
    const figures = {
      measuredAt: new Date().toISOString(),
      node: process.version,
      // This machine's load while measuring: figures from a busy shared machine are upper bounds.
      loadAverage: loadavg().map((l) => Math.round(l * 10) / 10),
      cpus: cpus().length,
      sources: runs.length,
      maxConcurrency: MAX_CONCURRENCY,
      rounds: ROUNDS,
      runSeconds: roundSeconds,
      phaseSeconds: phases,
      workers: {
        processes: probes.length,
        mostAliveAtOnce: mostAtOnce(probes.map((p) => [p.startedAt, p.exitedAt])),
        peakRssMiB: mib(Math.max(...workerRss)),
        medianPeakRssMiB: mib(median(workerRss)),
        secondsEach: { median: median(probes.map((p) => p.exitedAt - p.startedAt)) / 1000, max: Math.max(...probes.map((p) => p.exitedAt - p.startedAt)) / 1000 },
      },
      testProcess: { peakRssDuringRunMiB: mib(testPeakRss), vmHwmMiB: mib(self.hwm) },
      streamers: {
        postgresWal: { vmHwmMiB: mib(streamerMemory.pg.hwm), vmRssMiB: mib(streamerMemory.pg.rss) },
        mariadbBinlog: { vmHwmMiB: mib(streamerMemory.maria.hwm), vmRssMiB: mib(streamerMemory.maria.rss) },
      },
      rowsWrittenDuringRun: written,
      streamedSeconds: (Date.now() - runStartedAt) / 1000,
    };
    writeFileSync(FIGURES_FILE, JSON.stringify(figures, null, 2) + '\n');
    console.log(
      `load: ${figures.sources} sources, MaxConcurrency ${MAX_CONCURRENCY}, ${ROUNDS} round(s): ` +
        `run ${roundSeconds.map((s) => `${s.toFixed(1)} s`).join(' + ')} wall; ` +
        `workers peak RSS ${figures.workers.peakRssMiB} MiB (median ${figures.workers.medianPeakRssMiB}, at most ${figures.workers.mostAliveAtOnce} alive); ` +
        `test process peak RSS ${figures.testProcess.peakRssDuringRunMiB} MiB (VmHWM ${figures.testProcess.vmHwmMiB}); ` +
        `streamers VmHWM pg ${figures.streamers.postgresWal.vmHwmMiB} MiB, mariadb ${figures.streamers.mariadbBinlog.vmHwmMiB} MiB → ${FIGURES_FILE}`,
    );
  }
});
