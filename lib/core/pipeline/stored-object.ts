/** One object of a backup as the manifest records it. */
export interface StoredObject {
  /** Logical name inside the backup ("dump", "globals.sql"). */
  readonly name: string;
  /** Storage key relative to the repository root. */
  readonly key: string;
  readonly compression: 'zstd' | 'none';
  /** Bytes the engine produced (before compression and encryption). */
  readonly plainBytes: number;
  /**
   * Their SHA-256, when node saw the plaintext (uncompressed objects, format version 1). Without
   * it, zstd's frame content checksum (XXH64, always written) is what proves the plaintext.
   */
  readonly plainSha256?: string;
  /** Bytes in storage and their SHA-256. */
  readonly storedBytes: number;
  readonly storedSha256: string;
}
