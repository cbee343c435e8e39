/**
 * Envelope encryption: every backup gets a fresh 256-bit data key; only its wrapped form is stored
 * (in the manifest). A KeyProvider wraps and unwraps data keys — locally from a secret, or with AWS
 * KMS — and binds each wrap to an encryption context (repository, source, backup) so a wrapped key
 * cannot be moved to another backup unnoticed.
 */

/** Key/value pairs bound to a wrapped key (the KMS EncryptionContext, the local provider's AAD). */
export type EncryptionContext = Readonly<Record<string, string>>;

export interface LocalWrappedKey {
  readonly provider: 'local';
  readonly kdf: 'scrypt';
  /** scrypt cost parameters, stored so they can be raised later without breaking old backups. */
  readonly n: number;
  readonly r: number;
  readonly p: number;
  readonly salt: string; // base64
  readonly iv: string; // base64
  readonly ciphertext: string; // base64, AES-256-GCM of the data key
  readonly tag: string; // base64
}

export interface KmsWrappedKey {
  readonly provider: 'kms';
  /** The key ARN KMS reported when it generated the data key. */
  readonly keyId: string;
  readonly ciphertext: string; // base64 CiphertextBlob
}

export type WrappedKey = LocalWrappedKey | KmsWrappedKey;

export interface DataKey {
  /** 32 bytes. Never stored, never logged. */
  readonly plaintext: Buffer;
  readonly wrapped: WrappedKey;
}

export interface KeyProvider {
  /** Where the key comes from, safe to print: "local key from env:TIDEMARK_KEY", "kms:alias/x". */
  readonly description: string;
  generateDataKey(context: EncryptionContext): Promise<DataKey>;
  /** Unwraps a data key; a wrong key or a mismatched context fails with EncryptionKeyError. */
  decryptDataKey(wrapped: WrappedKey, context: EncryptionContext): Promise<Buffer>;
  /**
   * Starts, in the background, what unwrapping keys like `wrapped` will be slow at, where that
   * work is shared by many keys (the local key's scrypt: one per salt); unwraps later take it from
   * there. Never throws; what failed is for decryptDataKey to report.
   */
  prepare?(wrapped: WrappedKey): void;
}

/** Canonical bytes of a context, independent of key order (used as AAD). */
export function canonicalContext(context: EncryptionContext): Buffer {
  const sorted = Object.keys(context)
    .sort()
    .map((k) => [k, context[k]]);
  return Buffer.from(JSON.stringify(sorted), 'utf8');
}
