/**
 * Every failure a user can act on is a TidemarkError: its message is one line that names the
 * problem and, where there is one, the fix. Anything else reaching the CLI is a bug.
 */
export class TidemarkError extends Error {
  /** Process exit code the CLI uses for this failure. */
  readonly exitCode: number = 1;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * A message as the one line the CLI promises: control characters (a newline in a value the user
 * typed, a server log tail) are shown escaped rather than breaking the line.
 */
export function oneLine(message: string): string {
  const named: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
  return message.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => named[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The config file is missing, unreadable or invalid. */
export class ConfigError extends TidemarkError {
  override readonly exitCode = 2;
}

/** The command line asked for something that cannot be (unknown source, bad flag combination). */
export class UsageError extends TidemarkError {
  override readonly exitCode = 2;
}

/** A secret reference (env:, file:, secret:) could not be resolved. */
export class SecretError extends TidemarkError {}

/** The encryption key is wrong, missing or too weak. */
export class EncryptionKeyError extends TidemarkError {}

/** A stored object does not match its manifest: flipped bytes, truncation, wrong size. */
export class IntegrityError extends TidemarkError {
  override readonly exitCode = 3;
}

/** `Archived`: the object is in GLACIER or DEEP_ARCHIVE and must be rehydrated before it can be read. */
export type StorageErrorCode = 'ObjectExists' | 'NoSuchKey' | 'AccessDenied' | 'Unreachable' | 'Archived' | 'Other';

/** The storage backend failed or refused (unreachable endpoint, missing bucket, overwrite attempt). */
export class StorageError extends TidemarkError {
  constructor(
    message: string,
    readonly code: StorageErrorCode = 'Other',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Two processes created a new repository at the same moment and this one lost, after its backup
 * had bound a data key to the marker it meant to write; nothing of the backup was stored yet, so
 * the backup starts again (runBackup does, once) against the marker that won.
 */
export class RepositoryCreationRace extends StorageError {
  constructor(readonly where: string) {
    super(`another process created the repository ${where} at the same moment; run the backup again`, 'ObjectExists');
  }
}

/** The database could not be reached or refused the connection. */
export class DatabaseUnreachable extends TidemarkError {}

/** A restore target holds data and `--force` was not given. */
export class TargetNotEmpty extends TidemarkError {}

/** Another backup of the same source is running (its lease is live). */
export class BackupInProgress extends TidemarkError {}

/** A recovery target the repository cannot reach: before the first backup, past the archive, in a gap. */
export class RecoveryTargetOutOfRange extends TidemarkError {
  override readonly exitCode = 2;
}

/** No backup matches what was asked for. */
export class BackupNotFound extends TidemarkError {}

/** A child process (pg_dump, zstd, ...) failed. */
export class ToolFailed extends TidemarkError {}

/** Errors of the local disk a restore writes to, worth one clear line rather than a stack. */
const DISK_ERRORS: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is exhausted',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EIO: 'an I/O error of the device',
};

/**
 * A file system error of a restore target as a TidemarkError naming the target and what ran out;
 * anything else is returned as it is.
 */
export function diskError(e: unknown, target: string): unknown {
  const err = e as NodeJS.ErrnoException;
  const code = err?.code;
  if (e instanceof TidemarkError || code === undefined || !(code in DISK_ERRORS)) return e;
  const where = err.path ? ` writing ${err.path}` : '';
  return new TidemarkError(`restore into ${target} failed: ${DISK_ERRORS[code]} (${code}${where})`, { cause: e });
}
