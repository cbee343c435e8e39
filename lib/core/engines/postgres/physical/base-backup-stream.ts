import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { Client } from 'pg';
import { DatabaseUnreachable } from '../../../errors';

/**
 * A base backup taken over the replication connection itself: node sends BASE_BACKUP and reads the
 * server's archive off the socket, instead of running pg_basebackup and reading its output from a
 * pipe. pg_basebackup only relays what the walsender sends, and on the machines a worker runs on
 * (two cores shared with the server) that relay cost 1.2–1.4 CPU-s per GiB (pg_basebackup's share
 * of the floors in BENCHMARKS.md).
 *
 * The protocol is PostgreSQL 15's (`TARGET 'client'`): one COPY OUT whose CopyData messages each
 * start with a type byte: 'n' a new archive (name, tablespace path), 'd' archive or manifest bytes,
 * 'p' progress, 'm' the manifest begins. The archive is a tar without its two closing zero blocks.
 * Older servers get pg_basebackup (backup.ts). pg's own message parser keeps a CopyData's bytes only
 * until the next socket read (it reuses its buffer), and every byte would have to be copied out of
 * it; so once pg has connected and authenticated, this module takes the socket over and parses the
 * few message types itself, handing on views of the socket's own chunks.
 */

export interface BaseBackupStream {
  /** The base archive's tar bytes, as views of the socket's chunks; errors if the backup fails. */
  readonly archive: Readable;
  /**
   * The backup manifest the server sends after the archive; resolves once the server reported the
   * backup complete (its end position), rejects on any failure. The stop LSN and timeline are read
   * from the manifest, as for pg_basebackup's.
   */
  readonly end: Promise<Buffer>;
  /** Drops the connection (the server then abandons the backup). */
  close(): void;
}

const quote = (s: string): string => `'${s.replace(/'/g, "''")}'`;

/** The command pg_basebackup -X fetch --checkpoint=fast --no-verify-checksums sends, less PROGRESS (a second walk of the data directory to estimate sizes). */
export function baseBackupCommand(label: string): string {
  const options = [`LABEL ${quote(label)}`, 'WAL', 'WAIT 0', 'TABLESPACE_MAP', 'VERIFY_CHECKSUMS 0', "MANIFEST 'yes'", "TARGET 'client'", "CHECKPOINT 'fast'"];
  return `BASE_BACKUP ( ${options.join(', ')} )`;
}

/** The fields of an ErrorResponse or NoticeResponse, by their one-letter codes. */
export function parseErrorFields(payload: Buffer): Record<string, string> {
  const fields: Record<string, string> = {};
  for (let at = 0; at < payload.length && payload[at] !== 0; ) {
    const end = payload.indexOf(0, at + 1);
    if (end < 0) break;
    fields[String.fromCharCode(payload[at])] = payload.toString('utf8', at + 1, end);
    at = end + 1;
  }
  return fields;
}

/** A DataRow's columns as text (null for SQL NULL). */
export function parseDataRow(payload: Buffer): (string | null)[] {
  const columns: (string | null)[] = [];
  let at = 2;
  for (let i = payload.readUInt16BE(0); i > 0; i--) {
    const length = payload.readInt32BE(at);
    at += 4;
    columns.push(length < 0 ? null : payload.toString('utf8', at, at + length));
    if (length > 0) at += length;
  }
  return columns;
}

/**
 * Splits the backend's byte stream into messages. CopyData messages whose payload is archive or
 * manifest data ('d' after the CopyData's own 'd') are handed on in pieces as they arrive, views of
 * the chunks given to `push`; every other message (small) whole, once complete.
 */
export class BackendMessages {
  private readonly header = Buffer.alloc(5);
  private headerFill = 0;
  private type = 0;
  /** Payload bytes still to come of the current message. */
  private remaining = 0;
  /** The CopyData message now streaming its data through onData. */
  private streaming = false;
  private parts: Buffer[] = [];

  constructor(
    private readonly onMessage: (type: string, payload: Buffer) => void,
    private readonly onData: (piece: Buffer) => void,
  ) {}

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.headerFill < 5) {
        const n = Math.min(5 - this.headerFill, chunk.length - at);
        chunk.copy(this.header, this.headerFill, at, at + n);
        this.headerFill += n;
        at += n;
        if (this.headerFill < 5) return;
        this.type = this.header[0];
        this.remaining = this.header.readUInt32BE(1) - 4;
        if (this.remaining === 0) this.complete();
        continue;
      }
      // CopyData ('d') of data ('d'): streamed once its type byte is known.
      if (!this.streaming && this.type === 0x64 && this.parts.length === 0 && chunk[at] === 0x64) {
        this.streaming = true;
        at++;
        this.remaining--;
        if (this.remaining === 0) this.complete();
        continue;
      }
      const n = Math.min(this.remaining, chunk.length - at);
      const piece = chunk.subarray(at, at + n);
      at += n;
      this.remaining -= n;
      if (this.streaming) this.onData(piece);
      else this.parts.push(piece);
      if (this.remaining === 0) this.complete();
    }
  }

  private complete(): void {
    this.headerFill = 0;
    if (this.streaming) {
      // Its bytes went out as they came: nothing to put together (one such message per 32 KiB).
      this.streaming = false;
      return;
    }
    const { parts } = this;
    this.parts = [];
    this.onMessage(String.fromCharCode(this.type), parts.length === 1 ? parts[0] : Buffer.concat(parts));
  }
}

/** The socket pg connected and authenticated; from now on it is ours alone (see the module's comment). */
function takeSocket(client: Client): Socket {
  const socket = (client as unknown as { connection: { stream: Socket } }).connection.stream;
  socket.pause();
  socket.removeAllListeners('data');
  return socket;
}

/**
 * Starts BASE_BACKUP on `client`, a replication connection to a PostgreSQL ≥ 15 server that is idle
 * (connected, no query running). The client is not usable for anything else afterwards: close()
 * ends it. `what` names the source in errors.
 */
export function startBaseBackup(client: Client, label: string, what: string): BaseBackupStream {
  const socket = takeSocket(client);
  let phase: 'results' | 'archive' | 'manifest' | 'after' | 'done' = 'results';
  let archiveStarted = false;
  let failure: Error | undefined;
  const manifest: Buffer[] = [];
  /** The end position's row (recptr, tli), the last thing BASE_BACKUP sends before it is done. */
  let endRow: (string | null)[] | undefined;
  let settle!: { resolve: (manifest: Buffer) => void; reject: (e: Error) => void };
  const end = new Promise<Buffer>((resolve, reject) => (settle = { resolve, reject }));
  end.catch(() => undefined); // the archive's reader sees the failure first; end is awaited after

  const archive = new Readable({ highWaterMark: 4 << 20, read: () => socket.resume() });
  // A backup refused before its archive is read is closed with no reader: its error is end's.
  archive.on('error', () => undefined);

  const fail = (e: Error) => {
    if (failure) return;
    failure = e;
    archive.destroy(e);
    settle.reject(e);
    socket.destroy();
  };
  const protocolError = (detail: string) => fail(new DatabaseUnreachable(`${what}: unexpected answer to BASE_BACKUP: ${detail}`));

  const parser = new BackendMessages(
    (type, payload) => {
      switch (type) {
        case 'E': {
          const f = parseErrorFields(payload);
          const error = Object.assign(new DatabaseUnreachable(`${what}: the server failed the base backup: ${f.M ?? 'no message'}${f.D ? ` (${f.D})` : ''}`), { code: f.C });
          return fail(error);
        }
        case 'D':
          if (phase === 'after') endRow = parseDataRow(payload);
          return;
        case 'H':
          if (phase !== 'results') return protocolError('a second COPY');
          phase = 'archive';
          return;
        case 'd': {
          const kind = String.fromCharCode(payload[0]);
          if (kind === 'n') {
            if (phase !== 'archive' || archiveStarted) return protocolError('more than one archive (a tablespace?)');
            archiveStarted = true;
          } else if (kind === 'm') {
            phase = 'manifest';
            archive.push(null);
          } else if (kind !== 'p') {
            return protocolError(`a CopyData message of type '${kind}'`);
          }
          return;
        }
        case 'c':
          if (phase === 'archive') archive.push(null);
          phase = 'after';
          return;
        case 'Z': {
          if (phase !== 'after' || !endRow?.[0]) return protocolError('it ended before the backup did');
          phase = 'done';
          settle.resolve(Buffer.concat(manifest));
          socket.end(Buffer.from([0x58, 0, 0, 0, 4])); // Terminate
          return;
        }
        default:
          // RowDescription, CommandComplete, NoticeResponse, ParameterStatus: nothing to act on.
          return;
      }
    },
    (piece) => {
      if (phase === 'manifest') manifest.push(piece);
      else if (phase === 'archive' && archiveStarted) {
        if (!archive.push(piece)) socket.pause();
      } else protocolError('data outside an archive');
    },
  );

  socket.on('data', (chunk: Buffer) => {
    try {
      parser.push(chunk);
    } catch (e) {
      protocolError((e as Error).message);
    }
  });
  socket.on('error', (e) => fail(new DatabaseUnreachable(`${what}: the connection failed during the base backup: ${e.message}`, { cause: e })));
  socket.on('close', () => {
    if (phase !== 'done') fail(new DatabaseUnreachable(`${what}: the server closed the connection during the base backup`));
  });

  const text = Buffer.from(baseBackupCommand(label) + '\0');
  const query = Buffer.alloc(5);
  query.write('Q', 0);
  query.writeUInt32BE(4 + text.length, 1);
  socket.write(Buffer.concat([query, text]));
  socket.resume();

  return {
    archive,
    end,
    close: () => {
      if (phase !== 'done') fail(new Error(`${what}: the base backup was stopped`));
    },
  };
}
