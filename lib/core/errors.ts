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

/** The database could not be reached or refused the connection. */
export class DatabaseUnreachable extends TidemarkError {}

/** A restore target holds data and `--force` was not given. */
export class TargetNotEmpty extends TidemarkError {}

/** A recovery target the repository cannot reach: before the first backup, past the archive, in a gap. */
export class RecoveryTargetOutOfRange extends TidemarkError {
  override readonly exitCode = 2;
}

/** No backup matches what was asked for. */
export class BackupNotFound extends TidemarkError {}

/** A child process (pg_dump, zstd, ...) failed. */
export class ToolFailed extends TidemarkError {}
