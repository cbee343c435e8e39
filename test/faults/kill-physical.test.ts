import { join } from 'node:path';
import { runBackup } from '../../lib/core/commands/backup';
import { runList } from '../../lib/core/commands/list';
import { runRetention } from '../../lib/core/commands/retention';
import { runVerify } from '../../lib/core/commands/verify';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import { silentProgress as progress } from '../../lib/core/progress';
import { loadSampleData } from '../../lib/local/sample-postgres';
import { usePostgres } from '../harness/postgres';
import { runCli, useTempDir, writeConfig } from '../harness/tidemark';
import { random } from './fault-injector';
import { ageLeftovers, killCount, leftovers, signalCliAt, SIGTERM_EXIT_SECONDS, SOAK, testTimeout, waitForExit } from './kill-moments';

/**
 * Physical backups (full and incr) SIGKILLed at seeded moments across their whole run (issue 11):
 * never a listed backup that does not verify, the next backup runs at once, and retention's
 * garbage collection removes every part the killed runs left. SIGTERM: out within 10 s, nothing
 * half committed, the tools gone.
 */
const SEED = 1202;
const KILLS = killCount(3);
const TERMS = SOAK ? 6 : 1;

describe(`SIGKILL of physical backups at ${KILLS} moments per type, SIGTERM at ${TERMS} (seed ${SEED})`, () => {
  const pg = usePostgres({ dataChecksums: true });
  const tmp = useTempDir('tidemark-kill-physical-');
  let cfg: { path: string; config: TidemarkConfig };
  const ids = async () => (await runList(cfg.config, 'app')).backups.map((b) => b.id);

  beforeAll(async () => {
    await pg.createDatabase('app');
    await loadSampleData(pg.url('app'), { pgbenchScale: 1, toastMegabytes: 4 });
    cfg = writeConfig(tmp.path, 'tidemark.yaml', {
      repository: `file://${tmp.path}/repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      // Retention keeps every backup made here: its garbage collection is what is tested.
      retention: { full: 1000, diff: 1000, logical: 1000, longTerm: { daily: 0, weekly: 0, monthly: 0, yearly: 0 } },
      sources: { app: { engine: 'postgres', url: pg.url('app') } },
    });
  }, 180_000);

  it.each(['full', 'incr'] as const)('--type %s: never a listed backup that does not verify, and the next one always works', async (type) => {
    const args = ['backup', 'app', '--type', type, '--config', cfg.path];
    // An incr needs a full below it; the timed run is one of this type.
    if (type === 'incr') expect((await runCli(['backup', 'app', '--type', 'full', '--config', cfg.path])).code).toBe(0);
    const timed = await runCli(args);
    expect([timed.code, timed.stderr]).toEqual([0, expect.any(String)]);
    const span = timed.seconds * 1000;
    const next = random(SEED + (type === 'incr' ? 1 : 0));
    let interrupted = 0;
    for (let i = 0; i < KILLS; i++) {
      await pg.sql(`UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 97 = ${i}`, 'app');
      const before = await ids();
      const moment = next() * span * 1.1;
      const run = await signalCliAt(args, moment, 'SIGKILL');
      // pg_basebackup and zstd lose their pipes with the CLI and go: nothing runs on.
      expect(await waitForExit(run.orphans)).toEqual([]);
      const after = await ids();
      const at = { kill: i, moment: Math.round(moment), exit: run.code, listed: after.length - before.length };
      expect([0, 1].includes(at.listed) && (run.code !== 0 || at.listed === 1) ? 'ok' : at).toBe('ok');
      if (run.signal === 'SIGKILL' && at.listed === 0) interrupted++;
    }
    expect(interrupted).toBeGreaterThanOrEqual(Math.ceil(KILLS / 2));
    expect((await runVerify(cfg.config, 'app', { progress })).ok).toBe(true);
    // The next backup runs at once: the dead runs' leases do not keep it out.
    const listed = await ids();
    const after = await runBackup(cfg.config, 'app', { type, progress });
    expect(await ids()).toEqual([...listed, after.id]);
  }, testTimeout(600_000));

  it(`SIGTERM of a full backup: out within ${SIGTERM_EXIT_SECONDS} s, nothing half committed, its tools gone, the next one works`, async () => {
    const args = ['backup', 'app', '--type', 'full', '--config', cfg.path];
    const timed = await runCli(args);
    expect(timed.code).toBe(0);
    const next = random(SEED + 2);
    for (let i = 0; i < TERMS; i++) {
      const before = await ids();
      // Late enough that the backup has begun (start-up is ~0.7 s), before its end.
      const moment = (0.3 + 0.6 * next()) * timed.seconds * 1000;
      const run = await signalCliAt(args, moment, 'SIGTERM');
      const listed = (await ids()).length - before.length;
      const at = { term: i, moment: Math.round(moment), exit: run.code, seconds: run.exitSeconds, listed, orphans: run.orphans, stderr: run.stderr.trim().split('\n').pop() };
      // A signal before the CLI has loaded (no handler yet) ends it by default: nothing had begun.
      const stopped = run.code === 130 || run.signal === 'SIGTERM';
      const ok = run.exitSeconds <= SIGTERM_EXIT_SECONDS && run.orphans.length === 0 && (run.code === 0 ? listed === 1 : stopped && listed === 0);
      expect(ok ? 'ok' : at).toBe('ok');
      process.stderr.write(`SIGTERM ${i} at ${at.moment} ms: exit ${run.code ?? run.signal} after ${run.exitSeconds.toFixed(2)} s, ${listed} listed\n`);
    }
    expect((await runCli(args)).code).toBe(0);
    expect((await runVerify(cfg.config, 'app', { progress })).ok).toBe(true);
  }, testTimeout(300_000));

  it('retention collects what the killed runs left, and every listed backup still verifies', async () => {
    const backupsDir = join(tmp.path, 'repo/app/backups');
    const listed = await ids();
    const left = leftovers(backupsDir, listed);
    expect(left.length).toBeGreaterThan(0);
    // A dead run's parts wait out its lease (24 h, the longest a backup may run) and a day's grace;
    // its uploads in flight (temp files) go once a day old. Two days pass:
    const now = new Date(Date.now() + 49 * 3_600_000);
    ageLeftovers(backupsDir, left, 49);
    const dry = await runRetention(cfg.config, 'app', { now });
    expect(dry.sources[0].delete.filter((d) => d.what !== 'unfinished')).toEqual([]);
    await runRetention(cfg.config, 'app', { apply: true, now });
    expect(leftovers(backupsDir, listed)).toEqual([]);
    expect(await ids()).toEqual(listed);
    expect((await runVerify(cfg.config, 'app', { progress })).ok).toBe(true);
  }, testTimeout(300_000));
});
