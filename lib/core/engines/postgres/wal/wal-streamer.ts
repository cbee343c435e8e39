import { createHash } from 'node:crypto';
import { readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep } from '../../../abort';
import { Reconnects } from '../../reconnect-backoff';
import { StorageError, TidemarkError } from '../../../errors';
import type { LogFields, LogLevel } from '../../../log';
import type { MetricValue } from '../../../metrics';
import { summarizeStderr, ToolRun, runTool } from '../../../process/tool';
import type { ArchiveWriter } from '../../../repository/archive';
import type { EngineRun } from '../../engine';
import { PgToolSession, type PgEndpoint } from '../connection';
import { postgresSource, sourceEndpoint } from '../source';
import { pgBin } from '../tools';
import { ArchivedSlot } from './archived-slot';
import { lockSpool, type SpoolLock } from '../../../process/spool-lock';
import { fileFacts, readSpool, seedSpool, writtenExtent } from './spool';
import { WalArchive, walAttributes } from './wal-archive';
import { serverHistory, spoolStart, startPastSwitch } from './switch-point';
import { newestPartialOf } from './wal-inventory';
import {
  formatLsn,
  historyArchiveName,
  isValidSegmentBytes,
  parseArchiveName,
  parseLsn,
  parseSegmentName,
  parseTimelineHistory,
  partialArchiveName,
  partialPrefix,
  segmentArchiveName,
  segmentName,
  segmentOfLsn,
  segmentStartLsn,
  timelineName,
  type TimelineSwitch,
} from './wal-names';

/**
 * `tidemark stream`: pg_receivewal with a replication slot writes WAL into a local spool; every
 * completed segment goes through the pipeline into the archive and is then removed locally, and
 * the open segment is stored every `flushSeconds` as the next immutable partial generation when it
 * has grown. Litestream's shape: a loop that keeps its position, backs off exponentially up to a
 * cap, and rate-limits repeated error logs.
 *
 * Why not `pg_receivewal --synchronous`: it fsyncs the local file on every write and reports that
 * position at once, which matters to a synchronous standby, not to us. What a flush stores is read
 * from the file pg_receivewal wrote (write(2) without user-space buffering, so the page cache has
 * it), and durability comes from the repository, not from the spool's disk.
 */
export interface WalStreamOptions {
  readonly spoolDir: string;
  readonly slot: string;
  readonly flushSeconds: number;
  readonly log: (level: LogLevel, msg: string, fields?: LogFields) => void;
  /** Emits metrics (EMF) with the source as dimension. */
  readonly metrics?: (values: Readonly<Record<string, MetricValue>>) => void;
  /** How often the spool is looked at for completed segments. @default 250 */
  readonly pollMs?: number;
  /** Longest wait between reconnects. @default MAX_RECONNECT_WAIT_MS (10 s) */
  readonly maxBackoffMs?: number;
}

/** The slot that holds WAL until it is archived, beside pg_receivewal's `slot`. */
export function archivedSlotName(slot: string): string {
  return `${slot.slice(0, 54)}_archived`;
}

/** A slot name from a source name: lower-case letters, digits and underscores, at most 63. */
export function slotNameFor(source: string): string {
  return `tidemark_${source.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`.slice(0, 63);
}

const STOP_RECEIVER_MS = 10_000;
const ERROR_REPEAT_MS = 60_000;

interface PartialState {
  generation: number;
  extent: number;
}

export class WalStreamer {
  private readonly archive: WalArchive;
  private writer?: ArchiveWriter;
  private segmentBytes?: number;
  /** Newest segment number seen per timeline (archived or in the spool), for the gap check. */
  private readonly newest = new Map<string, number>();
  /** Newest archived partial generation (and how far it reached) per open segment. */
  private readonly partials = new Map<string, PartialState>();
  private lastFlush = 0;
  /** The server no longer had the WAL at the archive's end: later reconnects start where it is. */
  private seedRefused = false;
  private lastError?: { message: string; at: number };
  /** Holds the server's WAL until it is archived (archived-slot.ts). */
  private guard?: ArchivedSlot;
  /** Where each timeline branched from its parent (history files), for the gap check at a switch. */
  private readonly switches = new Map<string, TimelineSwitch>();
  /** Set when the server refused our start because its history forked before it (a failover). */
  private fork?: TimelineSwitch;

  constructor(
    private readonly run: EngineRun,
    private readonly options: WalStreamOptions,
  ) {
    this.archive = new WalArchive(run.repository, run.source);
  }

  private get log() {
    return this.options.log;
  }

  /** Streams until the run's signal fires, then stores what it has and returns. */
  async stream(): Promise<void> {
    const { run, options } = this;
    const { signal } = run;
    const spool = options.spoolDir;
    const lock = await lockSpool(spool, { command: /pg_receivewal/, stopSignal: 'SIGINT' });
    const ep = await sourceEndpoint(run.source, postgresSource(run.config));
    const session = await PgToolSession.open(ep);
    this.guard = new ArchivedSlot(ep, archivedSlotName(options.slot), this.log);
    try {
      this.writer = await this.archive.objects.writer({ epoch: 'new' });
      await this.loadArchiveState();
      await this.drain(); // completed segments a previous run left behind
      this.log('info', 'streamer started', { spool, slot: options.slot, epoch: this.writer.epoch, flushSeconds: options.flushSeconds });

      const reconnects = new Reconnects({ firstMs: 1000, maxMs: options.maxBackoffMs });
      while (!signal.aborted) {
        const started = Date.now();
        let failure: string | undefined;
        try {
          await runTool(pgBin('pg_receivewal'), ['--create-slot', '--if-not-exists', '--slot', options.slot, '--no-password'], { env: session.env });
          await this.guard.ensure();
          await this.seedIfEmpty();
          await this.startPastSwitchPoint(ep);
          failure = await this.receive(session, lock);
        } catch (e) {
          if (!(e instanceof TidemarkError)) throw e;
          failure = e.message;
        }
        if (signal.aborted) break;
        if (this.fork) {
          await this.followFork(this.fork).catch((e: unknown) => {
            if (!(e instanceof TidemarkError)) throw e;
            this.log('error', `could not store the spool before following the server's timeline: ${e.message}; will retry`, { error: e.name });
          });
        } else if (failure !== undefined && /already been removed/.test(failure)) {
          // The server no longer has the WAL where the archive ends (or where the slot points: the
          // server takes a slot's position from what pg_receivewal reports, even the start of a
          // segment it then refuses). Start again where the server is, with fresh slots; the first
          // segment that arrives shows the gap (checkGap).
          // The refused start came from the spool (our seed, or pg_receivewal's own open segment left
          // by an earlier run): store what it holds and empty it, or the next start is refused too.
          await this.clearOpenSegments().catch((e: unknown) => {
            if (!(e instanceof TidemarkError)) throw e;
            this.log('error', `could not store the spool before resuming where the server is: ${e.message}; will retry`, { error: e.name });
          });
          this.log('error', `the server no longer has the WAL after the archive's end; streaming resumes where the server is, leaving a gap`, {
            error: 'WalResumeRefused',
          });
          this.seedRefused = true;
          await this.dropSlot(session);
          await this.guard.recreate();
        }
        const wait = reconnects.next(started);
        if (reconnects.worthLogging) {
          this.log('error', `pg_receivewal stopped: ${failure ?? 'exited'}; reconnecting in ${(wait / 1000).toFixed(1)} s`, { error: 'StreamInterrupted', attempt: reconnects.attempt });
        }
        this.options.metrics?.({ StreamReconnects: { value: 1, unit: 'Count' } });
        await sleep(wait, signal).catch(() => undefined);
      }
      // Stopped: what pg_receivewal wrote is stored before we go.
      await this.drain();
      await this.flushPartial(true);
      this.log('info', 'streamer stopped; everything received is archived');
    } finally {
      await this.guard.close();
      await session.close();
      await lock.release();
    }
  }

  /**
   * Drops pg_receivewal's slot. Its walsender can hold it for a moment after the tool exited; a
   * drop that fails then would leave the slot where the server refused us, and the next start
   * would be refused again, forever.
   */
  private async dropSlot(session: PgToolSession): Promise<void> {
    for (let attempt = 0; attempt < 40; attempt++) {
      try {
        await runTool(pgBin('pg_receivewal'), ['--drop-slot', '--slot', this.options.slot, '--no-password'], { env: session.env });
        return;
      } catch (e) {
        if (!(e instanceof TidemarkError) || !/is active/.test(e.message)) return; // gone already, or not ours to fix here
        await sleep(250, this.run.signal).catch(() => undefined);
      }
    }
  }

  /** One pg_receivewal run: returns why it ended (undefined when we stopped it). */
  private async receive(session: PgToolSession, lock: SpoolLock): Promise<string | undefined> {
    const { signal } = this.run;
    const receiver = new ToolRun(
      pgBin('pg_receivewal'),
      ['-D', this.options.spoolDir, '--slot', this.options.slot, '--no-loop', '--no-password', '--status-interval', '1', '--verbose'],
      ['ignore', 'ignore'],
      { env: session.env, label: 'pg_receivewal' },
    );
    await lock.recordReader(receiver.child.pid);
    let exited = false;
    void receiver.exited.then(() => (exited = true));
    const onAbort = () => receiver.child.kill('SIGINT'); // pg_receivewal's clean stop: it fsyncs the partial
    signal.addEventListener('abort', onAbort, { once: true });
    const poll = this.options.pollMs ?? 250;
    try {
      while (!exited) {
        await Promise.race([receiver.exited, sleep(poll)]);
        await this.tick();
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (!exited) {
        receiver.child.kill('SIGINT');
        const hard = setTimeout(() => receiver.kill(), STOP_RECEIVER_MS);
        await receiver.exited;
        clearTimeout(hard);
      }
      await lock.recordReader(undefined);
    }
    await this.tick();
    if (signal.aborted) return undefined;
    // "requested starting point … is not in this server's history / DETAIL: This server's history
    // forked from timeline 1 at 0/5000110": a promoted standby that never had the end of our WAL.
    const fork = /is not in this server's history[\s\S]*forked from timeline (\d+) at ([0-9A-F]{1,8}\/[0-9A-F]{1,8})/i.exec(receiver.stderr);
    this.fork = fork ? { parent: timelineName(Number(fork[1])), switchLsn: fork[2].toUpperCase() } : undefined;
    const code = await receiver.exited;
    return code === 0 ? 'pg_receivewal exited' : receiver.failure().message.replace(/^pg_receivewal /, '') || summarizeStderr(receiver.stderr);
  }

  /** Archives what completed; flushes the open segment when its interval is up. Never throws for storage trouble. */
  private async tick(): Promise<void> {
    try {
      await this.drain();
      if (Date.now() - this.lastFlush >= this.options.flushSeconds * 1000) await this.flushPartial(false);
    } catch (e) {
      if (!(e instanceof TidemarkError)) throw e;
      // Retried every poll; said again only when the reason changes or a minute has passed.
      const now = Date.now();
      if (e.message !== this.lastError?.message || now - this.lastError.at >= ERROR_REPEAT_MS) {
        this.log('error', `archiving failed, will retry: ${e.message}`, { error: e.name });
        this.lastError = { message: e.message, at: now };
      }
    }
  }

  /** What the archive already holds: the newest segment per timeline, and partial generations. */
  private async loadArchiveState(): Promise<void> {
    const objects = await this.archive.list();
    const inventory = await this.archive.inventory(objects);
    if (!inventory) return;
    for (const [timeline, sw] of await this.archive.switches(objects)) this.learnSwitch(timeline, sw);
    this.segmentBytes = inventory.segmentBytes;
    for (const tl of inventory.timelines) {
      const run = tl.runs[tl.runs.length - 1];
      if (run) this.newest.set(tl.timeline, parseSegmentName(run.last, inventory.segmentBytes).segno);
      if (run?.partial) {
        const parsed = parseArchiveName(run.partial);
        const header = await this.archive.objects.readHeader(run.partial);
        const end = walAttributes(header)?.end;
        const extent = end ? Number(parseLsn(end) - segmentStartLsn(parseSegmentName(run.last, inventory.segmentBytes).segno, inventory.segmentBytes)) : 0;
        if (parsed?.kind === 'partial') this.partials.set(run.last, { generation: parsed.generation, extent });
      }
    }
    // Superseded generations of completed segments are not "only a partial archived" (that would
    // move the resume point and the gap check back a segment); flushSegmentSnapshot looks their
    // numbers up when it needs one, so a name is still never reused.
  }

  /** With an empty spool, pg_receivewal would start at its slot (or the server's position): start at the archive's end instead. */
  private async seedIfEmpty(): Promise<void> {
    const spool = await readSpool(this.options.spoolDir);
    if (spool.partial || spool.segments.length > 0 || this.segmentBytes === undefined || this.seedRefused) return;
    const timelines = [...this.newest.keys()].sort();
    const timeline = timelines[timelines.length - 1];
    if (timeline === undefined) return;
    const newest = this.newest.get(timeline)!;
    const newestName = segmentName({ timeline: parseInt(timeline, 16), segno: newest }, this.segmentBytes);
    // Resume inside the newest segment if only its partial is archived, else after it.
    const next = this.partials.has(newestName) ? newest : newest + 1;
    const segment = segmentName({ timeline: parseInt(timeline, 16), segno: next }, this.segmentBytes);
    await seedSpool(this.options.spoolDir, segment, this.segmentBytes);
    this.log('info', `resuming at the archive's end: segment ${segment}`, { segment });
  }

  /**
   * A failover right after a segment switch: the spool would start pg_receivewal exactly where its
   * timeline ended on the new primary, which pg_receivewal cannot do (switch-point.ts). It starts
   * in the same segment on the next timeline instead; the history file it then fetches is archived.
   */
  private async startPastSwitchPoint(ep: PgEndpoint): Promise<void> {
    if (this.segmentBytes === undefined) return;
    const start = spoolStart(await readSpool(this.options.spoolDir), this.segmentBytes);
    if (!start) return;
    // Unreachable or refused: pg_receivewal's own attempt says why.
    const server = await serverHistory(ep, start.timeline).catch(() => undefined);
    const next = server && startPastSwitch(start, server.timeline, server.history, this.segmentBytes);
    if (!next) return;
    await this.clearOpenSegments();
    const segment = segmentName(next, this.segmentBytes);
    await seedSpool(this.options.spoolDir, segment, this.segmentBytes);
    this.log('info', `timeline ${timelineName(start.timeline)} ended at the start of segment ${segmentName(start, this.segmentBytes)} on the server; streaming resumes on timeline ${timelineName(next.timeline)} there`, {
      segment,
    });
  }

  /**
   * The server (a promoted standby) branched off timeline `fork.parent` at `fork.switchLsn`, before
   * where our spool would resume: what the archive holds of that timeline after the switch is the
   * old primary's WAL, which the new one never had. That is kept (it is archived, and it is the only
   * copy of those transactions); streaming restarts in the switch segment of the old timeline, so
   * pg_receivewal follows the server's history across the switch as it does at any promotion.
   */
  private async followFork(fork: TimelineSwitch): Promise<void> {
    this.fork = undefined;
    if (this.segmentBytes === undefined) return;
    await this.clearOpenSegments();
    const segno = segmentOfLsn(parseLsn(fork.switchLsn), this.segmentBytes);
    const segment = segmentName({ timeline: parseInt(fork.parent, 16), segno }, this.segmentBytes);
    await seedSpool(this.options.spoolDir, segment, this.segmentBytes);
    this.log('error', `the server's history left timeline ${fork.parent} at ${fork.switchLsn}, before the archive's end on it: the archived WAL after that point (the old primary's) is not on this server; streaming follows the server from there`, {
      error: 'WalTimelineDiverged',
      timeline: fork.parent,
      switchLsn: fork.switchLsn,
      segment,
    });
    this.options.metrics?.({ WalTimelineDivergences: { value: 1, unit: 'Count' } });
  }

  /** Stores what the spool holds, then removes its open segments: pg_receivewal then starts elsewhere. */
  private async clearOpenSegments(): Promise<void> {
    await this.drain();
    await this.flushPartial(true);
    const spool = await readSpool(this.options.spoolDir);
    for (const open of [...spool.stalePartials, ...(spool.partial ? [spool.partial] : [])]) await unlink(join(this.options.spoolDir, `${open}.partial`)).catch(() => undefined);
  }

  private learnSwitch(timeline: string, sw: TimelineSwitch): void {
    this.switches.set(timeline, sw);
  }

  /** The first segment of `timeline` the archive lacks after its newest, if it has any. */
  private firstMissing(timeline: string): number | undefined {
    const newest = this.newest.get(timeline);
    if (newest === undefined || this.segmentBytes === undefined) return undefined;
    // A newest segment archived only as a partial is missing too once streaming jumps past it.
    return this.partials.has(segmentName({ timeline: parseInt(timeline, 16), segno: newest }, this.segmentBytes)) ? newest : newest + 1;
  }

  /** A segment beyond the newest + 1 of its timeline means WAL nobody archived: say so loudly. */
  private checkGap(segment: string): void {
    if (this.segmentBytes === undefined) return;
    const timeline = segment.slice(0, 8);
    const { segno } = parseSegmentName(segment, this.segmentBytes);
    const newest = this.newest.get(timeline);
    const firstMissing = this.firstMissing(timeline);
    if (newest === undefined) this.checkSwitch(timeline, segno);
    else if (firstMissing !== undefined && segno > firstMissing) this.reportGap(timeline, firstMissing, segno - 1);
    if (newest === undefined || segno > newest) this.newest.set(timeline, segno);
  }

  /**
   * The first WAL of a new timeline: it must start at its switch segment (its copy of that segment
   * holds the parent's WAL before the switch), and the parent must be archived up to there.
   */
  private checkSwitch(timeline: string, segno: number): void {
    const sw = this.switches.get(timeline);
    if (!sw || this.segmentBytes === undefined) return;
    const k = segmentOfLsn(parseLsn(sw.switchLsn), this.segmentBytes);
    if (segno > k) this.reportGap(timeline, k, segno - 1);
    const parentMissing = this.firstMissing(sw.parent);
    if (parentMissing !== undefined && parentMissing <= k - 1) this.reportGap(sw.parent, parentMissing, k - 1);
  }

  private reportGap(timeline: string, first: number, last: number): void {
    const tl = parseInt(timeline, 16);
    const from = segmentName({ timeline: tl, segno: first }, this.segmentBytes!);
    const to = segmentName({ timeline: tl, segno: last }, this.segmentBytes!);
    const count = last - first + 1;
    this.log('error', `WAL gap: segments ${from} to ${to} (${count}) of timeline ${timeline} were never archived and are gone from the server; point-in-time recovery cannot cross them`, {
      error: 'WalGap',
      timeline,
      from,
      to,
      count,
    });
    this.options.metrics?.({ WalGapSegments: { value: count, unit: 'Count' } });
  }

  private learnSegmentBytes(size: number): void {
    if (this.segmentBytes === undefined && isValidSegmentBytes(size)) this.segmentBytes = size;
  }

  /** Archives completed segments and history files in the spool, oldest first, then removes them. */
  private async drain(): Promise<void> {
    const dir = this.options.spoolDir;
    const spool = await readSpool(dir);
    for (const history of spool.histories) {
      const path = join(dir, history);
      // Its switch point goes into the header too, so list and rpo-check follow it without a key.
      const sw = parseTimelineHistory(await readFile(path, 'utf8'));
      const { mtime } = await fileFacts(path);
      if (sw) this.learnSwitch(history.slice(0, 8), sw);
      await this.archiveOnce(historyArchiveName(history), path, sw ? { end: sw.switchLsn, at: mtime.toISOString(), parent: sw.parent } : undefined);
      await unlink(path);
    }
    for (const stale of spool.stalePartials) {
      // A finished timeline's last segment: stored once more if it grew (unless archived whole), then it is done.
      if (!(await this.archive.objects.has(segmentArchiveName(stale)))) await this.flushSegmentSnapshot(stale, new Date());
      await unlink(join(dir, `${stale}.partial`));
    }
    for (const segment of spool.segments) {
      const path = join(dir, segment);
      const { size, mtime } = await fileFacts(path);
      this.learnSegmentBytes(size);
      this.checkGap(segment);
      const end = formatLsn(segmentStartLsn(parseSegmentName(segment, size).segno + 1, size));
      await this.archiveOnce(segmentArchiveName(segment), path, { end, at: mtime.toISOString() });
      this.partials.delete(segment);
      this.options.metrics?.({ WalSegmentsArchived: { value: 1, unit: 'Count' } });
      await unlink(path);
      await this.guard?.advance(end);
    }
  }

  /**
   * Stores a file that must exist exactly once; after a restart it may already be archived (stored,
   * then killed before the local copy was removed): same content is fine, different is an error.
   */
  private async archiveOnce(name: string, path: string, attributes: Readonly<Record<string, string>> | undefined): Promise<void> {
    try {
      await this.writer!.writeFile(name, path, { compression: this.run.compression, ...(attributes ? { attributes: { ...attributes } } : {}) });
    } catch (e) {
      if (!(e instanceof StorageError && e.code === 'ObjectExists')) throw e;
      const local = createHash('sha256').update(await readFile(path)).digest('hex');
      if ((await this.archive.objects.plaintextSha256(name)) !== local) {
        throw new StorageError(`${name} is already archived with different content; keeping the local copy ${path} for inspection`, 'ObjectExists');
      }
    }
  }

  /** Stores the open segment as its next generation if it grew since the last one. */
  private async flushPartial(final: boolean): Promise<void> {
    this.lastFlush = Date.now();
    const spool = await readSpool(this.options.spoolDir);
    // A segment that just completed is archived first (the next tick), so the open one after it
    // never looks like a jump past a segment known only as a partial.
    if (!spool.partial || spool.segments.length > 0) return;
    const end = await this.flushSegmentSnapshot(spool.partial, new Date());
    if (final && end) this.log('info', `stored the open segment up to ${end}`, { segment: spool.partial });
  }

  /** Stores a snapshot of an open segment as its next generation if it grew; returns how far it reaches. */
  private async flushSegmentSnapshot(segment: string, at: Date): Promise<string | undefined> {
    let bytes: Buffer;
    try {
      bytes = await readFile(join(this.options.spoolDir, `${segment}.partial`));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // completed meanwhile: drain takes it
      throw e;
    }
    this.learnSegmentBytes(bytes.length);
    if (!isValidSegmentBytes(bytes.length)) return undefined; // not padded yet
    // Trailing zeros of the last record look like padding; records end MAXALIGNed (8 bytes), so
    // rounding up is exact for the alignment padding and never claims more than was received.
    const extent = Math.min(bytes.length, Math.ceil(writtenExtent(bytes) / 8) * 8);
    const known = this.partials.get(segment);
    if (extent === 0 || (known && extent <= known.extent)) return undefined;
    this.checkGap(segment);
    // Not flushed by this run: an earlier one (or the old primary, for a timeline's switch segment) may have.
    const earlier = known ? undefined : newestPartialOf((await this.archive.objects.list(partialPrefix(segment))).map((o) => o.name), segment);
    const generation = (known?.generation ?? earlier?.generation ?? 0) + 1;
    const end = formatLsn(segmentStartLsn(parseSegmentName(segment, bytes.length).segno, bytes.length) + BigInt(extent));
    await this.writer!.writeBytes(partialArchiveName(segment, generation), bytes, {
      compression: this.run.compression,
      attributes: { end, at: at.toISOString() },
    });
    this.partials.set(segment, { generation, extent });
    await this.guard?.advance(end);
    return end;
  }
}

/** ContinuousArchive.stream for PostgreSQL. */
export function streamWal(run: EngineRun, options: WalStreamOptions): Promise<void> {
  return new WalStreamer(run, options).stream();
}
