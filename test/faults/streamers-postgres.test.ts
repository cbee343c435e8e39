import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, readdirSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runBackup } from '../../lib/core/commands/backup';
import { runList } from '../../lib/core/commands/list';
import { runRestore } from '../../lib/core/commands/restore';
import { runStream } from '../../lib/core/commands/wal';
import { runVerify } from '../../lib/core/commands/verify';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import { pgBin } from '../../lib/core/engines/postgres/tools';
import { WalArchive } from '../../lib/core/engines/postgres/wal/wal-archive';
import { parseLsn } from '../../lib/core/engines/postgres/wal/wal-names';
import { freePort } from '../../lib/core/free-port';
import { serverUserWhenRoot } from '../../lib/core/process/os-user';
import { runTool } from '../../lib/core/process/tool';
import { silentProgress as progress } from '../../lib/core/progress';
import { Repository } from '../../lib/core/repository/repository';
import { startThrowawayPostgres, type ThrowawayPostgres } from '../../lib/local/throwaway-postgres';
import { psql, usePostgres } from '../harness/postgres';
import { spawnCli, useTempDir, writeConfig } from '../harness/tidemark';
import { random as seededRandom } from './fault-injector';
import { untilWith } from '../harness/until';
import { missingFrom } from '../harness/rows';

/**
 * Issue 11 and 7 for PostgreSQL: the WAL streamer (`tidemark stream`) under a steady load while it
 * is SIGKILLed and restarted, while the server restarts (fast and immediate shutdown) under it, and
 * across a failover to a promoted standby. The promise each time: `restore --latest` brings back
 * every row the source committed up to the archive's durable point, and list/verify show no gap —
 * or, where WAL really was lost, the gap is logged, counted and shown.
 *
 * TIDEMARK_SOAK=1: more kills and restarts.
 */
const SOAK = process.env.TIDEMARK_SOAK === '1';
jest.setTimeout(SOAK ? 1_800_000 : 240_000);

const serverUser = () => serverUserWhenRoot('postgres');

const until = untilWith({ timeoutMs: 60_000, everyMs: 100, ignoreErrors: true });

const idsOf = async (query: () => Promise<string>) => (await query()).split(',').filter(Boolean).map(Number);
const LEDGER_IDS = "select coalesce(string_agg(id::text, ',' order by id), '') from ledger";

/**
 * One ledger row per transaction, as fast as psql goes; a commit that fails (the server is
 * restarting) is retried. `acknowledged` holds the ids whose commit returned.
 */
function ledgerLoad(sql: (s: string) => Promise<string>): { acknowledged: number[]; stop(): Promise<void> } {
  const acknowledged: number[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      try {
        const out = await sql(`insert into ledger (note) select repeat('l', 400) from generate_series(1, 20) returning id`);
        acknowledged.push(...out.split('\n').map(Number));
        if (i % 25 === 24) await sql('select pg_switch_wal()');
      } catch {
        await sleep(100); // server down: the load waits like an application would
      }
    }
  })();
  return {
    acknowledged,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

async function archiveOf(config: TidemarkConfig): Promise<WalArchive> {
  return new WalArchive(await Repository.open(config), 'app');
}

async function waitDurable(config: TidemarkConfig, lsn: string, timeoutMs = 60_000): Promise<void> {
  const archive = await archiveOf(config);
  await until(`the archive to reach ${lsn}`, async () => {
    const point = await archive.newestDurablePoint();
    return point !== undefined && parseLsn(point.lsn) >= parseLsn(lsn);
  }, timeoutMs);
}

/**
 * The server's flush point, then a segment switch: the archive reaches that point once the segment
 * is archived whole. (A partial's end can fall a few bytes short when the last record ends in
 * zeros, which look like the segment's padding.)
 */
async function flushAndSwitch(sql: (s: string) => Promise<string>): Promise<string> {
  const lsn = await sql('select pg_current_wal_flush_lsn()');
  await sql('select pg_switch_wal()');
  return lsn;
}

/** `restore --latest --start` into a new directory; returns the restored ledger's ids, server stopped again. */
async function restoreLatestIds(config: TidemarkConfig, dir: string): Promise<number[]> {
  const port = await freePort();
  await runRestore(config, 'app', { latest: true, to: dir, start: true, port, progress });
  try {
    return await idsOf(() => psql(`postgres://postgres@127.0.0.1:${port}/app`, LEDGER_IDS));
  } finally {
    await runTool(pgBin('pg_ctl'), ['-D', dir, '-m', 'immediate', '-w', 'stop'], { cwd: dir, ...serverUser() }).catch(() => undefined);
  }
}

/** When the streamer's slot is active again on `pg`. */
const slotActive = (pg: { sql(s: string): Promise<string> }) => async () => (await pg.sql("select count(*) from pg_replication_slots where slot_name = 'tidemark_app' and active")) === '1';

describe('WAL streamer: SIGKILLed and restarted, and the server restarted under it, under load', () => {
  const pg = usePostgres({ fast: false, settings: { wal_level: 'replica', max_wal_senders: 10, max_replication_slots: 10 } });
  const tmp = useTempDir('tidemark-streamer-pg-');
  let cfg: { path: string; config: TidemarkConfig };
  let streamer: ChildProcess | undefined;
  let output = '';
  const spool = () => join(tmp.path, 'spool');
  const start = () => {
    const child = spawnCli(['stream', 'app', '--spool', spool(), '--config', cfg.path]);
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    return child;
  };

  beforeAll(async () => {
    chmodSync(tmp.path, 0o755); // the restored server's OS user reads its data dir under it
    await pg.createDatabase('app');
    await pg.sql('create table ledger (id bigserial primary key, note text, at timestamptz default clock_timestamp())', 'app');
    cfg = writeConfig(tmp.path, 'tidemark.yaml', {
      repository: `file://${join(tmp.path, 'repo')}`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: pg.url('app'), stream: { flushSeconds: 1 } } },
    });
  });

  afterAll(async () => {
    if (streamer && streamer.exitCode === null && streamer.signalCode === null) {
      streamer.kill('SIGKILL');
      await once(streamer, 'close');
    }
  });

  it('loses no committed row: several SIGKILLs, then a fast and an immediate server restart; restore --latest has every row, verify no gap', async () => {
    const seed = Number(process.env.TIDEMARK_FAULT_SEED ?? Date.now() % 2147483647);
    const random = seededRandom(seed);
    const reconnects: { mode: string; seconds: number }[] = [];
    const phases: Record<string, number> = {};
    let t = Date.now();
    const phase = (name: string) => {
      phases[name] = (Date.now() - t) / 1000;
      t = Date.now();
    };
    streamer = start();
    await until('the streamer to stream', slotActive(pg), 60_000);
    // The base backup after the streamer started: the archive continues from it.
    await runBackup(cfg.config, 'app', { type: 'full', progress });
    phase('start+backup');
    const load = ledgerLoad((s) => pg.sql(s, 'app'));
    try {
      for (let kill = 0; kill < (SOAK ? 10 : 3); kill++) {
        await sleep(500 + Math.floor(random() * 1500));
        streamer.kill('SIGKILL');
        await once(streamer, 'close');
        await sleep(300 + Math.floor(random() * 700)); // the load goes on while nobody streams
        streamer = start();
        await until('the restarted streamer to stream', slotActive(pg), 60_000);
      }
      phase('kills');
      for (const mode of SOAK ? (['fast', 'immediate', 'fast', 'immediate'] as const) : (['fast', 'immediate'] as const)) {
        await pg.restart({}, mode);
        const up = Date.now();
        await until(`the streamer to reconnect after a ${mode} restart`, slotActive(pg), 120_000);
        reconnects.push({ mode, seconds: (Date.now() - up) / 1000 });
        await sleep(1000);
      }
      phase('server restarts');
    } finally {
      await load.stop();
    }
    await waitDurable(cfg.config, await flushAndSwitch((q) => pg.sql(q, 'app')));
    streamer!.kill('SIGTERM');
    const [code] = (await once(streamer!, 'close')) as [number | null];
    expect({ code, tail: code === 0 ? '' : output.slice(-2000) }).toEqual({ code: 0, tail: '' });
    console.log(`seed ${seed}; reconnect after server restart (s): ${JSON.stringify(reconnects)}; rows acknowledged: ${load.acknowledged.length}`);

    const source = await idsOf(() => pg.sql(LEDGER_IDS, 'app'));
    expect(missingFrom(source, load.acknowledged)).toEqual([]); // the source itself lost nothing (immediate shutdown included)
    expect(load.acknowledged.length).toBeGreaterThan(100);
    phase('durable+stop');
    const verified = await runVerify(cfg.config, 'app', { progress });
    expect(verified.archive).toMatchObject({ ok: true, gaps: [], problems: [] });
    expect((await runList(cfg.config, 'app')).archive?.gaps).toEqual([]);
    phase('verify+list');
    const restored = await restoreLatestIds(cfg.config, join(tmp.path, 'restored'));
    phase('restore');
    console.log(`phases (s): ${JSON.stringify(phases)}`);
    expect({ rows: restored.length, missing: missingFrom(restored, source) }).toEqual({ rows: source.length, missing: [] });
    // Every restart was a reconnect the streamer logged, not an exit.
    expect(output).toMatch(/pg_receivewal stopped: .*reconnecting in/);
  });
});

/**
 * A TCP forwarder on a fixed port: what the streamer's URL points at, moved from the primary to the
 * promoted standby the way a DNS name or a virtual IP moves in a failover. Moving it cuts the
 * connections through it.
 */
async function tcpForwarder(target: number): Promise<{ port: number; moveTo(port: number): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    moveTo(next) {
      target = next;
      for (const s of sockets) s.destroy();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * A source whose address is a forwarder on `port` (the test moves it at failover), in a folder
 * repository under `dir`, and its streamer (flushSeconds 1) started; its JSON log lines collect in `lines`.
 */
function streamThrough(dir: string, port: number) {
  const { config } = writeConfig(dir, 'tidemark.yaml', {
    repository: `file://${join(dir, 'repo')}`,
    encryption: { key: 'env:TIDEMARK_TEST_KEY' },
    sources: { app: { engine: 'postgres', url: `postgres://postgres@127.0.0.1:${port}/app`, stream: { flushSeconds: 1 } } },
  });
  const stop = new AbortController();
  const lines: string[] = [];
  const streaming = runStream(config, 'app', { spoolDir: join(dir, 'spool'), signal: stop.signal, write: (l) => void lines.push(l) });
  streaming.catch(() => undefined);
  return { config, stop, lines, streaming };
}

describe('WAL streamer across a failover to a promoted standby', () => {
  const primary = usePostgres({ fast: false, settings: { wal_level: 'replica', hot_standby: 'on', max_wal_senders: 10, max_replication_slots: 10 } });
  const tmp = useTempDir('tidemark-streamer-failover-');
  let standby: ThrowawayPostgres | undefined;
  let forwarder: Awaited<ReturnType<typeof tcpForwarder>> | undefined;

  afterAll(async () => {
    await forwarder?.close();
    await standby?.stop();
  }, 120_000);

  it('follows the promotion through the moved address: the .history file and timeline 2 archived, its slot created on the new primary, no gap, restore --latest reaches the new primary’s rows', async () => {
    chmodSync(tmp.path, 0o755);
    await primary.createDatabase('app');
    await primary.sql('create table ledger (id bigserial primary key, note text)', 'app');
    standby = await startThrowawayPostgres({ standbyOf: { port: primary.port, binDir: primary.binDir }, fast: false });
    const s = standby;
    forwarder = await tcpForwarder(primary.port);
    const { config, stop, lines, streaming } = streamThrough(tmp.path, forwarder.port);
    let failedOverAt = 0;
    let streamingAgainAfter = 0;
    try {
      await until('the streamer on the primary', slotActive(primary));
      await runBackup(config, 'app', { type: 'full', progress });
      const load = ledgerLoad((q) => primary.sql(q, 'app'));
      await sleep(3000);
      await load.stop();
      const flushed = await flushAndSwitch((q) => primary.sql(q, 'app'));
      // The standby has everything the primary flushed (so the streamer archived nothing it lacks).
      await until('the standby to catch up', async () => (await s.sql(`select pg_last_wal_replay_lsn() >= '${flushed}'`)) === 't');
      await waitDurable(config, flushed);

      // The failover: the primary dies, the standby is promoted, the address moves.
      await runTool(pgBin('pg_ctl'), ['-D', primary.dataDir, '-m', 'immediate', '-w', 'stop'], { cwd: primary.dir, ...serverUser() });
      await s.sql('select pg_promote(true, 60)');
      forwarder.moveTo(s.port);
      failedOverAt = Date.now();
      await until('the streamer on the new primary', slotActive(s), 120_000).catch((e: Error) => {
        throw new Error(`${e.message}\nspool: ${readdirSync(join(tmp.path, 'spool')).join(' ')}\n${lines.join('')}`);
      });
      streamingAgainAfter = (Date.now() - failedOverAt) / 1000;

      const after = ledgerLoad((q) => s.sql(q, 'app'));
      await sleep(2000);
      await after.stop();
      await s.sql("insert into ledger (note) values ('last row, on the new primary')", 'app');
      const newFlushed = await flushAndSwitch((q) => s.sql(q, 'app'));
      await waitDurable(config, newFlushed).catch(async (e: Error) => {
        const names = (await (await archiveOf(config)).list()).map((o) => o.name);
        throw new Error(`${e.message}\narchive: ${names.join(' ')}\nspool: ${readdirSync(join(tmp.path, 'spool')).join(' ')}\n${lines.join('')}`);
      });
    } finally {
      stop.abort();
      await streaming;
    }
    console.log(`failover: streaming from the promoted standby ${streamingAgainAfter} s after the address moved`);
    const names = (await (await archiveOf(config)).list()).map((o) => o.name);
    expect(names).toContain('00000002.history');
    expect(names.some((n) => /^00000002\/[0-9A-F]{24}$/.test(n))).toBe(true);
    expect(await s.sql("select count(*) from pg_replication_slots where slot_name in ('tidemark_app', 'tidemark_app_archived')")).toBe('2');
    expect(lines.filter((l) => /"WalGap"|WalGapSegments/.test(l))).toEqual([]);

    const listed = await runList(config, 'app');
    expect(listed.archive?.gaps).toEqual([]);
    expect(listed.window?.to && listed.window.to > listed.backups[0].restorePoint).toBe(true);
    expect((await runVerify(config, 'app', { progress })).archive).toMatchObject({ ok: true, gaps: [], problems: [] });
    const source = await idsOf(() => s.sql(LEDGER_IDS, 'app'));
    const restored = await restoreLatestIds(config, join(tmp.path, 'restored'));
    expect({ rows: restored.length, last: restored.at(-1) }).toEqual({ rows: source.length, last: source.at(-1) });
  });
});

describe('WAL streamer across a failover to a standby that lacked the newest WAL', () => {
  const tmp = useTempDir('tidemark-streamer-diverged-');
  const cleanup: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
  }, 120_000);

  it('the archive holds the old primary’s WAL past the fork: the streamer says so (WalTimelineDiverged), follows the new timeline from the fork, no gap, and restore --latest is the new primary’s state', async () => {
    chmodSync(tmp.path, 0o755);
    const primary = await startThrowawayPostgres({ fast: false, settings: { wal_level: 'replica', hot_standby: 'on', max_wal_senders: 10, max_replication_slots: 10 } });
    cleanup.push(() => primary.stop());
    await primary.createDatabase('app');
    await primary.sql('create table ledger (id bigserial primary key, note text)', 'app');
    const standby = await startThrowawayPostgres({ standbyOf: { port: primary.port, binDir: primary.binDir }, fast: false });
    cleanup.push(() => standby.stop());
    const forwarder = await tcpForwarder(primary.port);
    cleanup.push(() => forwarder.close());
    const { config, stop, lines, streaming } = streamThrough(tmp.path, forwarder.port);
    const lost: number[] = [];
    try {
      await until('the streamer on the primary', slotActive(primary));
      await runBackup(config, 'app', { type: 'full', progress });
      await primary.sql("insert into ledger (note) select 'both' from generate_series(1, 100)", 'app');
      const shared = await primary.sql('select pg_current_wal_flush_lsn()');
      await until('the standby to catch up', async () => (await standby.sql(`select pg_last_wal_replay_lsn() >= '${shared}'`)) === 't');
      // The standby stops receiving; the primary goes on for three more segments, all archived.
      await standby.sql("alter system set primary_conninfo = ''; select pg_reload_conf();");
      await until('the standby to stop receiving', async () => (await standby.sql('select count(*) from pg_stat_wal_receiver')) === '0');
      for (let i = 0; i < 3; i++) {
        lost.push(...(await primary.sql("insert into ledger (note) select repeat('o', 300) from generate_series(1, 300) returning id", 'app')).split('\n').map(Number));
        await primary.sql('select pg_switch_wal()');
      }
      await primary.sql("insert into ledger (note) values ('only on the old primary')", 'app');
      await waitDurable(config, await flushAndSwitch((q) => primary.sql(q, 'app')));

      await runTool(pgBin('pg_ctl'), ['-D', primary.dataDir, '-m', 'immediate', '-w', 'stop'], { cwd: primary.dir, ...serverUser() });
      await standby.sql('select pg_promote(true, 60)');
      forwarder.moveTo(standby.port);
      await until('the divergence to be noticed', async () => lines.some((l) => l.includes('"error":"WalTimelineDiverged"')), 60_000).catch((e: Error) => {
        throw new Error(`${e.message}: ${lines.join('')}`);
      });
      await until('the streamer on the new primary', slotActive(standby), 60_000);
      await standby.sql("insert into ledger (note) values ('on the new primary')", 'app');
      await waitDurable(config, await flushAndSwitch((q) => standby.sql(q, 'app'))).catch((e: Error) => {
        throw new Error(`${e.message}: ${lines.join('')}`);
      });
    } finally {
      stop.abort();
      await streaming;
    }
    expect(lines.some((l) => l.includes('"WalTimelineDivergences":1'))).toBe(true);
    expect(lines.filter((l) => /"WalGap"|WalGapSegments/.test(l))).toEqual([]);
    const listed = await runList(config, 'app');
    expect(listed.archive?.gaps).toEqual([]);
    expect(listed.archive?.runs.map((r) => r.timeline)).toEqual(['00000001', '00000002']);
    expect((await runVerify(config, 'app', { progress })).archive).toMatchObject({ ok: true, gaps: [] });
    const source = await idsOf(() => standby.sql(LEDGER_IDS, 'app'));
    const restored = await restoreLatestIds(config, join(tmp.path, 'restored'));
    // The new primary's ledger exactly: the 100 shared rows and its own, none of the old primary's last ones.
    expect(restored).toEqual(source);
    expect({ restored: restored.length, onlyOnTheOldPrimary: lost.length }).toEqual({ restored: 101, onlyOnTheOldPrimary: 900 });
  });
});

describe('WAL streamer down longer than the server keeps WAL for its slot (max_slot_wal_keep_size)', () => {
  const pg = usePostgres({ settings: { wal_level: 'replica', max_wal_senders: 10, max_replication_slots: 10, max_slot_wal_keep_size: 32, wal_keep_size: 0 } });
  const tmp = useTempDir('tidemark-streamer-lost-slot-');

  it('the slot is lost; the restarted streamer resumes where the server is, logs the gap and counts it, and list/verify show it', async () => {
    await pg.createDatabase('app');
    await pg.sql('create table ledger (id bigserial primary key, note text)', 'app');
    const { config } = writeConfig(tmp.path, 'tidemark.yaml', {
      repository: `file://${join(tmp.path, 'repo')}`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: pg.url('app'), stream: { flushSeconds: 1 } } },
    });
    const spool = join(tmp.path, 'spool');
    const stream = () => {
      const stop = new AbortController();
      const lines: string[] = [];
      const done = runStream(config, 'app', { spoolDir: spool, signal: stop.signal, write: (l) => void lines.push(l) });
      done.catch(() => undefined);
      return { lines, stop: () => (stop.abort(), done) };
    };
    const first = stream();
    try {
      await until('the streamer', slotActive(pg));
      await pg.sql("insert into ledger (note) select repeat('a', 200) from generate_series(1, 2000)", 'app');
      await waitDurable(config, await flushAndSwitch((q) => pg.sql(q, 'app')));
    } finally {
      await first.stop();
    }
    // The outage: 6 segments (96 MiB) written while nobody streams, past the 32 MB the slots may hold.
    for (let i = 0; i < 6; i++) {
      await pg.sql("insert into ledger (note) select repeat('b', 200) from generate_series(1, 2000)", 'app');
      await pg.sql('select pg_switch_wal()', 'app');
    }
    await pg.sql('checkpoint');
    await pg.sql('checkpoint');
    expect(await pg.sql("select string_agg(wal_status, ',') from pg_replication_slots where slot_name like 'tidemark_app%'")).toBe('lost,lost');

    const second = stream();
    try {
      await until('the gap to be logged', async () => second.lines.some((l) => l.includes('"error":"WalGap"')), 60_000).catch((e: Error) => {
        throw new Error(`${e.message}: ${second.lines.join('')}`);
      });
      await until('streaming again', slotActive(pg));
      await pg.sql("insert into ledger (note) values ('after the outage')", 'app');
      await waitDurable(config, await flushAndSwitch((q) => pg.sql(q, 'app')));
    } finally {
      await second.stop();
    }
    const gapLine = JSON.parse(second.lines.find((l) => l.includes('"error":"WalGap"'))!) as { level: string; from: string; to: string; count: number };
    expect(gapLine).toMatchObject({ level: 'error', count: expect.any(Number) });
    expect(gapLine.count).toBeGreaterThanOrEqual(4);
    expect(second.lines.some((l) => l.includes(`"WalGapSegments":${gapLine.count}`))).toBe(true);
    expect(second.lines.some((l) => l.includes('"error":"WalResumeRefused"'))).toBe(true);
    const listed = await runList(config, 'app');
    expect({ listed: listed.archive?.gaps, lines: listed.archive?.gaps[0]?.from === gapLine.from ? [] : second.lines }).toEqual({
      listed: [{ timeline: '00000001', from: gapLine.from, to: gapLine.to, count: gapLine.count }],
      lines: [],
    });
    const verified = await runVerify(config, 'app', { progress });
    expect(verified.ok).toBe(false);
    expect(verified.archive?.problems).toEqual([expect.stringContaining(`WAL gap on timeline 00000001: segments ${gapLine.from} to ${gapLine.to}`)]);
    // The slots hold WAL again (recreated), so the next outage within the limit loses nothing.
    expect(await pg.sql("select string_agg(wal_status, ',' order by slot_name) from pg_replication_slots where slot_name like 'tidemark_app%'")).toMatch(/^(reserved|extended),(reserved|extended)$/);
  });
});
