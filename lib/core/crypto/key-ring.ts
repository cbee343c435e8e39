import { EncryptionKeyError } from '../errors';
import type { DataKey, EncryptionContext, KeyProvider, WrappedKey } from './key-provider';

/**
 * Key rotation without rewriting anything (the repository is append-only): `encryption.key` wraps
 * every new data key, and `encryption.previousKeys` are tried, in order, for data keys it cannot
 * unwrap. Backups made before a rotation keep their wrapped keys, so the key that made them must
 * stay available — configured here — for as long as they are kept.
 *
 * A previous key is named explicitly rather than trusted from what the stored data says wrapped it
 * (a KMS blob names its key): the configured keys are the only ones a restore accepts, so a data
 * key planted under some other key the role happens to reach is still refused.
 */
export class KeyRing implements KeyProvider {
  readonly description: string;

  constructor(
    readonly current: KeyProvider,
    readonly previous: readonly KeyProvider[],
  ) {
    this.description = current.description;
  }

  generateDataKey(context: EncryptionContext): Promise<DataKey> {
    return this.current.generateDataKey(context);
  }

  /** The current key only: it is the one that opens what was written since the last rotation. */
  prepare(wrapped: WrappedKey): void {
    this.current.prepare?.(wrapped);
  }

  async decryptDataKey(wrapped: WrappedKey, context: EncryptionContext): Promise<Buffer> {
    try {
      return await this.current.decryptDataKey(wrapped, context);
    } catch (first) {
      if (!(first instanceof EncryptionKeyError) || this.previous.length === 0) throw first;
      for (const key of this.previous) {
        try {
          return await key.decryptDataKey(wrapped, context);
        } catch (e) {
          if (!(e instanceof EncryptionKeyError)) throw e;
        }
      }
      const others = this.previous.map((k) => k.description).join(', ');
      throw new EncryptionKeyError(`${first.message}; nor do the previous keys (${others})`, { cause: first });
    }
  }
}

/** The key new data keys are wrapped with: a ring's current key, or the one key there is. */
export function currentKey(keys: KeyProvider): KeyProvider {
  return keys instanceof KeyRing ? keys.current : keys;
}
