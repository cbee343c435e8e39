/**
 * Just enough of the binlog's on-disk format (v4, MySQL 5.0+ and every MariaDB) to find event
 * boundaries in a file that is still being written: the 4-byte magic, then events with a 19-byte
 * header — timestamp u32, type u8, server_id u32, event_size u32, next position u32, flags u16,
 * little-endian. Nothing is decoded beyond that; the replay tool reads the events.
 */
export const BINLOG_MAGIC = Buffer.from([0xfe, 0x62, 0x69, 0x6e]);
const HEADER_BYTES = 19;
// Event types without a meaningful statement time of their own: a format description stamped at server start.
const FORMAT_DESCRIPTION_EVENT = 15;

export interface EventWalk {
  /** Bytes of the file made of whole events (the magic included); what a partial may store. */
  readonly completeBytes: number;
  readonly events: number;
  /** Timestamp (seconds since the epoch) of the last whole event other than a format description, if any. */
  readonly lastTimestamp?: number;
  readonly serverId?: number;
  /** Type of the last whole event: a file the server closed ends with ROTATE_EVENT or STOP_EVENT. */
  readonly lastType?: number;
}

const STOP_EVENT = 3;
const ROTATE_EVENT = 4;

/** Whether a walked file is one the server finished: its last event rotates to the next file or stops the server. */
export function isClosedFile(walk: EventWalk): boolean {
  return walk.lastType === ROTATE_EVENT || walk.lastType === STOP_EVENT;
}

/** Walks the whole events at the start of `bytes`; a torn last event is left out. */
export function walkEvents(bytes: Buffer): EventWalk {
  if (bytes.length < BINLOG_MAGIC.length || !bytes.subarray(0, 4).equals(BINLOG_MAGIC)) return { completeBytes: 0, events: 0 };
  let offset = BINLOG_MAGIC.length;
  let events = 0;
  let lastTimestamp: number | undefined;
  let serverId: number | undefined;
  let lastType: number | undefined;
  while (offset + HEADER_BYTES <= bytes.length) {
    const size = bytes.readUInt32LE(offset + 9);
    if (size < HEADER_BYTES || offset + size > bytes.length) break;
    const type = bytes.readUInt8(offset + 4);
    lastType = type;
    const timestamp = bytes.readUInt32LE(offset);
    if (type !== FORMAT_DESCRIPTION_EVENT && timestamp > 0) lastTimestamp = timestamp;
    serverId ??= bytes.readUInt32LE(offset + 5);
    offset += size;
    events++;
  }
  return { completeBytes: offset, events, ...(lastTimestamp !== undefined ? { lastTimestamp } : {}), ...(serverId !== undefined ? { serverId } : {}), ...(lastType !== undefined ? { lastType } : {}) };
}

const CHUNK = 1 << 20;

/**
 * walkEvents over a file of any size, reading it in 1 MiB pieces and skipping over the bodies
 * of events larger than that: only headers are needed. `limit` stops at that many bytes (the
 * size seen when the walk began: the tool may still be appending). `resume`, an earlier walk of
 * the same file, continues where it ended: the file only grows.
 */
export async function walkFile(path: string, limit?: number, resume?: EventWalk): Promise<EventWalk> {
  const { open } = await import('node:fs/promises');
  const handle = await open(path, 'r');
  try {
    const size = limit ?? (await handle.stat()).size;
    const magic = Buffer.alloc(4);
    if (size < 4 || (await handle.read(magic, 0, 4, 0)).bytesRead < 4 || !magic.equals(BINLOG_MAGIC)) return { completeBytes: 0, events: 0 };
    const from = resume && resume.completeBytes >= 4 && resume.completeBytes <= size ? resume : undefined;
    let offset = from?.completeBytes ?? 4;
    let events = from?.events ?? 0;
    let lastTimestamp = from?.lastTimestamp;
    let serverId = from?.serverId;
    let lastType = from?.lastType;
    const buf = Buffer.alloc(CHUNK);
    while (offset + HEADER_BYTES <= size) {
      const { bytesRead } = await handle.read(buf, 0, Math.min(CHUNK, size - offset), offset);
      let at = 0;
      while (at + HEADER_BYTES <= bytesRead) {
        const eventSize = buf.readUInt32LE(at + 9);
        if (eventSize < HEADER_BYTES || offset + at + eventSize > size) {
          offset += at;
          return done();
        }
        const type = buf.readUInt8(at + 4);
        lastType = type;
        const timestamp = buf.readUInt32LE(at);
        if (type !== FORMAT_DESCRIPTION_EVENT && timestamp > 0) lastTimestamp = timestamp;
        serverId ??= buf.readUInt32LE(at + 5);
        events++;
        at += eventSize;
      }
      if (at === 0) break; // cannot happen: a header fits in a chunk
      offset += at;
    }
    return done();

    function done(): EventWalk {
      return { completeBytes: offset, events, ...(lastTimestamp !== undefined ? { lastTimestamp } : {}), ...(serverId !== undefined ? { serverId } : {}), ...(lastType !== undefined ? { lastType } : {}) };
    }
  } finally {
    await handle.close();
  }
}
