/** One object of a backup as the manifest records it. */
export interface StoredObject {
  /** Logical name inside the backup ("dump", "globals.sql"). */
  readonly name: string;
  /** Storage key relative to the repository root. */
  readonly key: string;
  readonly compression: 'zstd' | 'none';
  /** Bytes the engine produced (before compression and encryption) and their SHA-256. */
  readonly plainBytes: number;
  readonly plainSha256: string;
  /** Bytes in storage and their SHA-256. */
  readonly storedBytes: number;
  readonly storedSha256: string;
}
