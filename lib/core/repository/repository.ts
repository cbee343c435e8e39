import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Engine, TidemarkConfig } from '../config/schema';
import type { EncryptionContext, KeyProvider } from '../crypto/key-provider';
import { openKeyProvider } from '../crypto/open-key-provider';
import { SEGMENT_ALGORITHM } from '../crypto/segmented-aead';
import { BackupNotFound, EncryptionKeyError, IntegrityError, StorageError, TidemarkError } from '../errors';
import { readObject } from '../pipeline/read-object';
import type { StoredObject } from '../pipeline/stored-object';
import type { CompressedOutput, ToolCommand } from '../pipeline/compressed-output';
import { decompressInto, type ConsumerOptions } from '../pipeline/decompress-into';
import { decompressToFile } from '../pipeline/decompress-to-file';
import { writeCompressedOutput, writeObject, type WriteObjectOptions } from '../pipeline/write-object';
import type { ZstdOptions } from '../pipeline/zstd';
import type { BackupDetails } from '../engines/registry';
import { newBackupId } from './backup-id';
import { readCatalog, type Catalog } from './catalog';
import { manifestKey, objectKey, REPOSITORY_MARKER_KEY } from './layout';
import { ENDED_NAME, endedHere, LEASE_NAME, leaseRenewMs, leaseBytes, renewalBytes, renewalName } from './lease';
import { assertNoBackupRunning } from './source-guard';
import {
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  openManifest,
  sealManifest,
  type BackupChain,
  type BackupManifest,
  type BackupType,
  type RestorePoint,
} from './manifest';
import { openStore } from './open-store';
import type { ObjectStore } from './storage';

const KEY_CHECK_CONTEXT: EncryptionContext = { tidemark: 'key-check' };

const NO_KEYS: KeyProvider = {
  description: 'no key (listing only)',
  generateDataKey: () => Promise.reject(new EncryptionKeyError('this repository was opened without a key (listing only)')),
  decryptDataKey: () => Promise.reject(new EncryptionKeyError('this repository was opened without a key (listing only)')),
};

function backupContext(source: string, id: string): EncryptionContext {
  return { tidemark: 'backup', source, backup: id };
}

/** A backup opened for reading: its manifest, authenticated, and its data key. */
export interface OpenedBackup {
  readonly manifest: BackupManifest;
  readonly dataKey: Buffer;
  /** Streams one object's plaintext, verified (see readObject). */
  read(object: StoredObject, onStoredBytes?: (n: number) => void): Promise<Readable>;
  /**
   * Feeds one object into a tool's stdin through zstd -d, node seeing only the compressed bytes; the
   * tool sees end-of-input only after every check passed (see decompressInto). Resolves when it exited 0.
   */
  restoreInto(object: StoredObject, consumer: ToolCommand, options?: ConsumerOptions): Promise<void>;
  /** Writes one object's plaintext into `file` through zstd -d; resolves once every check passed (see decompressToFile). */
  decompressToFile(object: StoredObject, file: FileHandle, options?: ConsumerOptions): Promise<void>;
}

export type BackupSelector = { readonly id: string } | { readonly latest: true };

/** A repository: storage plus the key provider that opens what is stored there. */
export class Repository {
  /** Backups begun here and not yet committed or ended: their leases are renewed until then. */
  private readonly writers = new Set<BackupWriter>();

  /** Gives up the claims of backups begun here that did not commit (the run is over). */
  async endBackups(): Promise<void> {
    const writers = [...this.writers];
    this.writers.clear();
    await Promise.all(writers.map((w) => w.release()));
  }

  constructor(
    readonly store: ObjectStore,
    readonly keys: KeyProvider,
  ) {}

  /**
   * Storage without a key: listings and unauthenticated headers only (rpo-check, list), anything
   * that would need a data key fails with EncryptionKeyError.
   */
  static keyless(store: ObjectStore): Repository {
    return new Repository(store, NO_KEYS);
  }

  static async open(config: TidemarkConfig): Promise<Repository> {
    return new Repository(openStore(config.repository), await openKeyProvider(config.encryption.key));
  }

  /**
   * Fails early when the configured key is not the one this repository was created with, so a
   * wrong key never produces backups nobody can restore. The first backup writes the marker.
   */
  async checkKey(): Promise<void> {
    await (await this.prepareKeyCheck()).confirm();
  }

  /**
   * The key check in two steps, so the slow part (a KDF or a KMS call) can run while the source
   * is still being reached, and nothing is written before the caller knows the backup can start:
   * this checks the key against an existing marker, or prepares the marker of a new repository;
   * `confirm()` writes that marker (or, if another writer created it first, checks against theirs).
   */
  async prepareKeyCheck(): Promise<{ confirm(): Promise<void> }> {
    const marker = await this.readMarker();
    if (marker) {
      await this.verifyMarker(marker);
      return { confirm: async () => undefined };
    }
    const { wrapped } = await this.keys.generateDataKey(KEY_CHECK_CONTEXT);
    const body = { format: 'tidemark.repository', version: 1, createdAt: new Date().toISOString(), keyCheck: wrapped };
    return {
      confirm: async () => {
        try {
          await this.store.put(REPOSITORY_MARKER_KEY, Buffer.from(`${JSON.stringify(body, null, 2)}\n`));
        } catch (raced) {
          if (!(raced instanceof StorageError && raced.code === 'ObjectExists')) throw raced;
          await this.verifyMarker((await this.readMarker())!); // another writer created it first
        }
      },
    };
  }

  private async readMarker(): Promise<Buffer | undefined> {
    try {
      return await this.store.getBytes(REPOSITORY_MARKER_KEY);
    } catch (e) {
      if (e instanceof StorageError && e.code === 'NoSuchKey') return undefined;
      throw e;
    }
  }

  private async verifyMarker(marker: Buffer): Promise<void> {
    const parsed = JSON.parse(marker.toString('utf8')) as { format?: string; keyCheck?: never };
    if (parsed.format !== 'tidemark.repository' || !parsed.keyCheck) {
      throw new TidemarkError(`${this.store.description}: ${REPOSITORY_MARKER_KEY} is not a Tidemark repository marker`);
    }
    try {
      await this.keys.decryptDataKey(parsed.keyCheck, KEY_CHECK_CONTEXT);
    } catch (e) {
      if (!(e instanceof EncryptionKeyError)) throw e;
      throw new EncryptionKeyError(
        `wrong encryption key: ${this.keys.description} is not the key this repository (${this.store.description}) was created with`,
        { cause: e },
      );
    }
  }

  catalog(source: string): Promise<Catalog> {
    return readCatalog(this.store, source);
  }

  /** Finds a committed backup by id, or the latest; the manifest is read again and authenticated. */
  async openBackup(source: string, selector: BackupSelector, accept?: (m: BackupManifest) => boolean): Promise<OpenedBackup> {
    let id: string;
    if ('id' in selector) {
      id = selector.id;
    } else {
      const { backups } = await this.catalog(source);
      const candidates = backups.filter((m) => !accept || accept(m));
      if (candidates.length === 0) throw new BackupNotFound(`source '${source}' has no backups in ${this.store.description}`);
      id = candidates[candidates.length - 1].id;
    }
    let bytes: Buffer;
    try {
      bytes = await this.store.getBytes(manifestKey(source, id));
    } catch (e) {
      if (e instanceof StorageError && e.code === 'NoSuchKey') {
        throw new BackupNotFound(`source '${source}' has no backup ${id} (see: tidemark list ${source})`);
      }
      throw e;
    }
    const opened = openManifest(bytes, `backup ${id}`);
    const { manifest } = opened;
    const context = manifest.encryption.context;
    if (manifest.id !== id || manifest.source !== source || context.backup !== id || context.source !== source) {
      throw new IntegrityError(`backup ${id}: manifest belongs to ${manifest.source}/${manifest.id}, not here`);
    }
    let dataKey: Buffer;
    try {
      dataKey = await this.keys.decryptDataKey(manifest.encryption.dataKey, context);
    } catch (e) {
      if (!(e instanceof EncryptionKeyError)) throw e;
      throw new EncryptionKeyError(`backup ${id}: ${e.message}`, { cause: e });
    }
    opened.authenticate(dataKey);
    const store = this.store;
    return {
      manifest,
      dataKey,
      read: (object, onStoredBytes) =>
        readObject(store, object, { dataKey, label: `backup ${id} object ${object.name}`, onStoredBytes }),
      restoreInto: (object, consumer, options) =>
        decompressInto(store, object, { dataKey, label: `backup ${id} object ${object.name}` }, consumer, options),
      decompressToFile: (object, file, options) => decompressToFile(store, object, { dataKey, label: `backup ${id} object ${object.name}` }, file, options),
    };
  }

  /**
   * Starts writing a new backup; nothing is visible until `commit`. Refuses while another backup
   * of the source runs (source-guard.ts): before claiming the source, and again once its own lease
   * is stored, so that of two that start together the later gives way.
   */
  async beginBackup(source: string, engine: Engine, type: BackupType, parent?: string, chain?: BackupChain): Promise<BackupWriter> {
    await assertNoBackupRunning(this.store, source);
    const startedAt = new Date();
    const id = newBackupId(startedAt);
    const context = backupContext(source, id);
    const { plaintext, wrapped } = await this.keys.generateDataKey(context);
    const writer = new BackupWriter(this.store, {
      id,
      source,
      engine,
      type,
      parent,
      ...(chain ? { chain } : {}),
      startedAt: startedAt.toISOString(),
      encryption: { algorithm: SEGMENT_ALGORITHM, context, dataKey: wrapped },
      dataKey: plaintext,
    });
    this.writers.add(writer);
    try {
      await writer.claim();
      await assertNoBackupRunning(this.store, source, id);
    } catch (e) {
      await this.endBackups();
      throw e;
    }
    return writer;
  }
}

/** What is known when a backup begins: the manifest's opening fields, and the data key in plain. */
type BackupDraft = Pick<BackupManifest, 'id' | 'source' | 'engine' | 'type' | 'parent' | 'chain' | 'startedAt' | 'encryption'> & {
  readonly dataKey: Buffer;
};

export class BackupWriter {
  private readonly objects: StoredObject[] = [];
  private committed = false;
  private leased?: Promise<unknown>;
  private renewing?: NodeJS.Timeout;

  constructor(
    private readonly store: ObjectStore,
    private readonly draft: BackupDraft,
  ) {}

  get id(): string {
    return this.draft.id;
  }

  get startedAt(): string {
    return this.draft.startedAt;
  }

  /** Stores bytes node delivers (and hashes); see writeCompressed for a tool's output. */
  writeObject(name: string, input: Readable, options: Omit<WriteObjectOptions, 'dataKey'>): Promise<StoredObject> {
    return this.add(name, (key) => writeObject(this.store, key, name, input, { ...options, dataKey: this.draft.dataKey }));
  }

  /** Stores a tool's output that flows into zstd without passing through node (the lean data plane). */
  writeCompressed(name: string, compressed: CompressedOutput, options: Omit<WriteObjectOptions, 'dataKey' | 'compression'> & { compression: ZstdOptions }): Promise<StoredObject> {
    return this.add(name, (key) => writeCompressedOutput(this.store, key, name, compressed, { ...options, dataKey: this.draft.dataKey }));
  }

  /**
   * Stores the lease (before any object: retention never collects the parts of a backup still
   * running) and renews it every leaseRenewMs() until commit or release (lease.ts).
   */
  async claim(): Promise<void> {
    this.leased ??= this.store.put(objectKey(this.draft.source, this.draft.id, LEASE_NAME), leaseBytes(this.draft.id, this.draft.startedAt));
    await this.leased;
    if (this.renewing || this.committed) return;
    let generation = 0;
    this.renewing = setInterval(() => {
      const name = renewalName(++generation);
      // A renewal that fails (S3 briefly down) is retried by the next one; a backup that cannot
      // store anything fails on its own objects.
      this.store.put(objectKey(this.draft.source, this.draft.id, name), renewalBytes(this.draft.id, new Date())).catch(() => undefined);
    }, leaseRenewMs());
    this.renewing.unref();
  }

  /**
   * Stops renewing the lease: the backup committed, or failed and will never commit. A failed one
   * also stops counting as running at once: in this process, and (best effort: the store may be
   * what failed) for every other through `ended.json`; otherwise its lease lapses on its own.
   */
  release(): Promise<void> {
    clearInterval(this.renewing);
    this.renewing = undefined;
    if (this.committed || this.leased === undefined) return Promise.resolve();
    endedHere.add(this.draft.id);
    return this.store.put(objectKey(this.draft.source, this.draft.id, ENDED_NAME), Buffer.from(`${JSON.stringify({ ended: new Date().toISOString() })}\n`)).then(
      () => undefined,
      () => undefined,
    );
  }

  private async add(name: string, write: (key: string) => Promise<StoredObject>): Promise<StoredObject> {
    if (this.committed) throw new Error(`backup ${this.id} is already committed`);
    await this.claim();
    const stored = await write(objectKey(this.draft.source, this.draft.id, name));
    this.objects.push(stored);
    return stored;
  }

  /** Writes the manifest — the single step that makes the backup exist. */
  async commit(restorePoint: RestorePoint, details: BackupDetails): Promise<BackupManifest> {
    const { dataKey: _plaintextKey, ...draft } = this.draft;
    const manifest: BackupManifest = {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      ...draft,
      finishedAt: new Date().toISOString(),
      restorePoint,
      objects: [...this.objects],
      plainBytes: this.objects.reduce((n, o) => n + o.plainBytes, 0),
      storedBytes: this.objects.reduce((n, o) => n + o.storedBytes, 0),
      details,
    };
    await this.store.put(manifestKey(draft.source, draft.id), sealManifest(manifest, this.draft.dataKey));
    this.committed = true;
    await this.release();
    return manifest;
  }
}
