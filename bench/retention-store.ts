import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { PgPhysicalDetails } from '../lib/core/engines/postgres/physical/details';
import { MANIFEST_FORMAT, MANIFEST_VERSION, type BackupManifest } from '../lib/core/repository/manifest';
import type { ListPage, ObjectStore, StoredObjectInfo } from '../lib/core/repository/storage';

/**
 * A repository that exists only as arithmetic: `backups` hourly physical backups (a full every
 * week, a differential every day, incrementals between) and a WAL archive of `walSegments`
 * segments spread evenly over the same years, with a few gaps and a partial at the end. Listings
 * are generated a page (1,000 keys) at a time, manifests when they are read: nothing is held, so
 * the benchmark measures what retention holds, not the fixture.
 */
export interface GeneratedRepositoryOptions {
  readonly source: string;
  readonly backups: number;
  readonly walSegments: number;
  /** The newest backup's start; everything else is before it. */
  readonly now: number;
  /** Missing stretches of WAL (3 segments each), spread evenly. */
  readonly gaps: number;
}

const HOUR = 3_600_000;
const PAGE = 1000;
const SEGMENT = 16 * 1024 * 1024;
const PER_LOG = 256; // 16 MiB segments per 4 GiB log
const HEX64 = 'a'.repeat(64);
const hex8 = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');

export class GeneratedRepository implements ObjectStore {
  readonly description = 'generated repository (bench)';
  private readonly first: number;
  private readonly msPerSegment: number;
  private readonly gapEvery: number;

  constructor(private readonly o: GeneratedRepositoryOptions) {
    this.first = o.now - (o.backups - 1) * HOUR;
    // The WAL begins with the oldest backup and reaches now + 1 hour.
    this.msPerSegment = (o.backups * HOUR) / o.walSegments;
    this.gapEvery = o.gaps > 0 ? Math.floor(o.walSegments / (o.gaps + 1)) : Infinity;
  }

  /** Backup i: its id, times, type, parent and chain. */
  backup(i: number) {
    const started = this.first + i * HOUR;
    const finished = started + 10 * 60_000;
    const id = `${new Date(started).toISOString().replace(/[-:]/g, '')}-${i.toString(16).padStart(6, '0')}`;
    const full = i - (i % 168);
    const type = i % 168 === 0 ? 'full' : i % 24 === 0 ? 'diff' : 'incr';
    const parent = type === 'full' ? undefined : type === 'diff' ? full : i - 1;
    // A differential builds on the full (depth 1); an incremental on the backup before it.
    const anchor = i - (i % 24);
    const depth = type === 'full' ? 0 : (anchor === full ? 0 : 1) + (i - anchor);
    return { i, id, started, finished, type, parent, full, depth } as const;
  }

  private segmentAt(t: number): number {
    return PER_LOG + Math.floor((t - this.first) / this.msPerSegment);
  }

  private lsn(segment: number): string {
    return `${(Math.floor(segment / PER_LOG)).toString(16).toUpperCase()}/${((segment % PER_LOG) * SEGMENT).toString(16).toUpperCase()}`;
  }

  private manifest(i: number): BackupManifest {
    const b = this.backup(i);
    const details: PgPhysicalDetails = {
      kind: 'pg-physical', serverVersion: '15.8', serverMajor: 15, pgBasebackupMajor: 15, systemIdentifier: '7300000000000000000', timeline: 1,
      startLsn: this.lsn(this.segmentAt(b.started)), stopLsn: this.lsn(this.segmentAt(b.finished)), backupLabel: 'START WAL LOCATION: bench',
      dataChecksums: true, blockSize: 65536, index: 'index', files: 1000, storedBlocks: 100, reusedBlocks: 1000, zeroBlocks: 0,
      requestedType: b.type, checksumFailureCount: 0, checksumFailures: [],
    };
    const object = (name: string, bytes: number) => ({ name, key: `${this.o.source}/backups/${b.id}/${name}`, compression: 'zstd' as const, plainBytes: bytes, storedBytes: bytes, storedSha256: HEX64 });
    const parent = b.parent === undefined ? undefined : this.backup(b.parent);
    return {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      id: b.id,
      source: this.o.source,
      engine: 'postgres',
      type: b.type,
      ...(parent ? { parent: parent.id, chain: { base: this.backup(b.full).id, depth: b.depth } } : {}),
      startedAt: new Date(b.started).toISOString(),
      finishedAt: new Date(b.finished).toISOString(),
      restorePoint: { time: new Date(b.finished).toISOString(), lsn: this.lsn(this.segmentAt(b.finished)) },
      encryption: { algorithm: 'aes-256-gcm-segmented', context: { tidemark: 'backup' }, dataKey: { provider: 'kms', keyId: 'alias/bench', ciphertext: 'AAAA' } },
      objects: [object('pack-0', this.packBytes(b.type)), object('index', 4096)],
      plainBytes: 0,
      storedBytes: 0,
      details,
    };
  }

  private packBytes(type: string): number {
    return type === 'full' ? 40 * 2 ** 30 : type === 'diff' ? 2 * 2 ** 30 : 200 * 2 ** 20;
  }

  private *backupObjects(): Generator<StoredObjectInfo> {
    for (let i = 0; i < this.o.backups; i++) {
      const b = this.backup(i);
      const at = new Date(b.finished).toISOString();
      const folder = `${this.o.source}/backups/${b.id}/`;
      yield { key: `${folder}index`, size: 4096, modifiedAt: at, storageClass: 'STANDARD' };
      yield { key: `${folder}lease.json`, size: 120, modifiedAt: new Date(b.started).toISOString(), storageClass: 'STANDARD' };
      yield { key: `${folder}manifest.json`, size: 2048, modifiedAt: at, storageClass: 'STANDARD' };
      yield { key: `${folder}pack-0`, size: this.packBytes(b.type), modifiedAt: at, storageClass: 'STANDARD' };
    }
  }

  private *walObjects(): Generator<StoredObjectInfo> {
    const prefix = `${this.o.source}/wal/00000001/00000001`;
    for (let n = 0; n < this.o.walSegments; n++) {
      if (n % this.gapEvery < 3 && n >= this.gapEvery) continue;
      const segment = PER_LOG + n;
      const name = `${prefix}${hex8(Math.floor(segment / PER_LOG))}${hex8(segment % PER_LOG)}`;
      const at = new Date(this.first + (n + 1) * this.msPerSegment).toISOString();
      if (n === this.o.walSegments - 1) {
        for (let g = 1; g <= 3; g++) yield { key: `${name}.partial.${String(g).padStart(6, '0')}`, size: SEGMENT, modifiedAt: at, storageClass: 'STANDARD' };
      } else yield { key: name, size: SEGMENT, modifiedAt: at, storageClass: 'STANDARD' };
    }
  }

  async *listPages(prefix: string): AsyncIterable<ListPage> {
    const all = prefix === `${this.o.source}/backups/` ? this.backupObjects() : prefix === `${this.o.source}/wal/` ? this.walObjects() : undefined;
    if (!all) return;
    let page: StoredObjectInfo[] = [];
    for (const o of all) {
      page.push(o);
      if (page.length === PAGE) {
        yield { objects: page, prefixes: [] };
        page = [];
      }
    }
    if (page.length > 0) yield { objects: page, prefixes: [] };
  }

  /**
   * A sealed manifest as the backup wrote it, minus the HMAC: the catalog checks the SHA-256 seal
   * and the schema (as retention does on S3) and never the HMAC, which needs the data key. Leaving
   * out the HKDF and HMAC keeps the fixture's own cost out of the figures.
   */
  async getBytes(key: string): Promise<Buffer> {
    const m = /\/backups\/[^/]+-([0-9a-f]{6})\/manifest\.json$/.exec(key);
    if (!m) throw new Error(`bench store: nothing at ${key}`);
    const manifest = this.manifest(parseInt(m[1], 16));
    const body = JSON.stringify(manifest);
    return Buffer.from(JSON.stringify({ manifest, seal: { sha256: createHash('sha256').update(body).digest('hex'), hmac: '0'.repeat(64) } }));
  }

  async list(): Promise<ListPage> {
    throw new Error('bench store: list the whole repository? use listPages');
  }
  async put(): Promise<{ bytes: number }> {
    throw new Error('bench store is read-only');
  }
  async get(key: string): Promise<Readable> {
    return Readable.from([await this.getBytes(key)]);
  }
  async head(): Promise<undefined> {
    return undefined;
  }
  async delete(): Promise<void> {
    throw new Error('bench store is read-only: the benchmark plans, it does not apply');
  }
}
