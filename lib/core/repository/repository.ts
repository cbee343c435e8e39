import type { Readable } from 'node:stream';
import pLimit from 'p-limit';
import type { Engine, TidemarkConfig } from '../config/schema';
import type { EncryptionContext, KeyProvider } from '../crypto/key-provider';
import { openEncryptionKeys } from '../crypto/open-key-provider';
import { SEGMENT_ALGORITHM } from '../crypto/segmented-aead';
import { BackupNotFound, EncryptionKeyError, IntegrityError, RepositoryCreationRace, StorageError } from '../errors';
import { readObject } from '../pipeline/read-object';
import type { StoredObject } from '../pipeline/stored-object';
import type { CompressedOutput, ToolCommand } from '../pipeline/compressed-output';
import { decompressInto, type ConsumerOptions } from '../pipeline/decompress-into';
import { decompressToFile, type FileOutput } from '../pipeline/decompress-to-file';
import { writeCompressedOutput, writeObject, type WriteObjectOptions } from '../pipeline/write-object';
import type { ZstdOptions } from '../pipeline/zstd';
import type { BackupDetails } from '../engines/registry';
import { idStart, newBackupId } from './backup-id';
import { readCatalog, type Catalog } from './catalog';
import { checkRepositoryBinding, parseMarker, readRepositoryId, REPOSITORY_CONTEXT_KEY, repositoryIdOf } from './identity';
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
import { listPages, type ObjectStore } from './storage';

/** Folder listings at once when checking that a restore's objects are all stored. */
const PARALLEL_LISTINGS = 8;

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
  /** Streams one object's plaintext, verified (see readObject; `inProcessZstd` there). */
  read(object: StoredObject, onStoredBytes?: (n: number) => void, options?: { readonly inProcessZstd?: boolean }): Promise<Readable>;
  /**
   * Feeds one object into a tool's stdin through zstd -d, node seeing only the compressed bytes; the
   * tool sees end-of-input only after every check passed (see decompressInto). Resolves when it exited 0.
   */
  restoreInto(object: StoredObject, consumer: ToolCommand, options?: ConsumerOptions): Promise<void>;
  /** Writes one object's plaintext into `output.file` through zstd -d (`output.zstd` when started ahead); resolves once every check passed (see decompressToFile). */
  decompressToFile(object: StoredObject, output: FileOutput, options?: ConsumerOptions): Promise<void>;
}

export type BackupSelector = { readonly id: string } | { readonly latest: true };

/** A repository: storage plus the key provider that opens what is stored there. */
export class Repository {
  /** Backups begun here and not yet committed or ended: their leases are renewed until then. */
  private readonly writers = new Set<BackupWriter>();
  /** This repository's identity (identity.ts), once its marker was read or written. */
  private identity?: string;
  /** The identity of a marker prepared but not yet stored (a new repository), and whether a data key was bound to it. */
  private pending?: { id: string; used: boolean };

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
    return new Repository(openStore(config.repository), await openEncryptionKeys(config.encryption));
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
    const pending = { id: repositoryIdOf(wrapped), used: false };
    this.pending = pending;
    return {
      confirm: async () => {
        try {
          await this.store.put(REPOSITORY_MARKER_KEY, Buffer.from(`${JSON.stringify(body, null, 2)}\n`)).catch((e: unknown) => {
            if (!(e instanceof StorageError && e.code === 'ObjectExists')) throw e; // else another writer created it first
          });
          // Read back either way: a store that ignores IfNoneMatch (s3rver, some S3-compatible
          // servers) lets a writer that checked at the same moment overwrite ours; the stored
          // marker is the identity.
          await this.verifyMarker((await this.readMarker())!);
          // A data key already bound to our marker would make a backup this repository refuses.
          if (pending.used && this.identity !== pending.id) throw new RepositoryCreationRace(this.store.description);
        } finally {
          if (this.pending === pending) this.pending = undefined;
        }
      },
    };
  }

  /**
   * For a command about to open backups (a restore): starts unwrapping this repository's keys now,
   * so that the slow part (the local key's scrypt, ~0.1 s; KeyProvider.prepare) runs while the
   * catalog is read and the restore planned, instead of after. Backups wrap their data keys with
   * the salt of the marker's key check (LocalKeyProvider), so the marker is enough to start it.
   * Nothing is awaited or reported here: the backups' own opening reports what fails.
   */
  warmKeys(): void {
    if (!this.keys.prepare) return;
    this.readMarker()
      .then((marker) => marker && this.keys.prepare!(parseMarker(marker, this.store.description).keyCheck))
      .catch(() => undefined);
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
    const parsed = parseMarker(marker, this.store.description);
    this.identity = repositoryIdOf(parsed.keyCheck);
    try {
      await this.keys.decryptDataKey(parsed.keyCheck, KEY_CHECK_CONTEXT);
    } catch (e) {
      if (!(e instanceof EncryptionKeyError)) throw e;
      throw new EncryptionKeyError(
        `wrong encryption key: ${this.keys.description} is not the key this repository (${this.store.description}) was created with (after a rotation, name the old key in encryption.previousKeys)`,
        { cause: e },
      );
    }
  }

  /**
   * The source's catalog, less backups bound to another repository (identity.ts): those are listed
   * as problems, so `--latest`, list and verify see them for what they are.
   */
  async catalog(source: string): Promise<Catalog> {
    const [catalog, here] = await Promise.all([readCatalog(this.store, source), this.repositoryIdIfReadable()]);
    if (here === null) return catalog;
    const problems = [...catalog.problems];
    const backups = catalog.backups.filter((m) => {
      try {
        checkRepositoryBinding(m.encryption.context, here, `backup ${m.id} (${manifestKey(source, m.id)})`);
        return true;
      } catch (e) {
        problems.push({ id: m.id, reason: (e as Error).message });
        return false;
      }
    });
    return backups.length === catalog.backups.length ? catalog : { ...catalog, backups, problems };
  }

  /** The identity, or null for a principal that may not read the marker (the retention functions' catalog read). */
  private async repositoryIdIfReadable(): Promise<string | undefined | null> {
    try {
      return await this.repositoryId();
    } catch (e) {
      if (e instanceof StorageError && e.code === 'AccessDenied') return null;
      throw e;
    }
  }

  /**
   * The identity new data keys are bound to (identity.ts): the stored marker's, else the one a
   * key check is preparing; undefined only when neither exists (then nothing is bound).
   */
  async repositoryId(): Promise<string | undefined> {
    if (this.identity === undefined) {
      const stored = await readRepositoryId(this.store);
      if (stored !== undefined) this.identity = stored;
    }
    return this.identity;
  }

  /** The context a new data key is wrapped under: `base` plus this repository's identity. */
  async boundContext(base: EncryptionContext): Promise<EncryptionContext> {
    const stored = await this.repositoryId();
    const id = stored ?? this.pending?.id;
    if (stored === undefined && this.pending) this.pending.used = true;
    return id === undefined ? base : { ...base, [REPOSITORY_CONTEXT_KEY]: id };
  }

  /**
   * Refuses, naming the first object, unless every object of `manifests` is stored with the size
   * its manifest records: a deleted or truncated object stops a restore before anything is written,
   * rather than when the restore reaches it. Contents are checked as they stream (readObject).
   */
  async assertStored(manifests: readonly BackupManifest[]): Promise<void> {
    // One listing per folder (a backup's objects share one), not a HEAD per object: a chain of
    // physical backups has hundreds of packs, and on S3 a listing answers a thousand at once.
    const objects = manifests.flatMap((m) => m.objects.map((object) => ({ id: m.id, object })));
    const folders = [...new Set(objects.map(({ object }) => object.key.slice(0, object.key.lastIndexOf('/') + 1)))];
    const sizes = new Map<string, number>();
    const limit = pLimit(PARALLEL_LISTINGS);
    await Promise.all(
      folders.map((folder) =>
        limit(async () => {
          for await (const page of listPages(this.store, folder)) for (const o of page.objects) sizes.set(o.key, o.size);
        }),
      ),
    );
    for (const { id, object } of objects) {
      const size = sizes.get(object.key);
      if (size === undefined) throw new IntegrityError(`backup ${id} object ${object.name} is missing from the repository (${object.key})`);
      if (size !== object.storedBytes) {
        throw new IntegrityError(`backup ${id} object ${object.name} has ${size} bytes in the repository, its manifest says ${object.storedBytes} (${object.key})`);
      }
    }
  }

  /** Whether the configured key opens this repository's marker: a key error then means the data, not the key, is foreign. */
  async keyOpensMarker(): Promise<boolean> {
    const marker = await this.readMarker().catch(() => undefined);
    if (!marker) return false;
    try {
      await this.verifyMarker(marker);
      return true;
    } catch {
      return false;
    }
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
    const where = manifestKey(source, id);
    if (context[REPOSITORY_CONTEXT_KEY] !== undefined) {
      checkRepositoryBinding(context, await this.repositoryId(), `backup ${id} (${where})`);
    }
    let dataKey: Buffer;
    try {
      dataKey = await this.keys.decryptDataKey(manifest.encryption.dataKey, context);
    } catch (e) {
      if (!(e instanceof EncryptionKeyError)) throw e;
      // The key that opens this repository's marker is the right key: then the backup is what is foreign (or damaged).
      if (await this.keyOpensMarker()) {
        throw new IntegrityError(
          `backup ${id} (${where}): its data key does not open with ${this.keys.description}, this repository's key: the backup was copied in from another repository, or its wrapped key is damaged`,
          { cause: e },
        );
      }
      throw new EncryptionKeyError(`backup ${id}: ${e.message}`, { cause: e });
    }
    opened.authenticate(dataKey);
    const store = this.store;
    return {
      manifest,
      dataKey,
      read: (object, onStoredBytes, options) =>
        readObject(store, object, { dataKey, label: `backup ${id} object ${object.name}`, onStoredBytes, ...options }),
      restoreInto: (object, consumer, options) =>
        decompressInto(store, object, { dataKey, label: `backup ${id} object ${object.name}` }, consumer, options),
      decompressToFile: (object, output, options) => decompressToFile(store, object, { dataKey, label: `backup ${id} object ${object.name}` }, output, options),
    };
  }

  /**
   * Starts writing a new backup; nothing is visible until `commit`. Refuses while another backup
   * of the source runs (source-guard.ts): before claiming the source, and again once its own lease
   * is stored, so that of two that start together the later gives way. `id` is made beforehand
   * (newBackupId) by a caller that names the backup before it begins; its time is the start.
   */
  async beginBackup(source: string, engine: Engine, type: BackupType, parent?: string, chain?: BackupChain, id = newBackupId()): Promise<BackupWriter> {
    await assertNoBackupRunning(this.store, source);
    const startedAt = new Date(idStart(id));
    const context = await this.boundContext(backupContext(source, id));
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
