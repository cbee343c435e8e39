import type { Readable } from 'node:stream';
import type { RehydrateOptions, RehydrationResult } from './rehydrate';

/** One stored object as a listing sees it. */
export interface StoredObjectInfo {
  /** Key relative to the repository root, '/'-separated, never starting with '/'. */
  readonly key: string;
  readonly size: number;
  /** When the object was stored (ISO), where the backend says (retention: locks, archive times). */
  readonly modifiedAt?: string;
  /** S3 storage class (STANDARD, STANDARD_IA, GLACIER, …); absent for a folder. */
  readonly storageClass?: string;
}

export interface PutOptions {
  /** Hint for progress and multipart sizing; the store must not rely on it. */
  readonly expectedSize?: number;
  readonly contentType?: string;
  /** Aborts the upload; a partial object must not become visible under `key`. */
  readonly signal?: AbortSignal;
}

export interface ListOptions {
  /**
   * With a delimiter ('/'), keys below the next delimiter are rolled up into `prefixes`
   * (like S3 CommonPrefixes) instead of being returned one by one.
   */
  readonly delimiter?: '/';
}

export interface ListPage {
  readonly objects: StoredObjectInfo[];
  readonly prefixes: string[];
}

/** Pages of a listing: the store's own pages where it has them, else the whole listing as one. */
export async function* listPages(store: ObjectStore, prefix: string, options?: ListOptions): AsyncIterable<ListPage> {
  if (store.listPages) yield* store.listPages(prefix, options);
  else yield await store.list(prefix, options);
}

/**
 * The repository's storage: a flat, append-only key space.
 *
 * Contract shared by every backend (file://, s3://):
 * - `put` never overwrites: if `key` exists it fails with StorageError (ObjectExists), and the
 *   existing object is untouched.
 * - `put` is atomic: until it resolves, `key` is either absent or (after a crash) absent; a reader
 *   never sees a partial object under `key`.
 * - Keys are '/'-separated paths relative to the repository root.
 */
export interface ObjectStore {
  /** Human-readable location, safe to print (no credentials). */
  readonly description: string;

  put(key: string, body: Readable | Buffer, options?: PutOptions): Promise<{ bytes: number }>;

  /** Streams the object, or the inclusive byte range [start, end]. Missing key → StorageError (NoSuchKey). */
  get(key: string, range?: { start: number; end?: number }): Promise<Readable>;

  /** Reads a whole (small) object into memory. */
  getBytes(key: string): Promise<Buffer>;

  /** Size of the object, or undefined when absent. */
  head(key: string): Promise<{ size: number } | undefined>;

  /** Every object (and with a delimiter, every rolled-up prefix) under `prefix`, in key order. */
  list(prefix: string, options?: ListOptions): Promise<ListPage>;

  /**
   * The same listing a page at a time (S3: 1,000 keys per request), for callers that must not hold
   * a whole listing at once (retention over millions of WAL segments). Absent: use `list`.
   */
  listPages?(prefix: string, options?: ListOptions): AsyncIterable<ListPage>;

  /**
   * Makes objects in a cold class (GLACIER, DEEP_ARCHIVE) readable: reports the expected time and
   * cost, asks S3 to restore them, and waits. Absent: every object is always readable (a folder).
   */
  rehydrate?(keys: readonly string[], options?: RehydrateOptions): Promise<RehydrationResult>;

  /**
   * Sets an object tag (the tier-tag contract, config/tiers.ts: the bucket's lifecycle rules move
   * what is tagged). Absent: the store has no tiers (a folder).
   */
  tag?(keys: readonly string[], tag: { readonly key: string; readonly value: string }): Promise<void>;

  /**
   * Removes objects. Only garbage collection and retention call this; a missing key is not an
   * error. Under S3 Object Lock the store may refuse (StorageError).
   */
  delete(keys: string[]): Promise<void>;

  /**
   * Removes uploads in flight under `prefix` that were abandoned (a writer killed mid-object) and
   * are older than a day; returns how many. Retention calls it when it applies. Absent: the store
   * has nothing of the kind, or the bucket's lifecycle rules clean it up.
   */
  collectStaleUploads?(prefix: string): Promise<number>;
}
