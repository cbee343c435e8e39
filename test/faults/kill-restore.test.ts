import { chmodSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runBackup } from '../../lib/core/commands/backup';
import { runRestore } from '../../lib/core/commands/restore';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import { fingerprintMysqlDatabaseAt } from '../../lib/core/engines/mysql/fingerprint';
import { UNFINISHED_RESTORE_TABLE } from '../../lib/core/engines/mysql/logical-restore';
import { fingerprintDatabaseAt } from '../../lib/core/engines/postgres/fingerprint';
import { pgBin } from '../../lib/core/engines/postgres/tools';
import { TargetNotEmpty } from '../../lib/core/errors';
import { freePort } from '../../lib/core/free-port';
import { serverUserWhenRoot } from '../../lib/core/process/os-user';
import { runTool } from '../../lib/core/process/tool';
import { silentProgress as progress } from '../../lib/core/progress';
import { loadSampleMariadbData } from '../../lib/local/sample-mariadb';
import { loadSampleData } from '../../lib/local/sample-postgres';
import { useMariadb } from '../harness/mariadb';
import { usePostgres } from '../harness/postgres';
import { runCli, useTempDir, writeConfig } from '../harness/tidemark';
import { random } from './fault-injector';
import { waitForExit } from '../harness/proc';
import { commandOf, killCount, signalCliAt, SIGTERM_EXIT_SECONDS, SOAK, testTimeout } from './kill-moments';

/**
 * Restores SIGKILLed at seeded moments (issue 11). The promise: a killed restore never leaves a
 * target that could be taken for a restored one. After every kill the target is one of
 *   absent or empty — nothing to mistake;
 *   interrupted — says so: the data directory keeps .tidemark-restore and has no global/pg_control
 *     (PostgreSQL will not start it), the MariaDB database holds the table _tidemark_restore_incomplete;
 *     the next restore refuses it without --force, naming it;
 *   whole — equal to the source (a PostgreSQL logical restore is one transaction: all or nothing).
 * Anything else (a partial target that looks finished) fails. The next killed restore goes into the
 * same target with --force, and at the end one runs to completion and equals the source.
 * SIGTERM: out within 10 s, its tools gone, the target absent/empty or whole.
 */
const SEED = 1204;
const KILLS = killCount(2);
const TERMS = SOAK ? 4 : 1;

type TargetState = 'absent' | 'empty' | 'interrupted' | 'whole';

interface RestoreKind {
  readonly name: string;
  args(force: boolean): string[];
  /** After a kill: what the target is (throws on a partial target that looks finished). */
  state(): Promise<TargetState>;
  /** Stops what a killed restore may have left running (a started server). */
  settle(): Promise<void>;
  /** Removes the target, for a fresh start. */
  reset(): Promise<void>;
}

/** As root, restored servers run as `postgres`. */
const serverUser = () => serverUserWhenRoot('postgres');

describe(`SIGKILL of restores at ${KILLS} moments per kind, SIGTERM at ${TERMS} (seed ${SEED})`, () => {
  const pg = usePostgres({ dataChecksums: true });
  const maria = useMariadb({ databases: ['shop'] });
  const tmp = useTempDir('tidemark-kill-restore-');
  let cfg: { path: string; config: TidemarkConfig };
  const ids: Record<'pgLogical' | 'pgFull' | 'maria', string> = { pgLogical: '', pgFull: '', maria: '' };
  let pgSource: Awaited<ReturnType<typeof fingerprintDatabaseAt>>;
  let mariaSource: Awaited<ReturnType<typeof fingerprintMysqlDatabaseAt>>;
  let port = 0;
  const dataDir = () => join(tmp.path, 'pgdata');

  beforeAll(async () => {
    chmodSync(tmp.path, 0o755); // a restored server runs as postgres and must reach its directory
    await pg.createDatabase('app');
    await loadSampleData(pg.url('app'), { pgbenchScale: 1, toastMegabytes: 4 });
    await loadSampleMariadbData(maria.url('shop'), { orders: 30_000, noteBytes: 64 });
    cfg = writeConfig(tmp.path, 'tidemark.yaml', {
      repository: `file://${tmp.path}/repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: pg.url('app') }, shop: { engine: 'mysql', url: maria.url('shop') } },
    });
    ids.pgLogical = (await runBackup(cfg.config, 'app', { type: 'logical', progress })).id;
    ids.pgFull = (await runBackup(cfg.config, 'app', { type: 'full', progress })).id;
    ids.maria = (await runBackup(cfg.config, 'shop', { type: 'logical', progress })).id;
    pgSource = await fingerprintDatabaseAt(pg.url('app'));
    mariaSource = await fingerprintMysqlDatabaseAt(maria.url('shop'));
    port = await freePort();
  }, testTimeout(300_000));

  const pgLogical: RestoreKind = {
    name: 'PostgreSQL logical into a database',
    args: (force) => ['restore', 'app', '--backup', ids.pgLogical, '--to', pg.url('restored'), ...(force ? ['--force'] : []), '--config', cfg.path],
    async state() {
      if ((await pg.sql("select count(*) from pg_database where datname = 'restored'")) === '0') return 'absent';
      const relations = await pg.sql("select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public'", 'restored');
      if (relations === '0') return 'empty';
      expect(await fingerprintDatabaseAt(pg.url('restored'))).toEqual(pgSource);
      return 'whole';
    },
    settle: async () => undefined,
    reset: async () => void (await pg.sql('DROP DATABASE IF EXISTS restored WITH (FORCE)')),
  };

  const physical = (start: boolean): RestoreKind => ({
    name: `PostgreSQL physical into a data directory${start ? ', --start' : ''}`,
    args: (force) => [
      'restore', 'app', '--backup', ids.pgFull, '--to', dataDir(), ...(start ? ['--start', '--port', String(port)] : []), ...(force ? ['--force'] : []), '--config', cfg.path,
    ],
    async state() {
      const entries = existsSync(dataDir()) ? readdirSync(dataDir()) : undefined;
      if (!entries) return 'absent';
      if (entries.length === 0) return 'empty';
      if (entries.includes('.tidemark-restore')) {
        // Not startable: PostgreSQL needs pg_control, which comes last — unless the kill fell between
        // its move into place and the marker's removal, when every file is whole already.
        const control = existsSync(join(dataDir(), 'global/pg_control'));
        expect(control ? readdirSync(join(dataDir(), '.tidemark-restore')).filter((n) => /^\d+$/.test(n) || n === 'pg_control') : []).toEqual([]);
        return 'interrupted';
      }
      // (backup_label is renamed to backup_label.old once a started server has recovered.)
      expect(['PG_VERSION', 'global', 'base'].filter((e) => !entries.includes(e))).toEqual([]);
      expect(existsSync(join(dataDir(), 'global/pg_control'))).toBe(true);
      return 'whole';
    },
    async settle() {
      if (existsSync(join(dataDir(), 'postmaster.pid'))) {
        await runTool(pgBin('pg_ctl'), ['-D', dataDir(), '-m', 'immediate', '-w', 'stop'], { cwd: dataDir(), ...serverUser() }).catch(() => undefined);
      }
    },
    async reset() {
      await this.settle();
      rmSync(dataDir(), { recursive: true, force: true });
    },
  });

  const mariaLogical: RestoreKind = {
    name: 'MariaDB logical into a database',
    args: (force) => ['restore', 'shop', '--backup', ids.maria, '--to', maria.url('restored'), ...(force ? ['--force'] : []), '--config', cfg.path],
    async state() {
      const tables = await maria.sql("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'restored'");
      if ((await maria.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'restored'")) === '0') return 'absent';
      const names = tables.split('\n').filter(Boolean);
      if (names.length === 0) return 'empty';
      if (names.includes(UNFINISHED_RESTORE_TABLE)) return 'interrupted';
      expect(await fingerprintMysqlDatabaseAt(maria.url('restored'))).toEqual(mariaSource);
      return 'whole';
    },
    settle: async () => undefined,
    reset: async () => void (await maria.sql('DROP DATABASE IF EXISTS restored')),
  };

  // Starting the restored server costs seconds a kill: that variant runs under TIDEMARK_SOAK=1.
  // (The physical case was soak-only for a while: it once hung, which was this test's own pg_ctl
  // start without a log file, found and fixed 2026-12-01.)
  const kinds = SOAK ? [pgLogical, physical(false), physical(true), mariaLogical] : [pgLogical, physical(false), mariaLogical];
  /** How long one whole restore of each kind takes from the process's start (ms): the span the moments fall in. */
  const spans = new Map<RestoreKind, number>();
  async function span(kind: RestoreKind): Promise<number> {
    if (!spans.has(kind)) {
      await kind.reset();
      const timed = await runCli(kind.args(false));
      expect([timed.code, timed.stderr]).toEqual([0, expect.any(String)]);
      await kind.reset();
      spans.set(kind, timed.seconds * 1000);
    }
    return spans.get(kind)!;
  }

  /** The last line of the target's refusal, as the in-process command gives it. */
  async function refusal(kind: RestoreKind): Promise<unknown> {
    const [, source, , backup, , to, ...rest] = kind.args(false);
    const start = rest.includes('--start') ? { start: true, port } : {};
    return runRestore(cfg.config, source, { backup, to, ...start, progress }).then(
      () => 'restored',
      (e: unknown) => e,
    );
  }

  it.each(kinds.map((k, i) => [k.name, i] as const))('%s: a killed restore is absent, empty, marked interrupted or whole; --force then restores it', async (_name, index) => {
    const kind = kinds[index];
    const whole = await span(kind);
    const next = random(SEED + index);
    const seen: Record<TargetState, number> = { absent: 0, empty: 0, interrupted: 0, whole: 0 };
    let interrupted = 0;
    let force = false;
    for (let i = 0; i < KILLS; i++) {
      const moment = next() * whole * 1.1;
      const run = await signalCliAt(kind.args(force), moment, 'SIGKILL');
      // The tools lose their pipes with the CLI and end (a started server is stopped by settle).
      expect(await waitForExit(run.orphans.filter((p) => commandOf(p) !== 'postgres'))).toEqual([]);
      await kind.settle();
      const state = await kind.state();
      seen[state]++;
      const at = { kill: i, moment: Math.round(moment), exit: run.code, state, force };
      expect(run.code !== 0 || state === 'whole' ? 'ok' : at).toBe('ok');
      if (run.signal === 'SIGKILL') interrupted++;
      if (state === 'interrupted') {
        // The next restore without --force refuses, naming the leftover and the flag.
        const refused = await refusal(kind);
        expect(refused).toBeInstanceOf(TargetNotEmpty);
        expect((refused as Error).message).toMatch(/holds an interrupted restore .*; pass --force to replace it/);
      }
      // A whole target is replaced only by a new one (a data directory is never emptied by --force).
      if (state === 'whole') await kind.reset();
      force = state === 'interrupted';
    }
    expect(interrupted).toBeGreaterThanOrEqual(Math.ceil(KILLS / 2));
    // The documented way out: --force over an interrupted restore, and the result equals the source.
    const finished = await runCli(kind.args(force));
    expect([finished.code, finished.stderr]).toEqual([0, expect.any(String)]);
    if (kind.name.includes('physical')) {
      // The data directory starts and holds what the source held.
      if (!kind.args(false).includes('--start')) {
        const user = serverUser();
        if (user) await runTool('chown', ['-R', `${user.uid}:${user.gid}`, dataDir()]);
        // -l: without a log file the server keeps pg_ctl's stdout and stderr, and runTool (which
        // waits for them to close) would wait for the server's end — the "hang" of earlier soaks.
        await runTool(pgBin('pg_ctl'), ['-D', dataDir(), '-o', `-p ${port} -c listen_addresses=localhost`, '-l', join(dataDir(), 'test-start.log'), '-w', 'start'], { cwd: dataDir(), ...serverUser() });
      }
      try {
        expect(await fingerprintDatabaseAt(`postgres://postgres@127.0.0.1:${port}/app`)).toEqual(pgSource);
      } finally {
        await kind.settle();
      }
    } else {
      expect(await kind.state()).toBe('whole');
    }
    await kind.reset();
    process.stderr.write(`${kind.name}: ${KILLS} kills, ${interrupted} inside the run; targets ${JSON.stringify(seen)}\n`);
  }, testTimeout(900_000));

  it.each(kinds.map((k, i) => [k.name, i] as const))(`%s: SIGTERM exits within ${SIGTERM_EXIT_SECONDS} s, its tools gone, the target absent, empty or whole`, async (_name, index) => {
    const kind = kinds[index];
    const whole = await span(kind);
    await kind.reset();
    const next = random(SEED + 10 + index);
    for (let i = 0; i < TERMS; i++) {
      const moment = (0.3 + 0.6 * next()) * whole;
      const run = await signalCliAt(kind.args(false), moment, 'SIGTERM');
      const orphans = run.orphans.filter((p) => commandOf(p) !== 'postgres');
      await kind.settle();
      const state = await kind.state();
      const at = { term: i, moment: Math.round(moment), exit: run.code, seconds: run.exitSeconds, orphans, state, stderr: run.stderr.trim().split('\n').pop() };
      // A signal before the CLI has loaded (no handler yet) ends it by default: nothing had begun.
      const stopped = run.code === 130 || run.signal === 'SIGTERM';
      const ok = run.exitSeconds <= SIGTERM_EXIT_SECONDS && orphans.length === 0 && (run.code === 0 ? state === 'whole' : stopped && state !== 'interrupted');
      expect(ok ? 'ok' : at).toBe('ok');
      process.stderr.write(`${kind.name}: SIGTERM ${i} at ${at.moment} ms: exit ${run.code ?? run.signal} after ${run.exitSeconds.toFixed(2)} s, target ${state}\n`);
      await kind.reset();
    }
  }, testTimeout(300_000));
});
