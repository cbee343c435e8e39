import pLimit from 'p-limit';
import { StreamArchive, type ArchiveHeader } from '../../../repository/archive';
import { Repository } from '../../../repository/repository';
import type { ObjectStore } from '../../../repository/storage';
import { factsOf, inventoryOf, type BinlogInventory, type BinlogObjectFacts } from './inventory';

const PARALLEL_HEADERS = 8;

/** The binlog archive of a source: StreamArchive objects under `<source>/binlog/`, and their inventory. */
export class BinlogArchive {
  readonly objects: StreamArchive;

  constructor(repository: Repository, source: string) {
    this.objects = new StreamArchive(repository, source, 'binlog');
  }

  /** For listings without a key (rpo-check, list): headers are read unauthenticated. */
  static keyless(store: ObjectStore, source: string): BinlogArchive {
    return new BinlogArchive(Repository.keyless(store), source);
  }

  /** Names and header facts of every object the inventory needs (the object each file is read from). */
  async inventory(): Promise<{ inventory: BinlogInventory; storedBytes: number; objects: number }> {
    const listed = await this.objects.list();
    const names = listed.map((o) => o.name);
    const first = inventoryOf(names);
    const facts = new Map<string, BinlogObjectFacts>();
    const limit = pLimit(PARALLEL_HEADERS);
    await Promise.all(
      first.files.map((f) =>
        limit(async () => {
          const header: ArchiveHeader | undefined = await this.objects.readHeader(f.object).catch(() => undefined);
          const parsed = header && factsOf(header);
          if (parsed) facts.set(f.object, parsed);
        }),
      ),
    );
    return { inventory: inventoryOf(names, (n) => facts.get(n)), storedBytes: listed.reduce((n, o) => n + o.storedBytes, 0), objects: listed.length };
  }
}
