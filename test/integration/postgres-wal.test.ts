import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { once } from 'node:events';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runList } from '../../lib/core/commands/list';
import { runVerify } from '../../lib/core/commands/verify';
import { runStream } from '../../lib/core/commands/wal';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import { WalArchive, walAttributes } from '../../lib/core/engines/postgres/wal/wal-archive';
import { parseLsn, parseSegmentName, partialArchiveName, segmentArchiveName, segmentStartLsn } from '../../lib/core/engines/postgres/wal/wal-names';
import { WalPrefetcher } from '../../lib/core/engines/postgres/wal/wal-prefetch';
import { pushWalFile } from '../../lib/core/engines/postgres/wal/wal-push';
import { IntegrityError } from '../../lib/core/errors';
import { silentProgress as progress } from '../../lib/core/progress';
import { Repository } from '../../lib/core/repository/repository';
import type { ThrowawayPostgres } from '../../lib/local/throwaway-postgres';
import { usePostgres } from '../harness/postgres';
import { useS3 } from '../harness/s3';
import { runCli, spawnCli, useTempDir, writeConfig } from '../harness/tidemark';
import { untilWith } from '../harness/until';

const SEGMENT = 16 * 1024 * 1024;
const sh = (command: string) => promisify(execFile)('sh', ['-c', command], { timeout: 60_000 });

const until = untilWith({ timeoutMs: 60_000, everyMs: 200 });

/** Writes some WAL and closes the segment; returns the name of the segment it closed. */
async function fillAndSwitch(pg: ThrowawayPostgres, rows = 2000): Promise<string> {
  await pg.sql(`insert into ledger (note) select repeat('x', 200) from generate_series(1, ${rows})`, 'app');
  return pg.sql('select pg_walfile_name(pg_switch_wal())', 'app');
}

function archiveOf(config: TidemarkConfig): Promise<WalArchive> {
  return Repository.open(config).then((r) => new WalArchive(r, 'app'));
}

async function archivedNames(config: TidemarkConfig): Promise<string[]> {
  return (await (await archiveOf(config)).list()).map((o) => o.name);
}

describe('continuous WAL: stream, wal-push, wal-fetch, prefetch', () => {
  const pg = usePostgres({ settings: { wal_level: 'replica', max_wal_senders: 10, max_replication_slots: 10 }, fast: false });
  const tmp = useTempDir('tidemark-wal-');
  let cfg: { path: string; config: TidemarkConfig };
  const repoDir = () => join(tmp.path, 'repo');

  beforeAll(async () => {
    await pg.createDatabase('app');
    await pg.sql('create table ledger (id bigserial primary key, note text, at timestamptz default clock_timestamp())', 'app');
    cfg = writeConfig(tmp.path, 'tidemark.yaml', {
      repository: `file://${repoDir()}`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: pg.url('app'), stream: { flushSeconds: 1 } } },
    });
  });

  it('archives completed segments and, every flush interval, the open one as a new partial generation byte-equal to the server’s WAL', async () => {
    const stop = new AbortController();
    const lines: string[] = [];
    const streaming = runStream(cfg.config, 'app', { spoolDir: join(tmp.path, 'spool'), signal: stop.signal, write: (l) => void lines.push(l) });
    try {
      await until('the streamer to start', async () => lines.some((l) => l.includes('streamer started')));
      await until('the slot', async () => (await pg.sql("select count(*) from pg_replication_slots where slot_name = 'tidemark_app' and active")) === '1');
      const closed = [await fillAndSwitch(pg), await fillAndSwitch(pg)];
      await until('the completed segments', async () => {
        const names = await archivedNames(cfg.config);
        return closed.every((s) => names.includes(segmentArchiveName(s)));
      });

      const generations: { name: string; stored: Buffer }[] = [];
      for (let round = 0; round < 2; round++) {
        await pg.sql(`insert into ledger (note) select 'round ${round}' from generate_series(1, 500)`, 'app');
        const flushed = await pg.sql('select pg_current_wal_flush_lsn()', 'app');
        const flushedAt = Date.now();
        const segment = await pg.sql(`select pg_walfile_name('${flushed}')`, 'app');
        const archive = await archiveOf(cfg.config);
        // The newest generation of the open segment that reaches the server's flush point.
        const partial = await until(`a partial reaching ${flushed}`, async () => {
          const names = (await archive.list()).map((o) => o.name).filter((n) => n.startsWith(`${segment.slice(0, 8)}/${segment}.partial.`)).sort();
          const newest = names[names.length - 1];
          if (!newest) return undefined;
          // It reaches the flush point, or was taken well after it (the last record may end in zeros,
          // which look like the segment's padding, so `end` can fall a little short).
          const attributes = walAttributes(await archive.objects.readHeader(newest));
          return attributes && (parseLsn(attributes.end) >= parseLsn(flushed) || Date.parse(attributes.at) > flushedAt + 1500) ? newest : undefined;
        }, 20_000);
        const out = join(tmp.path, `partial-${round}`);
        await archive.objects.readToFile(partial, out);
        const upTo = Number(parseLsn(flushed) - segmentStartLsn(parseSegmentName(segment, SEGMENT).segno, SEGMENT));
        const server = readFileSync(join(pg.dataDir, 'pg_wal', segment));
        const archived = readFileSync(out);
        expect(archived.length).toBe(SEGMENT);
        expect(archived.subarray(0, upTo).equals(server.subarray(0, upTo))).toBe(true);
        generations.push({ name: partial, stored: readFileSync(join(repoDir(), 'app/wal', ...partial.split('/'))) });
      }
      // Generations rise; the earlier one is still there, unchanged.
      const [a, b] = generations.map((g) => Number(g.name.slice(-6)));
      expect(b).toBeGreaterThan(a);
      expect(readFileSync(join(repoDir(), 'app/wal', ...generations[0].name.split('/'))).equals(generations[0].stored)).toBe(true);
    } finally {
      stop.abort();
      await streaming;
    }
    expect(lines.filter((l) => l.includes('"level":"error"'))).toEqual([]);
    expect(lines.some((l) => l.includes('WalSegmentsArchived'))).toBe(true);
    // A clean stop leaves no pg_receivewal and releases the slot.
    expect(await pg.sql("select active from pg_replication_slots where slot_name = 'tidemark_app'")).toBe('f');
    // The second slot holds the server's WAL from the archive's end, not from what reached the spool.
    const point = (await (await archiveOf(cfg.config)).newestDurablePoint())!;
    const held = parseLsn(await pg.sql("select restart_lsn from pg_replication_slots where slot_name = 'tidemark_app_archived'"));
    expect(held).toBeLessThanOrEqual(parseLsn(point.lsn));
    expect(held).toBeGreaterThanOrEqual(segmentStartLsn(parseSegmentName(point.object.split('/')[1].slice(0, 24), SEGMENT).segno, SEGMENT));
  });

  it('SIGKILL under load and a restart lose nothing: the archive is continuous and covers the last committed row', async () => {
    const spool = join(tmp.path, 'spool-kill');
    const start = () => spawnCli(['stream', 'app', '--spool', spool, '--config', cfg.path]);
    let loading = true;
    let lastId = '0';
    const load = (async () => {
      for (let i = 0; loading; i++) {
        lastId = await pg.sql(`insert into ledger (note) select repeat('y', 300) from generate_series(1, 200) returning id`, 'app').then((o) => o.split('\n').pop()!);
        if (i % 10 === 9) await pg.sql('select pg_switch_wal()', 'app');
      }
    })();
    let streamer = start();
    try {
      const before = (await archivedNames(cfg.config)).length;
      await until('segments archived under load', async () => (await archivedNames(cfg.config)).length >= before + 3);
      streamer.kill('SIGKILL');
      await once(streamer, 'close');
      await new Promise((r) => setTimeout(r, 2000)); // the load goes on while nobody streams
      streamer = start();
      await new Promise((r) => setTimeout(r, 3000));
    } finally {
      loading = false;
      await load;
    }
    const lastLsn = await pg.sql('select pg_current_wal_flush_lsn()', 'app');
    const archive = await archiveOf(cfg.config);
    await until(`the archive to reach ${lastLsn}`, async () => {
      const point = await archive.newestDurablePoint();
      return point && parseLsn(point.lsn) >= parseLsn(lastLsn);
    }, 30_000);
    streamer.kill('SIGTERM');
    const [code] = (await once(streamer, 'close')) as [number];
    expect(code).toBe(0);

    const inventory = (await archive.inventory())!;
    expect(inventory.timelines.flatMap((t) => t.gaps)).toEqual([]);
    expect(inventory.timelines.flatMap((t) => t.runs)).toHaveLength(1);
    const verified = await runVerify(cfg.config, 'app', { progress });
    expect(verified.archive).toMatchObject({ ok: true, gaps: [], problems: [] });
    expect(Number(lastId)).toBeGreaterThan(0);
    // No pg_receivewal outlives its streamer (the killed one's was stopped by the restart).
    expect(execFileSync('ps', ['-eo', 'args']).toString()).not.toContain(spool);
  });

  it('a deleted segment is a gap that list and verify name', async () => {
    const names = (await archivedNames(cfg.config)).filter((n) => /^[0-9A-F]{8}\/[0-9A-F]{24}$/.test(n));
    const victim = names[Math.floor(names.length / 2)];
    const path = join(repoDir(), 'app/wal', ...victim.split('/'));
    const saved = readFileSync(path);
    unlinkSync(path);
    try {
      const segment = victim.split('/')[1];
      const listed = await runList(cfg.config, 'app');
      expect(listed.archive?.gaps).toEqual([{ timeline: '00000001', from: segment, to: segment, count: 1 }]);
      expect(listed.archive?.runs).toHaveLength(2);
      const verified = await runVerify(cfg.config, 'app', { progress });
      expect(verified.ok).toBe(false);
      expect(verified.archive?.problems).toContain(`WAL gap on timeline 00000001: segment ${segment} is missing`);
      const cli = await runCli(['verify', 'app', '--config', cfg.path]);
      expect(cli.code).toBe(3);
      expect(cli.stdout).toContain(segment);
      const list = await runCli(['list', 'app', '--config', cfg.path]);
      expect(list.stderr).toContain(`WAL gap on timeline 00000001: segment ${segment} is missing`);
    } finally {
      writeFileSync(path, saved);
    }
    expect((await runVerify(cfg.config, 'app', { progress })).archive?.ok).toBe(true);
  });

  describe('wal-push (archive_command) and wal-fetch (restore_command)', () => {
    let pushCfg: { path: string; config: TidemarkConfig };
    let segment: string;
    beforeAll(async () => {
      pushCfg = writeConfig(tmp.path, 'push.yaml', {
        repository: `file://${join(tmp.path, 'push-repo')}`,
        encryption: { key: 'env:TIDEMARK_TEST_KEY' },
        sources: { app: { engine: 'postgres', url: pg.url('app') } },
      });
      segment = await fillAndSwitch(pg);
      mkdirSync(join(tmp.path, 'pg_wal_copy'), { recursive: true });
      copyFileSync(join(pg.dataDir, 'pg_wal', segment), join(tmp.path, 'pg_wal_copy', segment));
    });

    it('pushes a segment; the same content again succeeds, different content is refused', async () => {
      const path = join(tmp.path, 'pg_wal_copy', segment);
      const first = await runCli(['wal-push', path, '--source', 'app', '--config', pushCfg.path]);
      expect(first).toMatchObject({ code: 0, stdout: `archived: 00000001/${segment}\n` });
      const again = await runCli(['wal-push', path, '--source', 'app', '--config', pushCfg.path]);
      expect(again).toMatchObject({ code: 0, stdout: `already-archived: 00000001/${segment}\n` });
      mkdirSync(join(tmp.path, 'other'), { recursive: true });
      const other = join(tmp.path, 'other', segment);
      const changed = readFileSync(path);
      changed[1000] ^= 0xff;
      writeFileSync(other, changed);
      const refused = await runCli(['wal-push', other, '--source', 'app', '--config', pushCfg.path]);
      expect(refused.code).toBe(3);
      expect(refused.stderr).toMatch(/already archived with DIFFERENT content/);
      // One key epoch serves every push.
      expect(readdirSync(join(tmp.path, 'push-repo/app/wal/keys'))).toHaveLength(1);
    });

    it('wal-fetch writes an archived segment byte-equal, and exits 1 writing nothing for one the archive lacks', async () => {
      const dest = join(tmp.path, 'fetched');
      mkdirSync(dest, { recursive: true });
      const got = await runCli(['wal-fetch', segment, join(dest, 'RECOVERYXLOG'), '--source', 'app', '--config', pushCfg.path]);
      expect(got.code).toBe(0);
      expect(readFileSync(join(dest, 'RECOVERYXLOG')).equals(readFileSync(join(tmp.path, 'pg_wal_copy', segment)))).toBe(true);
      rmSync(join(dest, 'RECOVERYXLOG'));
      const missing = await runCli(['wal-fetch', '0000000100000000000000FE', join(dest, 'RECOVERYXLOG'), '--source', 'app', '--config', pushCfg.path]);
      expect(missing.code).toBe(1);
      expect(readdirSync(dest)).toEqual([]);
      const history = await runCli(['wal-fetch', '00000005.history', join(dest, 'RECOVERYHISTORY'), '--source', 'app', '--config', pushCfg.path]);
      expect(history.code).toBe(1);
      expect(readdirSync(dest)).toEqual([]);
    });

    it('uses the newest partial when the completed segment is absent', async () => {
      const archive = await archiveOf(pushCfg.config);
      const writer = await archive.objects.writer({ epoch: 'newest' });
      const open = '0000000100000000000000F0';
      const gen1 = Buffer.alloc(SEGMENT, 0);
      gen1.write('first', 0);
      const gen2 = Buffer.alloc(SEGMENT, 0);
      gen2.write('second', 0);
      await writer.writeBytes(partialArchiveName(open, 1), gen1, { compression: pushCfg.config.compression });
      await writer.writeBytes(partialArchiveName(open, 2), gen2, { compression: pushCfg.config.compression });
      const dest = join(tmp.path, 'fetched-partial');
      expect(await archive.fetch(open, dest)).toBe('partial');
      expect(readFileSync(dest).equals(gen2)).toBe(true);
    });

    it('an archived object renamed or swapped fails authentication with a clear error', async () => {
      const archive = await archiveOf(pushCfg.config);
      const from = join(tmp.path, 'push-repo/app/wal/00000001', segment);
      const renamed = segment.slice(0, 23) + (segment[23] === 'A' ? 'B' : 'A');
      copyFileSync(from, join(tmp.path, 'push-repo/app/wal/00000001', renamed));
      const err = await archive.fetch(renamed, join(tmp.path, 'swapped')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IntegrityError);
      expect((err as Error).message).toBe(`archive object app/wal/00000001/${renamed}: segment 0 failed authentication: the object is corrupted or truncated`);
      expect(existsSync(join(tmp.path, 'swapped'))).toBe(false);
      const cli = await runCli(['wal-fetch', renamed, join(tmp.path, 'swapped'), '--source', 'app', '--config', pushCfg.path]);
      expect(cli.code).toBe(3);
      expect(cli.stderr).toContain(`archive object app/wal/00000001/${renamed}: segment 0 failed authentication`);
    });
  });

  it('the prefetcher keeps ≥ 10 segments ready ahead, and its restore_command hands them over byte-equal', async () => {
    // 12 consecutive segments, pushed as archive_command would (the inactive slot keeps them in pg_wal).
    const names: string[] = [];
    for (let i = 0; i < 12; i++) names.push(await fillAndSwitch(pg, 300));
    const { config } = writeConfig(tmp.path, 'prefetch.yaml', {
      repository: `file://${join(tmp.path, 'prefetch-repo')}`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: pg.url('app') } },
    });
    const repository = await Repository.open(config);
    for (const name of names) await pushWalFile(repository, 'app', join(pg.dataDir, 'pg_wal', name), config.compression);
    const archive = new WalArchive(repository, 'app');
    const first = names[0];
    const spool = join(tmp.path, 'prefetch');
    const prefetcher = new WalPrefetcher(archive, { spoolDir: spool, ahead: 12, parallel: 4 });
    await prefetcher.start(first);
    try {
      await until('10 segments ready ahead', async () => readdirSync(spool).filter((n) => /^[0-9A-F]{24}$/.test(n)).length >= 10, 60_000);
      const pgWal = join(tmp.path, 'replay');
      mkdirSync(pgWal, { recursive: true });
      const command = prefetcher.restoreCommand;
      for (const name of names.slice(0, 12)) {
        // Asynchronously: the prefetcher answers from this very process.
        const out = await sh(command.replace(/%f/g, name).replace(/%p/g, join(pgWal, 'RECOVERYXLOG')));
        expect(out.stdout + out.stderr).toBe('');
        const fetched = join(tmp.path, `check-${name}`);
        await archive.objects.readToFile(segmentArchiveName(name), fetched);
        expect(readFileSync(join(pgWal, 'RECOVERYXLOG')).equals(readFileSync(fetched))).toBe(true);
        rmSync(fetched);
      }
      // Past the archive's end: exit 1 (recovery ends there), and nothing written.
      rmSync(join(pgWal, 'RECOVERYXLOG'));
      const past = await sh(command.replace(/%f/g, '0000000100000000000000FD').replace(/%p/g, join(pgWal, 'RECOVERYXLOG'))).catch((e: { code: number }) => e);
      expect(past).toMatchObject({ code: 1 });
      expect(readdirSync(pgWal)).toEqual([]);
      expect(prefetcher.stats.files).toBeGreaterThanOrEqual(12);
    } finally {
      await prefetcher.stop();
    }
    expect(existsSync(spool)).toBe(false);
  });

  // Last: it drops the slot the other tests rely on.
  it('a slot lost while the streamer was away: the restart says which segments are gone, counts them, and list shows the gap', async () => {
    const before = (await (await archiveOf(cfg.config)).inventory())!;
    const lastRun = before.timelines[0].runs[before.timelines[0].runs.length - 1];
    const [lastArchived, lastEndsInPartial] = [lastRun.last, lastRun.partial !== undefined];
    await pg.sql("select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name in ('tidemark_app', 'tidemark_app_archived')");
    for (let i = 0; i < 4; i++) await fillAndSwitch(pg, 500);
    await pg.sql('checkpoint');
    await pg.sql('checkpoint');
    const stop = new AbortController();
    const lines: string[] = [];
    // A new spool (a new container): the streamer first tries to resume at the archive's end.
    const streaming = runStream(cfg.config, 'app', { spoolDir: join(tmp.path, 'spool-gap'), signal: stop.signal, write: (l) => void lines.push(l) });
    try {
      await until('the streamer to start', async () => lines.some((l) => l.includes('streamer started')));
      await until('streaming again', async () => (await pg.sql("select count(*) from pg_replication_slots where slot_name = 'tidemark_app' and active")) === '1', 30_000).catch((e) => {
        throw new Error(`${(e as Error).message}: ${lines.join('')}`);
      });
      await fillAndSwitch(pg);
      await until('the gap to be logged', async () => lines.some((l) => l.includes('"error":"WalGap"') && l.includes('were never archived')), 30_000);
    } finally {
      stop.abort();
      await streaming;
    }
    const gapLine = JSON.parse(lines.find((l) => l.includes('were never archived'))!) as { level: string; from: string; to: string; count: number };
    expect(gapLine.level).toBe('error');
    // The gap starts at the archive's last segment if only its partial is there, else after it.
    expect(parseSegmentName(gapLine.from, SEGMENT).segno).toBe(parseSegmentName(lastArchived, SEGMENT).segno + (lastEndsInPartial ? 0 : 1));
    expect(gapLine.count).toBeGreaterThanOrEqual(4);
    expect(lines.some((l) => l.includes(`"WalGapSegments":${gapLine.count}`) && l.includes('"_aws"'))).toBe(true);
    const listed = await runList(cfg.config, 'app');
    expect(listed.archive?.gaps).toEqual([{ timeline: '00000001', from: gapLine.from, to: gapLine.to, count: gapLine.count }]);
    expect((await runVerify(cfg.config, 'app', { progress })).archive?.problems).toEqual([expect.stringContaining(`WAL gap on timeline 00000001: segments ${gapLine.from} to`)]);
  });
});

/** A streaming standby of `primary` (pg_basebackup -R), run as the OS user the harness uses. */
async function startStandby(primary: ThrowawayPostgres, dir: string): Promise<{ port: number; url: (db: string) => string; sql: (s: string, db?: string) => string; promote(): void; stop(): void }> {
  const asRoot = process.getuid?.() === 0;
  const user = asRoot ? { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) } : {};
  mkdirSync(dir, { recursive: true });
  if (asRoot) execFileSync('chown', ['postgres:', dir]);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PG')));
  const run = (bin: string, args: string[]) => execFileSync(join(primary.binDir, bin), args, { cwd: dir, env: { ...env, HOME: dir }, ...user, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  const data = join(dir, 'pgdata');
  run('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '-D', data, '-R', '-X', 'stream', '--checkpoint=fast']);
  const port = primary.port + 1 + Math.floor(Math.random() * 500);
  writeFileSync(join(data, 'postgresql.conf'), `${readFileSync(join(data, 'postgresql.conf'), 'utf8')}\nport = ${port}\nunix_socket_directories = '${dir}'\n`);
  run('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '60', 'start']);
  return {
    port,
    url: (db) => `postgres://postgres@127.0.0.1:${port}/${db}`,
    sql: (s, db = 'postgres') => run('psql', ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', db, '-c', s]).trim(),
    promote: () => void run('pg_ctl', ['-D', data, '-w', 'promote']),
    stop: () => {
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } catch {
        // already stopped
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('continuous WAL across a promotion', () => {
  const primary = usePostgres({ settings: { wal_level: 'replica', hot_standby: 'on' } });
  const tmp = useTempDir('tidemark-wal-tl-');
  let standby: Awaited<ReturnType<typeof startStandby>> | undefined;
  afterAll(() => standby?.stop());

  it('follows the new timeline: the .history file is archived and new segments go under the new timeline', async () => {
    await primary.createDatabase('app');
    await primary.sql('create table ledger (id bigserial primary key, note text)', 'app');
    standby = await startStandby(primary, join(primary.dir, 'standby')); // the primary's root is the server user's
    const s = standby;
    const { config } = writeConfig(tmp.path, 'tl.yaml', {
      repository: `file://${join(tmp.path, 'repo')}`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: s.url('app'), stream: { flushSeconds: 1 } } },
    });
    const stop = new AbortController();
    const lines: string[] = [];
    const streaming = runStream(config, 'app', { spoolDir: join(tmp.path, 'spool'), signal: stop.signal, write: (l) => void lines.push(l) });
    try {
      await until('the streamer to start', async () => lines.some((l) => l.includes('streamer started')));
      await until('streaming from the standby', async () => s.sql("select count(*) from pg_stat_replication where application_name = 'tidemark'") === '1' || undefined, 30_000);
      for (let i = 0; i < 2; i++) await fillAndSwitch(primary, 500);
      await until('timeline 1 segments', async () => (await archivedNames(config)).some((n) => n.startsWith('00000001/') && !n.includes('.partial')));
      await until('the standby to catch up', async () => s.sql('select pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn()') === 't' || undefined);
      s.promote();
      await until('the promotion', async () => s.sql('select pg_is_in_recovery()') === 'f' || undefined, 30_000);
      for (let i = 0; i < 2; i++) {
        s.sql("insert into ledger (note) select repeat('z', 200) from generate_series(1, 500)", 'app');
        s.sql('select pg_switch_wal()', 'app');
      }
      await until('timeline 2 in the archive', async () => {
        const names = await archivedNames(config);
        return names.includes('00000002.history') && names.some((n) => /^00000002\/[0-9A-F]{24}$/.test(n));
      }, 60_000).catch((e: Error) => {
        throw new Error(`${e.message}: ${lines.join('')}`);
      });
    } finally {
      stop.abort();
      await streaming;
    }
    s.stop();
    const listed = await runList(config, 'app');
    expect(listed.archive?.runs.map((r) => r.timeline)).toEqual(expect.arrayContaining(['00000001', '00000002']));
    expect(listed.archive?.gaps).toEqual([]);
    expect((await runVerify(config, 'app', { progress })).archive).toMatchObject({ ok: true });
    const history = join(tmp.path, 'fetched.history');
    expect(await (await archiveOf(config)).fetch('00000002.history', history)).toBe('history');
    expect(readFileSync(history, 'utf8')).toMatch(/^1\t[0-9A-F]+\/[0-9A-F]+\t/);
  });
});

describe('continuous WAL into S3', () => {
  const pg = usePostgres();
  const s3 = useS3();
  const tmp = useTempDir('tidemark-wal-s3-');

  it('streams segments into a bucket and fetches them back byte-equal; a missing one is absent', async () => {
    await pg.createDatabase('app');
    await pg.sql('create table ledger (id bigserial primary key, note text)', 'app');
    const { config } = writeConfig(tmp.path, 's3.yaml', {
      repository: s3.repository('wal'),
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: pg.url('app'), stream: { flushSeconds: 1 } } },
    });
    const stop = new AbortController();
    const lines: string[] = [];
    const streaming = runStream(config, 'app', { spoolDir: join(tmp.path, 'spool'), signal: stop.signal, write: (l) => void lines.push(l) });
    let closed: string;
    try {
      await until('the streamer to start', async () => lines.some((l) => l.includes('streamer started')));
      await until('the slot', async () => (await pg.sql("select count(*) from pg_replication_slots where slot_name = 'tidemark_app' and active")) === '1');
      closed = await fillAndSwitch(pg);
      await until('the segment in the bucket', async () => (await archivedNames(config)).includes(segmentArchiveName(closed)));
    } finally {
      stop.abort();
      await streaming;
    }
    const archive = await archiveOf(config);
    const out = join(tmp.path, 'fetched');
    expect(await archive.fetch(closed, out)).toBe('segment');
    expect(readFileSync(out).equals(readFileSync(join(pg.dataDir, 'pg_wal', closed)))).toBe(true);
    expect(await archive.fetch('0000000100000000000000FE', join(tmp.path, 'none'))).toBe('absent');
    expect(existsSync(join(tmp.path, 'none'))).toBe(false);
    expect(lines.filter((l) => l.includes('"level":"error"'))).toEqual([]);
  });
});

describe('the archive replays in PostgreSQL', () => {
  const pg = usePostgres({ fast: false });
  const tmp = useTempDir('tidemark-wal-replay-');

  it('a base backup plus the streamed archive (ending in a flushed partial), through the prefetcher, recovers every committed row', async () => {
    await pg.createDatabase('app');
    await pg.sql('create table ledger (id bigserial primary key, note text)', 'app');
    const { config } = writeConfig(tmp.path, 'replay.yaml', {
      repository: `file://${join(tmp.path, 'repo')}`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: pg.url('app'), stream: { flushSeconds: 1 } } },
    });
    const stop = new AbortController();
    const lines: string[] = [];
    const streaming = runStream(config, 'app', { spoolDir: join(tmp.path, 'spool'), signal: stop.signal, write: (l) => void lines.push(l) });
    const asRoot = process.getuid?.() === 0;
    const user = asRoot ? { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) } : undefined;
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PG'))), HOME: pg.dir };
    const run = (bin: string, args: string[]) => execFileSync(join(pg.binDir, bin), args, { cwd: pg.dir, env, ...user, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    const base = join(pg.dir, 'restored');
    let expected: string;
    try {
      await until('the streamer to start', async () => lines.some((l) => l.includes('streamer started')));
      await until('the slot', async () => (await pg.sql("select count(*) from pg_replication_slots where slot_name = 'tidemark_app' and active")) === '1');
      await fillAndSwitch(pg, 1000);
      // A base backup without WAL: everything after its start must come from the archive.
      run('pg_basebackup', ['-h', '127.0.0.1', '-p', String(pg.port), '-U', 'postgres', '-D', base, '-X', 'none', '--checkpoint=fast', '--no-manifest']);
      await fillAndSwitch(pg, 1000);
      await pg.sql("insert into ledger (note) select 'in the open segment' from generate_series(1, 777)", 'app');
      expected = await pg.sql('select count(*) from ledger', 'app');
      const flushed = await pg.sql('select pg_current_wal_flush_lsn()', 'app');
      const archive = await archiveOf(config);
      await until(`the archive to reach ${flushed}`, async () => {
        const point = await archive.newestDurablePoint();
        return point && parseLsn(point.lsn) >= parseLsn(flushed);
      }, 20_000);
    } finally {
      stop.abort();
      await streaming;
    }
    const first = /START WAL LOCATION: .* \(file ([0-9A-F]{24})\)/.exec(readFileSync(join(base, 'backup_label'), 'utf8'))![1];
    const prefetcher = new WalPrefetcher(await archiveOf(config), { spoolDir: join(pg.dir, 'wal-spool'), ...(user ? { owner: user } : {}) });
    await prefetcher.start(first);
    const port = pg.port + 600 + Math.floor(Math.random() * 300);
    try {
      const command = prefetcher.restoreCommand.replace(/'/g, "''");
      writeFileSync(
        join(base, 'postgresql.conf'),
        `${readFileSync(join(base, 'postgresql.conf'), 'utf8')}\nport = ${port}\nunix_socket_directories = '${pg.dir}'\nrestore_command = '${command}'\n`,
      );
      writeFileSync(join(base, 'recovery.signal'), '');
      if (user) execFileSync('chown', ['-R', 'postgres:', base]);
      // Not execFileSync: the prefetcher that feeds recovery runs on this process's event loop.
      await promisify(execFile)(join(pg.binDir, 'pg_ctl'), ['-D', base, '-l', join(pg.dir, 'restored.log'), '-w', '-t', '120', 'start'], { cwd: pg.dir, env, ...user });
      const psql = (s: string, db = 'app') => run('psql', ['-X', '-A', '-t', '-q', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', db, '-c', s]).trim();
      await until('the end of recovery', async () => psql('select pg_is_in_recovery()') === 'f' || undefined, 60_000);
      expect(psql('select count(*) from ledger')).toBe(expected);
      expect(psql("select count(*) from ledger where note = 'in the open segment'")).toBe('777');
      expect(prefetcher.stats.files).toBeGreaterThanOrEqual(2);
    } finally {
      try {
        run('pg_ctl', ['-D', base, '-m', 'immediate', '-w', 'stop']);
      } catch {
        // not started
      }
      await prefetcher.stop();
    }
  });
});
