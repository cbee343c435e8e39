import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, stat, unlink } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import { sleep } from '../../../abort';
import { Reconnects } from '../../reconnect-backoff';
import { StorageError, TidemarkError, UsageError } from '../../../errors';
import type { LogFields, LogLevel } from '../../../log';
import type { MetricValue } from '../../../metrics';
import { ToolRun, toolVersion } from '../../../process/tool';
import type { ArchiveWriter } from '../../../repository/archive';
import type { EngineRun } from '../../engine';
import { MysqlToolSession, parseMysqlUrl, withPassword, type MysqlEndpoint } from '../connection';
import type { MysqlLogicalDetails } from '../logical-details';
import { mysqlSource } from '../source';
import { mysqlBin } from '../tools';
import { resolveSecret } from '../../../secrets';
import { BinlogArchive } from './binlog-archive';
import { binlogAttributes, type InventoryFile } from './inventory';
import { comparePositions, nextBinlogFile, parseBinlogFile, partialName } from './names';
import { isClosedFile, walkFile, type EventWalk } from './raw-events';
import { lockSpool, type SpoolLock } from '../../../process/spool-lock';

/**
 * `tidemark stream` for MySQL/MariaDB: `mariadb-binlog --read-from-remote-server --raw
 * --stop-never` copies the server's binlog files byte for byte into a local spool; each file the
 * tool has moved past (it opens the next one at the server's rotate) is archived whole under its
 * own name and removed, and the file still being written is stored every `flushSeconds`, when it
 * grew, as the next immutable partial generation, cut at its last whole event.
 *
 * The tool does not reconnect: a loop restarts it with exponential backoff up to a cap, errors
 * rate-limited (Litestream's shape). Each (re)start begins at the first file not archived whole,
 * from its first byte: a resumed file is fetched again rather than appended to, so what is
 * archived is always the server's file as it is, and names are never reused (partials keep
 * counting above the newest generation in the archive).
 */
export interface BinlogStreamOptions {
  readonly spoolDir: string;
  readonly flushSeconds: number;
  readonly log: (level: LogLevel, msg: string, fields?: LogFields) => void;
  readonly metrics?: (values: Readonly<Record<string, MetricValue>>) => void;
  /** How often the spool is looked at. @default 250 */
  readonly pollMs?: number;
  /** Longest wait between reconnects. @default MAX_RECONNECT_WAIT_MS (10 s) */
  readonly maxBackoffMs?: number;
}

/** Where a partial's bytes are copied before they are archived (not a binlog name: spoolFiles skips it). */
const SNAPSHOT = 'partial.snapshot';

interface ServerFacts {
  readonly identity: string;
  readonly files: readonly string[];
}

/** The source's server, without the database (the binlog is the server's). */
async function serverEndpoint(run: EngineRun): Promise<MysqlEndpoint> {
  const config = mysqlSource(run.config);
  const ep = parseMysqlUrl(config.url, `sources.${run.source}.url`);
  return withPassword(ep, config.password ? await resolveSecret(config.password, `sources.${run.source}.password`) : undefined);
}

async function serverFacts(session: MysqlToolSession, source: string): Promise<ServerFacts> {
  const what = `source '${source}'`;
  const [[logBin, serverId, version]] = await session.query('SELECT @@log_bin, @@server_id, VERSION()', what);
  if (logBin !== '1') {
    throw new UsageError(`${what}: the server has no binary log (log_bin is OFF), so there is nothing to stream; enable log_bin (and binlog_format=ROW) and restart it`);
  }
  await assertToolMatches(version, what);
  const uuid = /mariadb/i.test(version) ? undefined : (await session.query('SELECT @@server_uuid', what))[0]?.[0];
  const files = (await session.query('SHOW BINARY LOGS', what)).map((r) => r[0]);
  return { identity: uuid ? `${serverId}/${uuid}` : serverId, files };
}

/**
 * MariaDB's and MySQL's binlogs have diverged (GTID events, MySQL 8's compression and partial
 * JSON updates): each vendor's reader handles its own server only, so a mismatch is refused.
 */
export async function assertToolMatches(serverVersion: string, what: string): Promise<void> {
  const tool = mysqlBin('binlog');
  const out = await toolVersion(tool);
  // Only what the tool says plainly counts: "Ver 3.4" alone is MySQL 5.7's and MariaDB's both.
  const reads = /mariadb/i.test(out) || /mariadb-binlog$/.test(tool) ? 'mariadb' : /mysql (community|enterprise)|\(mysql/i.test(out) ? 'mysql' : undefined;
  const server = /mariadb/i.test(serverVersion) ? 'mariadb' : 'mysql';
  if (reads !== undefined && reads !== server) {
    throw new UsageError(`${what}: ${tool} reads ${reads === 'mariadb' ? 'MariaDB' : 'MySQL'} binlogs, but the server is ${server === 'mariadb' ? 'MariaDB' : 'MySQL'} ${serverVersion}: install that vendor's client tools (${server === 'mariadb' ? 'mariadb-client' : 'mysql-client'})`);
  }
}

export class BinlogStreamer {
  private readonly archive: BinlogArchive;
  private writer?: ArchiveWriter;
  private identity = '';
  /** Files archived whole. */
  private readonly complete = new Set<string>();
  /** Per file still being written: the newest partial generation and how far it reached. */
  private readonly partials = new Map<string, { generation: number; end: number }>();
  private newestArchived?: InventoryFile;
  private lastFlush = 0;
  private lock?: SpoolLock;
  /** The last walk of each spooled file, continued by the next flush. */
  private readonly walks = new Map<string, EventWalk>();
  /** Index of the file the running tool began at (receive): files from it on are its own, fetched whole from their start. */
  private receiveStart?: number;

  constructor(
    private readonly run: EngineRun,
    private readonly options: BinlogStreamOptions,
  ) {
    this.archive = new BinlogArchive(run.repository, run.source);
  }

  private get log() {
    return this.options.log;
  }

  async stream(): Promise<void> {
    const { run, options } = this;
    const { signal } = run;
    const session = await MysqlToolSession.open(await serverEndpoint(run));
    try {
      // Refusals first: no log_bin, or a server that is not the one the archive holds; nothing written.
      const facts = await serverFacts(session, run.source);
      this.identity = facts.identity;
      await this.loadArchiveState();
      const archived = this.newestArchived?.facts?.server;
      if (archived !== undefined && archived !== facts.identity) {
        this.gap(`the server's identity changed (archive: server ${archived}; now: server ${facts.identity}): its binlog does not continue the archive. Stream it into a new source (another name), or restore the old one`, 0);
        throw new UsageError(`source '${run.source}': the server (${facts.identity}) is not the one whose binlog the archive holds (${archived}); nothing was streamed`);
      }
      await mkdir(options.spoolDir, { recursive: true });
      this.lock = await lockSpool(options.spoolDir, { command: /mariadb-binlog|mysqlbinlog/, stopSignal: 'SIGTERM' });
      this.writer = await this.archive.objects.writer({ epoch: 'new' });
      await this.drain(true); // files a previous run left behind
      this.log('info', 'binlog streamer started', { spool: options.spoolDir, epoch: this.writer.epoch, flushSeconds: options.flushSeconds, server: facts.identity });

      const reconnects = new Reconnects({ firstMs: 500, maxMs: options.maxBackoffMs });
      let fatal: UsageError | undefined;
      while (!signal.aborted) {
        const started = Date.now();
        let failure: string | undefined;
        try {
          const start = await this.startFile(session);
          failure = await this.receive(session, start);
        } catch (e) {
          if (!(e instanceof TidemarkError)) throw e;
          // A reconfigured or replaced server (no binlog now, another identity) is no outage: stop.
          if (e instanceof UsageError) {
            fatal = e;
            break;
          }
          failure = e.message;
        }
        if (signal.aborted) break;
        const wait = reconnects.next(started);
        if (reconnects.worthLogging) {
          this.log('error', `binlog reader stopped: ${failure ?? 'exited'}; reconnecting in ${(wait / 1000).toFixed(1)} s`, { error: 'StreamInterrupted', attempt: reconnects.attempt });
        }
        options.metrics?.({ StreamReconnects: { value: 1, unit: 'Count' } });
        await sleep(wait, signal).catch(() => undefined);
      }
      await this.drain(false);
      await this.flushPartial(true);
      if (fatal) throw fatal;
      this.log('info', 'binlog streamer stopped; everything received is archived');
    } finally {
      await session.close();
      await this.lock?.release();
    }
  }

  /** Logs a gap and counts it: files lost (BinlogGapFiles), or a server that is not the archive's (BinlogIdentityChanges). */
  private gap(msg: string, count: number, fields: LogFields = {}): void {
    this.log('error', `binlog gap: ${msg}`, { error: 'BinlogGap', ...fields });
    this.options.metrics?.(count > 0 ? { BinlogGapFiles: { value: count, unit: 'Count' } } : { BinlogIdentityChanges: { value: 1, unit: 'Count' } });
  }

  private async loadArchiveState(): Promise<void> {
    const { inventory } = await this.archive.inventory();
    for (const f of inventory.files) {
      if (f.complete) this.complete.add(f.file);
      else this.partials.set(f.file, { generation: inventory.generations.get(f.file) ?? 0, end: f.facts?.end ?? 0 });
    }
    // Superseded generations still count: a name is never reused.
    for (const [file, generation] of inventory.generations) {
      const known = this.partials.get(file);
      if (!known || known.generation < generation) this.partials.set(file, { generation, end: known?.end ?? 0 });
    }
    this.newestArchived = inventory.files[inventory.files.length - 1];
  }

  /**
   * Where this connection starts: the first file after the newest archived whole, or (empty
   * archive) the file of the newest logical backup's coordinates, else the server's first file.
   * A start the server no longer has is a gap: logged, counted, and streaming goes on from the
   * server's oldest file.
   */
  private async startFile(session: MysqlToolSession): Promise<string> {
    const facts = await serverFacts(session, this.run.source);
    if (facts.identity !== this.identity) {
      this.gap(`the server's identity changed while streaming (server ${this.identity} → server ${facts.identity}): its binlog does not continue the archive`, 0);
      throw new UsageError(`source '${this.run.source}': the server's identity changed while streaming (${this.identity} → ${facts.identity}); stopped`);
    }
    const oldest = facts.files[0];
    if (oldest === undefined) throw new UsageError(`source '${this.run.source}': SHOW BINARY LOGS lists no file`);
    let wanted: string | undefined;
    const newest = this.newestArchived;
    if (newest) wanted = newest.complete ? nextBinlogFile(newest.file) : newest.file;
    else wanted = await this.newestBackupFile();
    if (wanted === undefined) return oldest;
    if (facts.files.includes(wanted)) return wanted;
    const want = parseBinlogFile(wanted)?.index ?? 0;
    const first = parseBinlogFile(oldest)?.index ?? 0;
    if (want < first) {
      const count = first - want;
      if (newest) {
        this.gap(`${wanted} … (${count} file${count === 1 ? '' : 's'}) were purged from the server before they were archived; point-in-time recovery cannot cross them. Streaming continues from ${oldest}`, count, { from: wanted, to: oldest });
      } else {
        this.log('warn', `the newest backup's binlog file ${wanted} is no longer on the server; streaming starts at ${oldest}`);
      }
      return oldest;
    }
    // The archive is ahead of the server: its newest file is not written yet (just rotated, or a restart).
    return wanted;
  }

  private async newestBackupFile(): Promise<string | undefined> {
    const catalog = await this.run.repository.catalog(this.run.source);
    const coords = catalog.backups
      .filter((b) => b.details.kind === 'mysql-logical' && (b.details as MysqlLogicalDetails).binlog)
      .map((b) => (b.details as MysqlLogicalDetails).binlog!)
      .sort(comparePositions);
    return coords[coords.length - 1]?.file;
  }

  /** One run of the tool from the start of `start`; returns why it ended (undefined when we stopped it). */
  private async receive(session: MysqlToolSession, start: string): Promise<string | undefined> {
    const { signal } = this.run;
    const spool = this.options.spoolDir;
    // The tool rewrites the spool's copy of `start` from its first byte; later ones are stale.
    this.walks.clear();
    this.receiveStart = parseBinlogFile(start)?.index;
    for (const name of await this.spoolFiles()) {
      if ((parseBinlogFile(name)?.index ?? 0) >= (parseBinlogFile(start)?.index ?? 0)) await unlink(join(spool, name)).catch(() => undefined);
    }
    const reader = new ToolRun(
      mysqlBin('binlog'),
      [...session.connectArgs, '--read-from-remote-server', '--raw', '--stop-never', `--result-file=${spool}/`, start],
      ['ignore', 'ignore'],
      { env: session.env, label: 'mariadb-binlog' },
    );
    await this.lock?.recordReader(reader.child.pid);
    this.log('info', `reading the binlog from ${start}`, { file: start });
    let exited = false;
    void reader.exited.then(() => (exited = true));
    const onAbort = () => reader.kill();
    signal.addEventListener('abort', onAbort, { once: true });
    const poll = this.options.pollMs ?? 250;
    try {
      while (!exited) {
        await Promise.race([reader.exited, sleep(poll)]);
        await this.tick();
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (!exited) {
        reader.kill();
        await reader.exited;
      }
      await this.lock?.recordReader(undefined);
    }
    await this.tick();
    if (signal.aborted) return undefined;
    const code = await reader.exited;
    return code === 0 ? 'mariadb-binlog exited' : reader.failure().message;
  }

  private async tick(): Promise<void> {
    try {
      await this.drain(false);
      if (Date.now() - this.lastFlush >= this.options.flushSeconds * 1000) await this.flushPartial(false);
    } catch (e) {
      if (!(e instanceof TidemarkError)) throw e;
      this.log('error', `archiving failed, will retry: ${e.message}`, { error: e.name });
    }
  }

  private async spoolFiles(): Promise<string[]> {
    const names = await readdir(this.options.spoolDir).catch(() => [] as string[]);
    return names.filter((n) => parseBinlogFile(n)).sort((a, b) => parseBinlogFile(a)!.index - parseBinlogFile(b)!.index);
  }

  /**
   * Archives every spooled file the server closed (it ends with the rotate, or the stop of a
   * shutdown, or the server crashed in it and the tool went on to the next), then removes it. Any
   * other file but the newest is a stale leftover (a run that stopped inside it, or a torn last
   * event): removed, never archived as whole, and fetched again.
   */
  private async drain(leftBehind: boolean): Promise<void> {
    const files = await this.spoolFiles();
    if (leftBehind && files.length > 0) this.log('info', `spool holds ${files.join(', ')} from a previous run`);
    for (const [i, file] of files.entries()) {
      const path = join(this.options.spoolDir, file);
      const newest = i === files.length - 1;
      if (this.complete.has(file)) {
        if (!newest) await unlink(path);
        continue;
      }
      const { size } = await stat(path);
      const previous = this.walks.get(file);
      const walk = await walkFile(path, size, previous && previous.completeBytes <= size ? previous : undefined);
      this.walks.set(file, walk);
      if (isClosedFile(walk) && walk.completeBytes === size) {
        this.walks.delete(file);
        await this.store(file, path, walk);
        await unlink(path);
      } else if (!newest && this.fetchedThisRun(file) && walk.completeBytes === size && walk.events > 0) {
        // The tool went on to a later file though this one has no rotate or stop event at its end:
        // the server stopped writing it abruptly (a crash, kill -9) and began a new file when it came
        // back. It is whole as the server has it; kept as a partial, it would read as a gap forever.
        // Only a file the running tool fetched from its start counts: a leftover of an earlier run
        // that stopped inside it (the server may have written more since, and purged it) is not whole.
        this.log('warn', `${file} ends without a rotate or stop event (the server crashed or was killed); archived as the server has it`, { file, bytes: size });
        this.walks.delete(file);
        await this.store(file, path, walk);
        await unlink(path);
      } else if (!newest) {
        await unlink(path);
      }
    }
  }

  /** Whether the running tool wrote `file` from its first byte (it began at that file or an earlier one). */
  private fetchedThisRun(file: string): boolean {
    const index = parseBinlogFile(file)?.index;
    return this.receiveStart !== undefined && index !== undefined && index >= this.receiveStart;
  }

  private async store(file: string, path: string, walk: Awaited<ReturnType<typeof walkFile>>): Promise<void> {
    const attributes = binlogAttributes({ end: walk.completeBytes, server: this.identity, ...(walk.lastTimestamp ? { endTime: new Date(walk.lastTimestamp * 1000).toISOString() } : {}) });
    try {
      // Not cancelled by the stop signal: what the server closed is stored before the streamer leaves.
      await this.writer!.writeFile(file, path, { compression: this.run.compression, attributes });
    } catch (e) {
      // Archived by a run that died before removing it from the spool: the server's file does not change.
      if (!(e instanceof StorageError && e.code === 'ObjectExists')) throw e;
    }
    this.complete.add(file);
    this.partials.delete(file);
    this.newestArchived = { file, index: parseBinlogFile(file)!.index, object: file, complete: true, facts: { end: walk.completeBytes, server: this.identity } };
    this.log('info', `archived ${file}`, { file, bytes: walk.completeBytes });
    this.options.metrics?.({ BinlogFilesArchived: { value: 1, unit: 'Count' }, BinlogBytesArchived: { value: walk.completeBytes, unit: 'Bytes' } });
  }

  /**
   * Stores the file still being written, up to its last whole event, when it grew since the last
   * partial. The prefix is copied to a snapshot file first (the tool keeps appending to the
   * original), so memory stays flat whatever the file's size; the walk continues from the last one.
   */
  private async flushPartial(final: boolean): Promise<void> {
    this.lastFlush = Date.now();
    const files = await this.spoolFiles();
    const file = files[files.length - 1];
    if (file === undefined || this.complete.has(file)) return;
    const path = join(this.options.spoolDir, file);
    const { size } = await stat(path);
    const previous = this.walks.get(file);
    const walk = await walkFile(path, size, previous && previous.completeBytes <= size ? previous : undefined);
    this.walks.set(file, walk);
    const known = this.partials.get(file) ?? { generation: 0, end: 0 };
    if (walk.completeBytes <= Math.max(known.end, 4)) return;
    const snapshot = join(this.options.spoolDir, SNAPSHOT);
    await pipeline(createReadStream(path, { start: 0, end: walk.completeBytes - 1 }), createWriteStream(snapshot, { mode: 0o600 }));
    const generation = known.generation + 1;
    const name = partialName(file, generation);
    const endTime = walk.lastTimestamp ? new Date(walk.lastTimestamp * 1000).toISOString() : undefined;
    try {
      await this.writer!.writeFile(name, snapshot, {
        compression: this.run.compression,
        attributes: binlogAttributes({ end: walk.completeBytes, server: this.identity, ...(endTime ? { endTime } : {}) }),
      });
    } finally {
      await unlink(snapshot).catch(() => undefined);
    }
    this.partials.set(file, { generation, end: walk.completeBytes });
    if (!this.newestArchived || this.newestArchived.index <= parseBinlogFile(file)!.index) {
      this.newestArchived = { file, index: parseBinlogFile(file)!.index, object: name, complete: false, facts: { end: walk.completeBytes, server: this.identity } };
    }
    if (final) this.log('info', `stored ${name} (${walk.completeBytes} bytes)`, { file, generation });
  }
}

export function streamBinlog(run: EngineRun, options: BinlogStreamOptions): Promise<void> {
  return new BinlogStreamer(run, options).stream();
}
