import type { Tier } from '../config/tiers';

/**
 * One WAL timeline or binlog sequence as retention sees it, in a compact form: a column per fact
 * (typed arrays, in chunks of 64 Ki pieces so that growing a long stream never copies; the first
 * chunk starts at 256 and doubles, so a short stream costs kilobytes, not 3 MB), about 45 bytes a piece
 * and no key strings. Keys are rebuilt from the position and generation by the stream's naming,
 * which the builder checks against every listed key: retention never deletes a key it did not list.
 * Five million WAL segments fit in about 225 MB; one JS object per piece took ~625 MB per million.
 */

export type StreamKind = 'wal' | 'binlog';

/** One archived object: completed (a whole segment or file) or a flushed partial of the open one. */
export interface ArchivePiece {
  readonly key: string;
  readonly bytes: number;
  readonly tier: Tier;
  /** Object Lock retain-until (ISO): the object cannot be deleted before. */
  readonly lockedUntil?: string;
  /** Positions [start, end): what replaying this piece covers. */
  readonly start: number;
  readonly end: number;
  /** Time of the newest change in it (ISO; for a segment: about when it was archived). */
  readonly endTime: string;
  /** A partial's generation; a higher one, or the completed piece, supersedes it. */
  readonly partial?: number;
}

/** What a builder is given for a piece: times in ms since the epoch, generation 0 or absent when complete. */
export interface PieceInput {
  readonly start: number;
  readonly end: number;
  readonly endTime: number;
  readonly bytes: number;
  readonly lockedUntil?: number;
  readonly partial?: number;
  readonly tier?: Tier;
}

/** The key of the piece at `start` with generation `partial` (0: complete), exactly as the store lists it. */
export type PieceNaming = (start: number, partial: number) => string;

const CHUNK_BITS = 16;
const CHUNK = 1 << CHUNK_BITS;
const MASK = CHUNK - 1;
const FIRST_CHUNK = 256;
const TIERS: readonly Tier[] = ['standard', 'warm', 'cold'];

interface Chunk {
  readonly start: Float64Array;
  readonly end: Float64Array;
  readonly endTime: Float64Array;
  readonly bytes: Float64Array;
  /** NaN: no lock. */
  readonly lockedUntil: Float64Array;
  /** 0: complete. */
  readonly partial: Uint32Array;
  readonly tier: Uint8Array;
}

function newChunk(size: number): Chunk {
  return {
    start: new Float64Array(size),
    end: new Float64Array(size),
    endTime: new Float64Array(size),
    bytes: new Float64Array(size),
    lockedUntil: new Float64Array(size),
    partial: new Uint32Array(size),
    tier: new Uint8Array(size),
  };
}

/** The first chunk, full: twice the room (at most CHUNK), its pieces copied. */
function grown(c: Chunk): Chunk {
  const next = newChunk(Math.min(CHUNK, c.start.length * 2));
  for (const column of Object.keys(c) as (keyof Chunk)[]) next[column].set(c[column]);
  return next;
}

/**
 * Pieces sorted by start, then generation, the completed piece last: so the pieces of one start
 * are adjacent and the best of them comes last.
 */
export class ArchiveStream {
  /** `kind/timeline`: what a backup's `replay.stream` names. */
  readonly id: string;

  constructor(
    readonly kind: StreamKind,
    /** WAL timeline (8 hex digits) or the binlog sequence's name. */
    readonly timeline: string,
    private readonly naming: PieceNaming,
    private readonly chunks: readonly Chunk[],
    readonly length: number,
  ) {
    this.id = `${kind}/${timeline}`;
  }

  start(i: number): number {
    return this.chunks[i >>> CHUNK_BITS].start[i & MASK];
  }
  end(i: number): number {
    return this.chunks[i >>> CHUNK_BITS].end[i & MASK];
  }
  /** ms since the epoch. */
  endTime(i: number): number {
    return this.chunks[i >>> CHUNK_BITS].endTime[i & MASK];
  }
  bytes(i: number): number {
    return this.chunks[i >>> CHUNK_BITS].bytes[i & MASK];
  }
  /** ms since the epoch; NaN when not locked. */
  lockedUntil(i: number): number {
    return this.chunks[i >>> CHUNK_BITS].lockedUntil[i & MASK];
  }
  /** 0 for a completed piece. */
  partial(i: number): number {
    return this.chunks[i >>> CHUNK_BITS].partial[i & MASK];
  }
  tier(i: number): Tier {
    return TIERS[this.chunks[i >>> CHUNK_BITS].tier[i & MASK]];
  }
  key(i: number): string {
    return this.naming(this.start(i), this.partial(i));
  }

  /** A newer generation or the completed piece of the same start makes this one redundant. */
  superseded(i: number): boolean {
    return i + 1 < this.length && this.start(i + 1) === this.start(i);
  }

  /** One piece as an object (for people, tests and small catalogs: each call allocates). */
  piece(i: number): ArchivePiece {
    const locked = this.lockedUntil(i);
    const partial = this.partial(i);
    return {
      key: this.key(i),
      bytes: this.bytes(i),
      tier: this.tier(i),
      ...(Number.isNaN(locked) ? {} : { lockedUntil: new Date(locked).toISOString() }),
      start: this.start(i),
      end: this.end(i),
      endTime: new Date(this.endTime(i)).toISOString(),
      ...(partial > 0 ? { partial } : {}),
    };
  }

  *pieces(): IterableIterator<ArchivePiece> {
    for (let i = 0; i < this.length; i++) yield this.piece(i);
  }

  /** The stream without the pieces `drop` names, and with `retier`'s tiers (catalogAfter). */
  without(drop: (i: number) => boolean, retier?: (i: number) => Tier | undefined): ArchiveStream {
    const b = new ArchiveStreamBuilder(this.kind, this.timeline, this.naming);
    for (let i = 0; i < this.length; i++) {
      if (drop(i)) continue;
      const locked = this.lockedUntil(i);
      b.add({
        start: this.start(i),
        end: this.end(i),
        endTime: this.endTime(i),
        bytes: this.bytes(i),
        ...(Number.isNaN(locked) ? {} : { lockedUntil: locked }),
        partial: this.partial(i),
        tier: retier?.(i) ?? this.tier(i),
      });
    }
    return b.build();
  }
}

/** Collects a stream's pieces (in any order) a page at a time. */
export class ArchiveStreamBuilder {
  private readonly chunks: Chunk[] = [];
  private length = 0;
  private sorted = true;
  private lastStart = -Infinity;
  private lastRank = 0;

  constructor(
    readonly kind: StreamKind,
    readonly timeline: string,
    private readonly naming: PieceNaming,
  ) {}

  /**
   * Adds a listed piece. With `listedKey`, a piece whose key the naming would not rebuild exactly
   * is refused (returns false): a name retention cannot reproduce is not one it may delete.
   */
  add(p: PieceInput, listedKey?: string): boolean {
    const partial = p.partial ?? 0;
    if (listedKey !== undefined && this.naming(p.start, partial) !== listedKey) return false;
    const i = this.length;
    const n = i >>> CHUNK_BITS;
    const j = i & MASK;
    if (j === 0) this.chunks.push(newChunk(n === 0 ? FIRST_CHUNK : CHUNK));
    else if (j === this.chunks[n].start.length) this.chunks[n] = grown(this.chunks[n]);
    const c = this.chunks[n];
    c.start[j] = p.start;
    c.end[j] = p.end;
    c.endTime[j] = p.endTime;
    c.bytes[j] = p.bytes;
    c.lockedUntil[j] = p.lockedUntil ?? NaN;
    c.partial[j] = partial;
    c.tier[j] = TIERS.indexOf(p.tier ?? 'standard');
    if (this.lastStart > p.start || (this.lastStart === p.start && this.lastRank > rank(partial))) this.sorted = false;
    this.lastStart = p.start;
    this.lastRank = rank(partial);
    this.length++;
    return true;
  }

  build(): ArchiveStream {
    const stream = new ArchiveStream(this.kind, this.timeline, this.naming, this.chunks, this.length);
    if (this.sorted) return stream;
    // Listings come in key order, which is position order for WAL; binlog numbers past 999999 and
    // a completed file listed before its partials are not. Sort a permutation, then copy once.
    const order = new Uint32Array(this.length);
    for (let i = 0; i < order.length; i++) order[i] = i;
    order.sort((a, b) => stream.start(a) - stream.start(b) || rank(stream.partial(a)) - rank(stream.partial(b)));
    const b = new ArchiveStreamBuilder(this.kind, this.timeline, this.naming);
    for (const i of order) {
      const locked = stream.lockedUntil(i);
      b.add({ start: stream.start(i), end: stream.end(i), endTime: stream.endTime(i), bytes: stream.bytes(i), ...(Number.isNaN(locked) ? {} : { lockedUntil: locked }), partial: stream.partial(i), tier: stream.tier(i) });
    }
    return b.build();
  }
}

/** Generations ascending, the completed piece (0) above them all. */
function rank(partial: number): number {
  return partial === 0 ? Number.MAX_SAFE_INTEGER : partial;
}
