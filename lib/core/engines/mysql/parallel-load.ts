import type { Readable } from 'node:stream';
import { abortReason } from '../../abort';
import { ToolFailed } from '../../errors';
import type { ToolCommand } from '../../pipeline/compressed-output';
import { ToolRun } from '../../process/tool';
import { DumpSplitter, type DumpPiece } from './dump-sections';

/**
 * Replays one dump through several client connections at once, as myloader does with its files,
 * from our single verified stream (dump-sections.ts cuts it, this schedules the pieces):
 *
 * - every connection first replays the dump's session header;
 * - a table's schema runs on one connection; its first INSERT follows it there, and its further
 *   INSERTs go to whichever connection has the least unconfirmed work, once that first INSERT is
 *   confirmed (two first inserts into an empty table can deadlock: see 'rows' below);
 * - the table's end (ENABLE KEYS, its triggers) runs after every connection confirmed that table's
 *   rows, so a trigger never fires on restored rows, as in a serial replay;
 * - events, routines, the final views and the trailer run last, in order, on one connection, after
 *   every connection confirmed everything before them (a view needs all its tables).
 *
 * "Confirmed" is the client printing a number we sent after the piece (`SELECT n;`, -N -B -n): the
 * client executes its input in order, so by then every statement before it has run.
 *
 * The end-of-input gate of decompress-into.ts holds for every connection: `input` (backup.read)
 * ends only once the whole object has been verified, and only then do the clients get end-of-input;
 * on any failure — a damaged backup, a statement that fails on one connection, an abort — every
 * client is killed (SIGKILL) while it still waits for input. Pieces are only ever written whole.
 */
export interface ParallelLoadOptions {
  /** Connections to load through (≥ 2; one connection is the plain streamed restore). */
  readonly connections: number;
  /** The client command (mariadb with its connection arguments and -D database). */
  readonly client: ToolCommand;
  readonly signal?: AbortSignal;
}

/** Unconfirmed bytes one connection may have in flight before the loader waits for it. */
const MAX_AHEAD_BYTES = 4 * 1024 * 1024;

class LoadConnection {
  readonly run: ToolRun;
  private sent = 0;
  private confirmed = 0;
  /** Bytes of each sent piece not yet confirmed, by sequence number. */
  private readonly inFlight = new Map<number, number>();
  outstanding = 0;
  private stdout = '';
  private ending = false;

  constructor(
    readonly index: number,
    client: ToolCommand,
    label: string,
    private readonly changed: () => void,
    onUnexpectedExit: (c: LoadConnection) => void,
  ) {
    this.run = new ToolRun(client.command, [...client.args, '-N', '-B', '-n'], ['pipe', 'pipe'], { ...client.options, label });
    this.run.child.stdin!.on('error', () => undefined); // its exit status tells what happened
    this.run.child.stdin!.on('drain', () => this.changed());
    this.run.child.stdout!.setEncoding('latin1');
    this.run.child.stdout!.on('data', (d: string) => this.confirm(d));
    void this.run.exited.then(() => {
      if (!this.ending) onUnexpectedExit(this);
      this.changed();
    });
  }

  private confirm(data: string): void {
    this.stdout += data;
    let nl: number;
    while ((nl = this.stdout.indexOf('\n')) >= 0) {
      const line = this.stdout.slice(0, nl);
      this.stdout = this.stdout.slice(nl + 1);
      if (!/^\d+$/.test(line)) continue; // not ours (a dump prints nothing else in batch mode)
      const seq = Number(line);
      for (const [s, bytes] of this.inFlight) {
        if (s > seq) break;
        this.outstanding -= bytes;
        this.inFlight.delete(s);
      }
      this.confirmed = Math.max(this.confirmed, seq);
    }
    this.changed();
  }

  isConfirmed(seq: number): boolean {
    return this.confirmed >= seq;
  }

  get idle(): boolean {
    return this.outstanding === 0;
  }

  /** Writes the piece and the number that confirms it; returns that number. */
  send(parts: readonly Buffer[], bytes: number, confirm = true): number {
    const stdin = this.run.child.stdin!;
    stdin.cork();
    for (const p of parts) stdin.write(p);
    const last = parts[parts.length - 1];
    // A piece ends between statements; a last line without its \n (end of input) must not swallow ours.
    if (last && last.length > 0 && last[last.length - 1] !== 0x0a) stdin.write('\n');
    if (confirm) {
      this.sent += 1;
      stdin.write(`SELECT ${this.sent};\n`);
      this.inFlight.set(this.sent, bytes);
      this.outstanding += bytes;
    }
    stdin.uncork();
    return this.sent;
  }

  end(): void {
    this.ending = true;
    this.run.child.stdin!.end();
  }

  kill(): void {
    this.ending = true;
    if (this.run.running) this.run.child.kill('SIGKILL');
  }
}

/**
 * Feeds the input's chunks to the splitter and dispatches the pieces, pausing the input while a
 * dispatch waits. 'data' events hand over the chunks as they were pushed; an async iterator would
 * read() the whole buffered backlog into one new Buffer each time (a copy of every byte).
 */
function consume(input: Readable, splitter: DumpSplitter, dispatch: (piece: DumpPiece) => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    let busy: Promise<void> = Promise.resolve();
    const run = (pieces: DumpPiece[]) => {
      if (pieces.length === 0) return;
      input.pause();
      busy = (async () => {
        for (const piece of pieces) await dispatch(piece);
      })();
      busy.then(() => input.resume(), reject);
    };
    input.on('data', (chunk: Buffer) => run(splitter.push(chunk)));
    input.once('error', reject);
    input.once('close', () => {
      if (!input.readableEnded) reject(new Error('the dump stream closed before its end'));
    });
    input.once('end', () => {
      void busy.then(() => {
        run(splitter.end());
        return busy;
      }).then(resolve, reject);
    });
  });
}

export async function loadDumpInParallel(input: Readable, { connections: n, client, signal }: ParallelLoadOptions): Promise<void> {
  if (signal?.aborted) {
    input.destroy();
    throw abortReason(signal);
  }
  let failure: unknown;
  let wake: () => void = () => undefined;
  const changed = () => wake();
  const fail = (e: unknown) => {
    failure ??= e;
    input.destroy();
    changed();
  };
  const conns = Array.from(
    { length: n },
    (_, i) => new LoadConnection(i, client, `${client.options?.label ?? 'mariadb'} (connection ${i + 1} of ${n})`, changed, (c) => fail(c.run.failure())),
  );
  const onAbort = () => fail(abortReason(signal!));
  signal?.addEventListener('abort', onAbort, { once: true });

  /** Resolves when `ready()` holds, re-checked on every confirmation or exit; throws once anything failed. */
  const until = async (ready: () => boolean): Promise<void> => {
    for (;;) {
      if (failure !== undefined) throw failure;
      if (ready()) return;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  };
  const leastLoaded = () => conns.reduce((a, b) => (b.outstanding < a.outstanding ? b : a));
  const roomOn = (c: LoadConnection) => c.outstanding < MAX_AHEAD_BYTES;

  const tables = new Map<string, { owner: LoadConnection; firstRows?: number; rowsOn: Map<LoadConnection, number> }>();
  let tail: LoadConnection | undefined;

  const dispatch = async (piece: DumpPiece): Promise<void> => {
    if (piece.kind === 'header') {
      for (const c of conns) c.send(piece.parts, piece.bytes, false);
      return;
    }
    if (tail || piece.kind === 'last') {
      if (!tail) {
        await until(() => conns.every((c) => c.idle));
        tail = conns[0];
      }
      const t = tail;
      await until(() => roomOn(t) && !t.run.child.stdin!.writableNeedDrain);
      // An open piece ends inside a statement: nothing may be written between it and the next.
      t.send(piece.parts, piece.bytes, piece.open !== true);
      return;
    }
    const table = piece.table === undefined ? undefined : tables.get(piece.table);
    switch (piece.kind) {
      case 'schema': {
        await until(() => roomOn(leastLoaded()));
        const owner = leastLoaded();
        owner.send(piece.parts, piece.bytes);
        tables.set(piece.table!, { owner, rowsOn: new Map() });
        return;
      }
      case 'rows': {
        if (!table) throw new ToolFailed(`the dump has rows for table ${piece.table} before its definition`);
        if (table.firstRows === undefined) {
          // The first statement follows the schema on its connection: no wait for the schema.
          await until(() => roomOn(table.owner));
          table.firstRows = table.owner.send(piece.parts, piece.bytes);
          table.rowsOn.set(table.owner, table.firstRows);
          return;
        }
        // Not before the first statement is confirmed: into an empty table with unique and foreign
        // key checks off (the dump's header), InnoDB inserts in bulk under a table lock, and two
        // first inserts at once deadlock (MariaDB 10.11: ERROR 1213, 1 load in 30 with two
        // connections before this wait).
        const first = table.firstRows;
        await until(() => table.owner.isConfirmed(first) && roomOn(leastLoaded()));
        const c = leastLoaded();
        table.rowsOn.set(c, c.send(piece.parts, piece.bytes));
        return;
      }
      case 'table-end': {
        if (!table) throw new ToolFailed(`the dump ends table ${piece.table} before its definition`);
        await until(() => [...table.rowsOn].every(([c, seq]) => c === table.owner || c.isConfirmed(seq)) && roomOn(table.owner));
        table.owner.send(piece.parts, piece.bytes);
        tables.delete(piece.table!);
        return;
      }
      default: {
        await until(() => roomOn(leastLoaded()));
        leastLoaded().send(piece.parts, piece.bytes);
      }
    }
  };

  try {
    await consume(input, new DumpSplitter(), dispatch);
    if (failure !== undefined) throw failure;
  } catch (e) {
    failure ??= signal?.aborted ? abortReason(signal) : e;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  if (failure !== undefined) {
    // Killed before they can see end-of-input (the pipes close only once they are gone).
    for (const c of conns) c.kill();
    input.destroy();
    await Promise.all(conns.map((c) => c.run.exited));
    throw failure;
  }
  for (const c of conns) c.end();
  await Promise.all(conns.map((c) => c.run.exited));
  const failed = conns.find((c) => c.run.child.exitCode !== 0);
  if (failed) throw failed.run.failure();
}
