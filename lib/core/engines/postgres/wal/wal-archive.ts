import { StorageError } from '../../../errors';
import { StreamArchive, type ArchivedObjectInfo, type ArchiveHeader } from '../../../repository/archive';
import { Repository } from '../../../repository/repository';
import type { ObjectStore } from '../../../repository/storage';
import { inventoryOf, newestPartialOf, type WalInventory, type WalRun } from './wal-inventory';
import { archiveNameOfWalFile, isValidSegmentBytes, parseArchiveName, parseTimelineHistory, partialPrefix, SEGMENT_NAME, type TimelineSwitch } from './wal-names';

/** Header attributes the WAL writers record with every object (authenticated with it). */
export interface WalObjectAttributes {
  /**
   * LSN the object's WAL reaches: a segment's end, or how far a partial was written; for a
   * timeline history file, where its parent timeline ended (the switch point).
   */
  readonly end: string;
  /** When it was taken: a completed segment's last write (mtime), a partial's snapshot. */
  readonly at: string;
}

/** How far the archive reaches: the newest point a replay can get to on `timeline`. */
export interface WalDurablePoint {
  readonly timeline: string;
  readonly lsn: string;
  /** When that WAL was taken from the server; commits up to about then are in the archive. */
  readonly time: string;
  readonly object: string;
}

export type WalFetchResult = 'segment' | 'partial' | 'history' | 'absent';

/** A source's WAL archive: what it holds, how far it reaches, and fetching from it. */
export class WalArchive {
  readonly objects: StreamArchive;

  constructor(repository: Repository, source: string) {
    this.objects = new StreamArchive(repository, source, 'wal');
  }

  /** For listings and freshness without a key (rpo-check). */
  static keyless(store: ObjectStore, source: string): WalArchive {
    return new WalArchive(Repository.keyless(store), source);
  }

  list(): Promise<ArchivedObjectInfo[]> {
    return this.objects.list();
  }

  /** The segment size, from the header of any segment or partial (both hold a whole segment). */
  async segmentBytes(objects: readonly ArchivedObjectInfo[]): Promise<number | undefined> {
    const sample = objects.find((o) => {
      const kind = parseArchiveName(o.name)?.kind;
      return kind === 'segment' || kind === 'partial';
    });
    if (!sample) return undefined;
    const { plainBytes } = await this.objects.readHeader(sample.name);
    return isValidSegmentBytes(plainBytes) ? plainBytes : undefined;
  }

  /** Runs and gaps per timeline (across timeline switches too); undefined when nothing is archived yet. */
  async inventory(objects?: readonly ArchivedObjectInfo[]): Promise<WalInventory | undefined> {
    const listed = objects ?? (await this.list());
    const segmentBytes = await this.segmentBytes(listed);
    if (segmentBytes === undefined) return undefined;
    return inventoryOf(
      listed.map((o) => o.name),
      segmentBytes,
      await this.switches(listed),
    );
  }

  /**
   * Where each archived timeline branched off, from its history file: the header's attributes
   * (readable without a key), else the file itself when this archive has the key.
   */
  async switches(objects: readonly ArchivedObjectInfo[]): Promise<Map<string, TimelineSwitch>> {
    const found = new Map<string, TimelineSwitch>();
    for (const o of objects) {
      const parsed = parseArchiveName(o.name);
      if (parsed?.kind !== 'history') continue;
      const a = (await this.objects.readHeader(o.name)).attributes;
      if (typeof a?.parent === 'string' && typeof a.end === 'string') {
        found.set(parsed.timeline, { parent: a.parent, switchLsn: a.end });
        continue;
      }
      const text = await this.readText(o.name).catch(() => undefined); // keyless: the switch stays unknown
      const sw = text === undefined ? undefined : parseTimelineHistory(text);
      if (sw) found.set(parsed.timeline, sw);
    }
    return found;
  }

  private async readText(name: string): Promise<string> {
    const { plaintext } = await this.objects.open(name);
    const chunks: Buffer[] = [];
    for await (const c of plaintext) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  /** Where a run ends, from the header of its last object. */
  async endOf(run: WalRun): Promise<WalDurablePoint> {
    const header = await this.objects.readHeader(run.lastObject);
    const attributes = walAttributes(header);
    return { timeline: run.timeline, lsn: attributes?.end ?? run.completeEndLsn, time: attributes?.at ?? '', object: run.lastObject };
  }

  /** The end of the newest run on the newest timeline. */
  async newestDurablePoint(inventory?: WalInventory): Promise<WalDurablePoint | undefined> {
    const inv = inventory ?? (await this.inventory());
    const newest = inv?.timelines[inv.timelines.length - 1];
    const run = newest?.runs[newest.runs.length - 1];
    return run ? this.endOf(run) : undefined;
  }

  /**
   * Writes the file PostgreSQL asks for (`%f` of restore_command) to `dest`: the completed segment,
   * else the newest partial of it (the archive's last, still open segment: replay ends inside it),
   * or a timeline history file. 'absent' writes nothing.
   */
  async fetch(file: string, dest: string, options: { signal?: AbortSignal; mode?: number } = {}): Promise<WalFetchResult> {
    const name = archiveNameOfWalFile(file);
    if (name === undefined) return 'absent';
    try {
      await this.objects.readToFile(name, dest, options);
      return SEGMENT_NAME.test(file) ? 'segment' : 'history';
    } catch (e) {
      if (!(e instanceof StorageError && e.code === 'NoSuchKey')) throw e;
    }
    if (!SEGMENT_NAME.test(file)) return 'absent';
    const partial = newestPartialOf(
      (await this.objects.list(partialPrefix(file))).map((o) => o.name),
      file,
    );
    if (!partial) return 'absent';
    await this.objects.readToFile(partial.name, dest, options);
    return 'partial';
  }
}

export function walAttributes(header: ArchiveHeader): WalObjectAttributes | undefined {
  const a = header.attributes;
  return typeof a?.end === 'string' && typeof a.at === 'string' ? { end: a.end, at: a.at } : undefined;
}
