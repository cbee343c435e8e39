import type { ArchiveStream } from './archive-stream';
import type { CatalogObject } from './catalog-model';

/**
 * One planned deletion: what, why, how much. Its keys are produced on demand, and in batches for
 * apply: an archive deletion can name millions of WAL segments, which the plan holds as a range
 * of its stream instead of as strings.
 */
export interface PlannedDeletion {
  readonly what: 'backup' | 'archive' | 'unfinished';
  /** The backup id, or the archive stream and the first piece's key. */
  readonly id: string;
  /** How many objects it deletes. */
  readonly objects: number;
  readonly bytes: number;
  readonly reason: string;
  /** Object Lock retention ends then; the deletion is planned for that day and not done before. */
  readonly notBefore?: string;
  /** Every key, in the order they are deleted (a backup's manifest first). Allocates them all. */
  keys(): string[];
  /** The keys in that order, `size` at a time. */
  keyBatches(size: number): IterableIterator<string[]>;
  /** `--json`: the keys themselves up to JSON_KEYS_SHOWN, else the first and the last. */
  toJSON(): Record<string, unknown>;
}

export const JSON_KEYS_SHOWN = 1000;

abstract class Deletion implements PlannedDeletion {
  abstract readonly what: PlannedDeletion['what'];
  abstract readonly id: string;
  abstract readonly objects: number;
  abstract readonly bytes: number;
  abstract readonly reason: string;
  abstract readonly notBefore?: string;
  abstract keyBatches(size: number): IterableIterator<string[]>;

  keys(): string[] {
    const all: string[] = [];
    for (const batch of this.keyBatches(65_536)) for (const k of batch) all.push(k);
    return all;
  }

  toJSON(): Record<string, unknown> {
    const { what, id, objects, bytes, reason, notBefore } = this;
    const keys = objects <= JSON_KEYS_SHOWN ? { keys: this.keys() } : { firstKey: this.keyBatches(1).next().value?.[0], lastKey: this.lastKey() };
    return { what, id, objects, bytes, reason, ...(notBefore ? { notBefore } : {}), ...keys };
  }

  protected abstract lastKey(): string | undefined;
}

/** A backup's folder or an unfinished backup's parts: a handful of keys, held as they are. */
export class ObjectsDeletion extends Deletion {
  readonly objects: number;
  readonly bytes: number;
  readonly notBefore?: string;

  constructor(
    readonly what: 'backup' | 'unfinished',
    readonly id: string,
    private readonly ordered: readonly string[],
    objects: readonly CatalogObject[],
    readonly reason: string,
    now: string,
  ) {
    super();
    this.objects = ordered.length;
    this.bytes = objects.reduce((n, o) => n + o.bytes, 0);
    const lockEnds = objects.map((o) => o.lockedUntil).filter((l): l is string => l !== undefined && l > now).sort().pop();
    if (lockEnds) this.notBefore = lockEnds;
  }

  *keyBatches(size: number): IterableIterator<string[]> {
    for (let i = 0; i < this.ordered.length; i += size) yield this.ordered.slice(i, i + size);
  }

  protected lastKey(): string | undefined {
    return this.ordered[this.ordered.length - 1];
  }
}

/** Pieces [from, to) of one archive stream. */
export class ArchiveDeletion extends Deletion {
  readonly what = 'archive' as const;
  readonly id: string;
  readonly objects: number;
  readonly bytes: number;
  readonly notBefore?: string;

  constructor(
    readonly stream: ArchiveStream,
    readonly from: number,
    readonly to: number,
    readonly reason: string,
    nowMs: number,
  ) {
    super();
    this.id = `${stream.id} ${stream.key(from)}`;
    this.objects = to - from;
    let bytes = 0;
    let lockEnds = NaN;
    for (let i = from; i < to; i++) {
      bytes += stream.bytes(i);
      const l = stream.lockedUntil(i);
      if (l > nowMs && !(l <= lockEnds)) lockEnds = l;
    }
    this.bytes = bytes;
    if (!Number.isNaN(lockEnds)) this.notBefore = new Date(lockEnds).toISOString();
  }

  *keyBatches(size: number): IterableIterator<string[]> {
    for (let i = this.from; i < this.to; i += size) {
      const batch: string[] = [];
      for (let j = i; j < Math.min(i + size, this.to); j++) batch.push(this.stream.key(j));
      yield batch;
    }
  }

  protected lastKey(): string | undefined {
    return this.to > this.from ? this.stream.key(this.to - 1) : undefined;
  }
}
