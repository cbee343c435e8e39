import { StorageError } from '../errors';

/** Rules shared by every storage backend, so a repository can move between a folder and a bucket. */

/** In-flight uploads; `list` hides them and garbage collection may remove stale ones. */
export const TEMP_PREFIX = '.tmp-';

/**
 * Why a key is unacceptable, or undefined. Both backends apply the same rule so a repository can be
 * copied between a folder and a bucket; for the folder it is also what keeps keys inside the root.
 */
export function keyProblem(key: string): string | undefined {
  if (key === '') return 'it is empty';
  if (key.startsWith('/')) return "it starts with '/'";
  if (key.includes('\\')) return 'it contains a backslash';
  if (key.includes('\0')) return 'it contains a NUL character';
  for (const segment of key.split('/')) {
    if (segment === '') return "it has an empty segment ('//' or a trailing '/')";
    if (segment === '.' || segment === '..') return `it has a '${segment}' segment`;
    if (segment.startsWith(TEMP_PREFIX)) return `names starting with '${TEMP_PREFIX}' are reserved for uploads in flight`;
  }
  return undefined;
}

export function assertValidKey(key: string): void {
  const problem = keyProblem(key);
  if (problem !== undefined) throw new StorageError(`invalid object key ${JSON.stringify(key)}: ${problem}`);
}

/** A list prefix may end anywhere (even mid-segment), but what precedes its last '/' must be a valid key path. */
export function assertValidPrefix(prefix: string): void {
  const folder = prefix.slice(0, prefix.lastIndexOf('/') + 1);
  const lastSegment = prefix.slice(folder.length);
  const problem =
    (folder === '' ? undefined : keyProblem(folder.slice(0, -1))) ??
    (/[\\\0]/.test(lastSegment) ? 'it contains a backslash or NUL character' : undefined);
  if (problem !== undefined) throw new StorageError(`invalid list prefix ${JSON.stringify(prefix)}: ${problem}`);
}

/** S3 orders keys by their UTF-8 bytes; plain string comparison (UTF-16) differs above U+FFFF. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}



/** Validates an inclusive byte range the way S3 answers it: a start past the end is unsatisfiable. */
export function checkRange(range: { start: number; end?: number }, size: number | undefined, where: string): void {
  const { start, end } = range;
  const shown = `bytes=${start}-${end ?? ''}`;
  if (!Number.isSafeInteger(start) || start < 0 || (end !== undefined && (!Number.isSafeInteger(end) || end < start))) {
    throw new StorageError(`invalid byte range ${shown} for ${where}`);
  }
  if (size !== undefined && start >= size) {
    throw new StorageError(`byte range ${shown} is outside ${where} (${size} bytes)`);
  }
}
