import { chown, mkdir, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { sleep } from '../../../abort';
import { UsageError } from '../../../errors';
import { startZstdDecompressAhead } from '../../../pipeline/zstd';
import type { WalArchive } from './wal-archive';
import { HISTORY_NAME, parseSegmentName, SEGMENT_NAME, segmentName } from './wal-names';

/**
 * WAL for a restore, fetched ahead of replay. PostgreSQL starts restore_command once per file it
 * wants; if that started node, fetched from S3 and decrypted, replay would stall on every 16 MiB.
 * Instead the restore's own process runs this prefetcher, which keeps the next `ahead` segments
 * decrypted in a spool directory (`parallel` downloads at a time), and restore_command is a few
 * lines of sh that move the file into place:
 *
 *   <spool>/<file>          ready: restore_command renames it to %p
 *   <spool>/<file>.want.<pid>  restore_command (process <pid>) asks for a file that is not ready (a
 *                           history file, a jump); the prefetcher removes it once it has answered
 *   <spool>/<file>.missing  the archive does not have it: restore_command exits 1 (end of the archive)
 *   <spool>/<file>.failed   fetching failed: restore_command exits 127, which aborts recovery
 *                           rather than ending it early with WAL missing
 *
 * While it waits, restore_command also looks whether the prefetcher's process is still there
 * (/proc/<pid>): a restore killed during replay leaves a server whose next wait would otherwise
 * last GIVE_UP_SECONDS; it exits 127 instead, and the server stops (recovery aborted, never ended
 * early and promoted at the wrong point). Someone starting that directory by hand gets the same.
 *
 * Each request has its own .want name: PostgreSQL asks for the same file twice in a row (a history
 * file: once to see that it exists, once to read it), and a shared name let the prefetcher's
 * late removal of the first request's .want take the second's, which then waited for an answer
 * that never came (GIVE_UP_SECONDS).
 *
 * Readahead follows the segment PostgreSQL last took (a file that disappeared from the spool) or
 * asked for, on that segment's timeline.
 */
export interface WalPrefetchOptions {
  readonly spoolDir: string;
  /** Segments kept ready ahead of replay. @default 16 */
  readonly ahead?: number;
  /** Downloads at a time. @default 4 */
  readonly parallel?: number;
  /** Owner of the spool and its files: the OS user PostgreSQL runs as, when that is not us. */
  readonly owner?: { readonly uid: number; readonly gid: number };
  /** How often the spool is looked at. @default 20 */
  readonly pollMs?: number;
  /** Reports fetch failures (they also reach PostgreSQL through `.failed`). */
  readonly onError?: (file: string, error: Error) => void;
}

export interface WalPrefetchStats {
  readonly files: number;
  readonly bytes: number;
  readonly seconds: number;
}

const SAFE_PATH = /^[A-Za-z0-9._/+-]+$/;
/** `<file>.want.<pid>`: one request of restore_command. */
const WANT = /^(.+)\.want\.\d+$/;
const INCOMING = '.incoming';
/** restore_command gives up after this many seconds without an answer (the prefetcher died). */
const GIVE_UP_SECONDS = 600;
/** A segment past the archive's end is looked for again after this long (a streamer may add it). */
const ABSENT_RETRY_MS = 2000;

/**
 * The restore_command that reads from a prefetcher's spool. PostgreSQL substitutes %f and %p and
 * runs it with sh; quoting it for postgresql.conf (doubling single quotes) is the caller's job.
 */
export function prefetchRestoreCommand(spoolDir: string, pollSeconds = 0.02, prefetcherPid = process.pid): string {
  if (!SAFE_PATH.test(spoolDir)) throw new UsageError(`WAL spool path ${spoolDir} must consist of letters, digits and . _ / + - only (it goes into restore_command)`);
  const tries = Math.ceil(GIVE_UP_SECONDS / pollSeconds);
  // Where there is no /proc (not Linux) only the time limit applies.
  const gone = `[ -d /proc/self ] && [ ! -d /proc/${prefetcherPid} ]`;
  return [
    `d=${spoolDir}; f=%f`,
    `if [ ! -f $d/$f ]; then : > $d/$f.want.$$; n=0; while [ ! -f $d/$f ] && [ ! -f $d/$f.missing ] && [ ! -f $d/$f.failed ]; do if ${gone}; then echo "tidemark: the restore that fetched WAL for this server has ended" >&2; exit 127; fi; sleep ${pollSeconds}; n=$((n+1)); [ $n -lt ${tries} ] || exit 127; done; fi`,
    `if [ -f $d/$f.failed ]; then cat $d/$f.failed >&2; exit 127; fi`,
    `if [ ! -f $d/$f ]; then rm -f $d/$f.missing; exit 1; fi`,
    `exec mv -f $d/$f "%p"`,
  ].join('; ');
}

export class WalPrefetcher {
  private readonly ready = new Set<string>();
  private readonly inFlight = new Set<string>();
  /** Files restore_command is waiting for, with the .want names of the requests to remove once answered. */
  private readonly answering = new Map<string, Set<string>>();
  /** Readahead past the archive's end: not asked again before this time (ms). */
  private readonly absentUntil = new Map<string, number>();
  private readonly limit: ReturnType<typeof pLimit>;
  private segmentBytes?: number;
  /** The segment replay reached (taken or asked for): readahead continues after it. */
  private cursor?: { timeline: number; segno: number };
  private readonly stopper = new AbortController();
  private loop?: Promise<void>;
  private started = 0;
  /** Ends the zstd processes start() started ahead (stop() calls it). */
  private endSpares?: () => Promise<void>;
  private stoppedAt?: number;
  private files = 0;
  private bytes = 0;

  constructor(
    private readonly archive: WalArchive,
    private readonly options: WalPrefetchOptions,
  ) {
    this.limit = pLimit(options.parallel ?? 4);
  }

  get restoreCommand(): string {
    return prefetchRestoreCommand(this.options.spoolDir);
  }

  get stats(): WalPrefetchStats {
    return { files: this.files, bytes: this.bytes, seconds: ((this.stoppedAt ?? Date.now()) - this.started) / 1000 };
  }

  /** Creates the spool and starts fetching, from `first` (a segment name) if given. */
  async start(first?: string): Promise<void> {
    const { spoolDir, owner } = this.options;
    prefetchRestoreCommand(spoolDir); // refuses an unsafe path before anything is created
    await mkdir(join(spoolDir, INCOMING), { recursive: true, mode: 0o700 });
    if (owner) await chown(spoolDir, owner.uid, owner.gid);
    this.started = Date.now();
    // A zstd per segment: started in batches, not one by one from a busy node (spares.ts).
    this.endSpares = startZstdDecompressAhead(this.options.parallel ?? 4);
    if (first !== undefined) {
      if (!SEGMENT_NAME.test(first)) throw new UsageError(`not a WAL segment name: ${first}`);
      this.schedule(first);
    }
    this.loop = this.run();
  }

  /** Stops fetching and removes the spool. */
  async stop(): Promise<void> {
    this.stopper.abort();
    await this.loop;
    // Queued and running fetches see the abort and return; the spool goes once they have.
    while (this.limit.activeCount + this.limit.pendingCount > 0) await sleep(10);
    this.stoppedAt ??= Date.now();
    await Promise.all([rm(this.options.spoolDir, { recursive: true, force: true }), this.endSpares?.()]);
  }

  private async run(): Promise<void> {
    const signal = this.stopper.signal;
    while (!signal.aborted) {
      await this.look().catch((e: Error) => this.options.onError?.('(spool)', e));
      await sleep(this.options.pollMs ?? 20, signal).catch(() => undefined);
    }
  }

  private advance(segment: string): void {
    if (this.segmentBytes === undefined) return;
    const { timeline, segno } = parseSegmentName(segment, this.segmentBytes);
    if (!this.cursor || this.cursor.timeline !== timeline || segno > this.cursor.segno) this.cursor = { timeline, segno };
  }

  private async look(): Promise<void> {
    const names = new Set(await readdir(this.options.spoolDir));
    for (const file of [...this.ready]) {
      if (names.has(file)) continue;
      this.ready.delete(file); // PostgreSQL took it
      if (SEGMENT_NAME.test(file)) this.advance(file);
    }
    for (const name of names) {
      const file = WANT.exec(name)?.[1];
      if (file === undefined || this.answering.get(file)?.has(name) || names.has(`${file}.missing`) || names.has(`${file}.failed`)) continue;
      if (SEGMENT_NAME.test(file) && this.segmentBytes !== undefined) {
        const { timeline, segno } = parseSegmentName(file, this.segmentBytes);
        this.cursor = { timeline, segno: segno - 1 }; // a jump (another timeline, a restart): read ahead from there
      }
      if (this.ready.has(file)) {
        await unlink(join(this.options.spoolDir, name)).catch(() => undefined); // it is there: restore_command takes it
      } else {
        this.schedule(file, name);
      }
    }
    if (this.cursor && this.segmentBytes !== undefined) {
      for (let k = 1; k <= (this.options.ahead ?? 16); k++) {
        const file = segmentName({ timeline: this.cursor.timeline, segno: this.cursor.segno + k }, this.segmentBytes);
        if (!this.ready.has(file) && !this.inFlight.has(file) && (this.absentUntil.get(file) ?? 0) < Date.now()) this.schedule(file);
      }
    }
  }

  /** Fetches `file` into the spool; `want`: the request of a restore_command waiting for it. */
  private schedule(file: string, want?: string): void {
    if (want !== undefined) this.answering.set(file, (this.answering.get(file) ?? new Set()).add(want));
    if (this.inFlight.has(file)) return;
    if (!SEGMENT_NAME.test(file) && !HISTORY_NAME.test(file)) {
      void this.answer(file, 'missing');
      return;
    }
    this.inFlight.add(file);
    void this.limit(async () => {
      const dir = this.options.spoolDir;
      const incoming = join(dir, INCOMING, file);
      try {
        if (this.stopper.signal.aborted) return;
        const result = await this.archive.fetch(file, incoming, { signal: this.stopper.signal });
        if (result === 'absent') {
          this.absentUntil.set(file, Date.now() + ABSENT_RETRY_MS);
          if (this.answering.has(file)) await this.answer(file, 'missing');
          return;
        }
        const { size } = await stat(incoming);
        if (this.options.owner) await chown(incoming, this.options.owner.uid, this.options.owner.gid);
        await rename(incoming, join(dir, file));
        this.ready.add(file);
        this.files++;
        this.bytes += size;
        if (SEGMENT_NAME.test(file) && this.segmentBytes === undefined) {
          this.segmentBytes = size;
          if (!this.cursor) this.advance(file);
        }
        if (this.answering.has(file)) await this.answer(file, 'ready');
      } catch (e) {
        if (this.stopper.signal.aborted) return;
        this.options.onError?.(file, e as Error);
        if (this.answering.has(file)) await this.answer(file, 'failed', (e as Error).message);
      } finally {
        this.inFlight.delete(file);
        // A request that came after this fetch answered (the file taken meanwhile): fetch it again.
        if (this.answering.has(file) && !this.stopper.signal.aborted) this.schedule(file);
      }
    });
  }

  private async answer(file: string, how: 'ready' | 'missing' | 'failed', why = ''): Promise<void> {
    const dir = this.options.spoolDir;
    // The requests answered here; one that arrives meanwhile is answered by a fetch of its own.
    const wants = [...(this.answering.get(file) ?? [])];
    try {
      if (how !== 'ready') {
        const path = join(dir, `${file}.${how}`);
        await writeFile(path, how === 'failed' ? `tidemark: fetching ${file} from the WAL archive failed: ${why}\n` : '');
        if (this.options.owner) await chown(path, this.options.owner.uid, this.options.owner.gid);
      }
      // Only the requests answered here: a new one for the same file has another name.
      await Promise.all(wants.map((want) => unlink(join(dir, want)).catch(() => undefined)));
    } catch (e) {
      this.options.onError?.(file, e as Error); // its requests are looked at again
    } finally {
      const left = this.answering.get(file);
      for (const want of wants) left?.delete(want);
      if (left?.size === 0) this.answering.delete(file);
    }
  }
}
