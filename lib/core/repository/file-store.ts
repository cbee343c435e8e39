import { randomBytes } from 'node:crypto';
import { constants as fsConstants, type Dirent } from 'node:fs';
import { link, lstat, mkdir, open, readFile, readdir, rmdir, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { StorageError } from '../errors';
import { writeToHandle } from '../pipeline/file-sink';
import { abortReason, destroyOnAbort } from '../abort';
import { assertValidKey, assertValidPrefix, checkRange, compareKeys, TEMP_PREFIX } from './keys';
import type { ListOptions, ListPage, ObjectStore, PutOptions, StoredObjectInfo } from './storage';

/**
 * An upload whose writer died (a killed backup) leaves its temp file. Once this old, it is removed
 * with its folder when the folder's last object is deleted, as the bucket's lifecycle rule aborts
 * S3's incomplete multipart uploads. An upload in flight writes continuously, so its file is young.
 */
const STALE_TEMP_MS = 24 * 3_600_000;

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : undefined;
}

/**
 * The repository as a local folder. Objects are published with link(2), which fails if the name
 * exists: that makes "never overwrite" atomic, and the fsyncs make a published object survive a crash.
 */
export class FileStore implements ObjectStore {
  readonly description: string;
  private readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.description = pathToFileURL(this.root).href;
  }

  async put(key: string, body: Readable | Buffer, options: PutOptions = {}): Promise<{ bytes: number }> {
    const { signal } = options;
    const path = this.pathOf(key);
    if (signal?.aborted) throw abortReason(signal);
    const dir = dirname(path);
    const temp = join(dir, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);

    // Destroying the body wakes a read that is waiting on a stalled producer.
    const stopListening = body instanceof Readable ? destroyOnAbort(body, signal) : () => undefined;
    let handle: FileHandle | undefined;
    try {
      handle = await this.fs(key, 'create', () => this.createTemp(dir, temp));
      const bytes = await this.writeBody(key, handle, body);
      await this.fs(key, 'fsync', () => (handle as FileHandle).sync());
      await handle.close();
      handle = undefined;
      if (signal?.aborted) throw abortReason(signal);
      await this.fs(key, 'publish', () => link(temp, path));
      await unlink(temp).catch(() => undefined); // published either way; a stray temp file goes with its folder (removeStaleTemps)
      await this.fs(key, 'fsync the folder of', () => syncDirectory(dir));
      return { bytes };
    } catch (err) {
      await handle?.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
      if (signal?.aborted && !(err instanceof StorageError)) throw abortReason(signal);
      throw err;
    } finally {
      stopListening();
    }
  }

  async get(key: string, range?: { start: number; end?: number }): Promise<Readable> {
    const { handle, size } = await this.openExisting(key);
    try {
      if (range === undefined) return handle.createReadStream();
      checkRange(range, size, this.describeKey(key));
      return handle.createReadStream({ start: range.start, end: Math.min(range.end ?? size - 1, size - 1) });
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async getBytes(key: string): Promise<Buffer> {
    const { handle } = await this.openExisting(key);
    try {
      return await readFile(handle);
    } finally {
      await handle.close();
    }
  }

  async head(key: string): Promise<{ size: number } | undefined> {
    try {
      const stats = await lstat(this.pathOf(key));
      return stats.isFile() ? { size: stats.size } : undefined;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
      throw this.mapError(err, key, 'stat');
    }
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    assertValidPrefix(prefix);
    const folder = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    const page = { objects: [] as StoredObjectInfo[], prefixes: [] as string[] };
    await this.walk(join(this.root, folder), folder, prefix, options.delimiter === '/', page);
    page.objects.sort((a, b) => compareKeys(a.key, b.key));
    page.prefixes.sort(compareKeys);
    return page;
  }

  async delete(keys: string[]): Promise<void> {
    // Folders are tidied once per batch, not once per key: retention deletes thousands of WAL
    // segments from one folder, and each tidy reads the whole folder.
    const folders = new Set<string>();
    for (const key of keys) {
      const path = this.pathOf(key);
      try {
        await unlink(path);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT' && errnoCode(err) !== 'ENOTDIR') throw this.mapError(err, key, 'delete');
      }
      folders.add(dirname(path));
    }
    for (const folder of folders) await this.removeEmptyFolders(folder);
  }

  async collectStaleUploads(prefix: string): Promise<number> {
    assertValidPrefix(prefix);
    let removed = 0;
    // Every temp file a day old under the prefix's folder, wherever a killed writer left it (a
    // folder holding only temp files is invisible to list, so no deletion would ever reach it).
    const sweep = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [] as Dirent[])) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await sweep(path);
        else if (entry.isFile() && entry.name.startsWith(TEMP_PREFIX) && (await unlinkIfStale(path))) removed++;
      }
      await this.removeEmptyFolders(dir);
    };
    await sweep(join(this.root, ...prefix.split('/').filter(Boolean)));
    return removed;
  }

  private pathOf(key: string): string {
    assertValidKey(key);
    return join(this.root, ...key.split('/'));
  }

  private describeKey(key: string): string {
    return `${this.description.replace(/\/$/, '')}/${key}`;
  }

  /** A delete may remove the folder between our mkdir and open; one retry covers that race. */
  private async createTemp(dir: string, temp: string): Promise<FileHandle> {
    const flags = fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY;
    for (let attempt = 0; ; attempt++) {
      await mkdir(dir, { recursive: true }).catch((err: unknown) => {
        // EEXIST here means a parent "folder" is an object; it must not read as ObjectExists.
        throw errnoCode(err) === 'EEXIST' ? Object.assign(new Error(err instanceof Error ? err.message : ''), { code: 'ENOTDIR' }) : err;
      });
      try {
        return await open(temp, flags, 0o644);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT' || attempt > 0) throw err;
      }
    }
  }

  /** Errors of the body are the producer's and pass through unchanged; write errors are ours. */
  private async writeBody(key: string, handle: FileHandle, body: Readable | Buffer): Promise<number> {
    if (Buffer.isBuffer(body)) {
      await this.fs(key, 'write', () => handle.writeFile(body));
      return body.length;
    }
    return writeToHandle(body, handle, (write) => this.fs(key, 'write', write));
  }

  private async openExisting(key: string): Promise<{ handle: FileHandle; size: number }> {
    let handle: FileHandle;
    try {
      handle = await open(this.pathOf(key), 'r');
    } catch (err) {
      if (errnoCode(err) === 'ENOTDIR') throw new StorageError(`no object at ${this.describeKey(key)}`, 'NoSuchKey');
      throw this.mapError(err, key, 'open');
    }
    const stats = await handle.stat();
    if (!stats.isFile()) {
      await handle.close();
      throw new StorageError(`no object at ${this.describeKey(key)}`, 'NoSuchKey');
    }
    return { handle, size: stats.size };
  }

  private async walk(dir: string, dirKey: string, prefix: string, rollUp: boolean, page: ListPage): Promise<void> {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return;
      throw this.mapError(err, dirKey, 'list');
    }
    for (const entry of entries) {
      if (entry.name.startsWith(TEMP_PREFIX)) continue;
      const key = dirKey + entry.name;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        const folder = `${key}/`;
        if (!folder.startsWith(prefix)) continue;
        // Folders left empty (or holding only uploads in flight) are not prefixes on S3 either.
        if (!rollUp) await this.walk(path, folder, prefix, rollUp, page);
        else if (await containsObject(path)) page.prefixes.push(folder);
      } else if (entry.isFile() && key.startsWith(prefix)) {
        const stats = await lstat(path).catch(() => undefined);
        if (stats?.isFile()) page.objects.push({ key, size: stats.size, modifiedAt: stats.mtime.toISOString() });
      }
    }
  }

  private async removeEmptyFolders(dir: string): Promise<void> {
    while (dir !== this.root && dir.startsWith(this.root)) {
      await removeStaleTemps(dir);
      try {
        await rmdir(dir);
      } catch {
        return; // not empty (or already gone): the folders above are not empty either
      }
      dir = dirname(dir);
    }
  }

  private async fs<T>(key: string, action: string, operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (err) {
      throw this.mapError(err, key, action);
    }
  }

  private mapError(err: unknown, key: string, action: string): unknown {
    if (err instanceof StorageError) return err;
    const where = this.describeKey(key);
    switch (errnoCode(err)) {
      case 'EEXIST':
        return new StorageError(`object already exists at ${where}; objects are never overwritten`, 'ObjectExists', { cause: err });
      case 'ENOENT':
        return new StorageError(`no object at ${where}`, 'NoSuchKey', { cause: err });
      case 'ENOTDIR':
        return new StorageError(`cannot ${action} ${where}: a parent of it is an object, not a folder`, 'Other', { cause: err });
      case 'EACCES':
      case 'EPERM':
      case 'EROFS':
        return new StorageError(`permission denied to ${action} ${where}`, 'AccessDenied', { cause: err });
      default: {
        const message = err instanceof Error ? err.message : String(err);
        return new StorageError(`cannot ${action} ${where}: ${message}`, 'Other', { cause: err });
      }
    }
  }
}


async function containsObject(dir: string): Promise<boolean> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => [] as Dirent[]);
  for (const entry of entries) {
    if (entry.name.startsWith(TEMP_PREFIX)) continue;
    if (entry.isFile()) return true;
    if (entry.isDirectory() && (await containsObject(join(dir, entry.name)))) return true;
  }
  return false;
}

/** A folder's temp files, when it holds nothing else and they are stale (STALE_TEMP_MS). */
async function removeStaleTemps(dir: string): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => [] as Dirent[]);
  if (!entries.every((e) => e.isFile() && e.name.startsWith(TEMP_PREFIX))) return;
  for (const entry of entries) await unlinkIfStale(join(dir, entry.name));
}

/** Removes a temp file last written more than STALE_TEMP_MS ago (no upload runs that long); true when it did. */
async function unlinkIfStale(path: string): Promise<boolean> {
  const stats = await lstat(path).catch(() => undefined);
  if (!stats || Date.now() - stats.mtimeMs <= STALE_TEMP_MS) return false;
  return unlink(path).then(
    () => true,
    () => false,
  );
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
