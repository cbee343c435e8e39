import { createCipheriv, createDecipheriv, randomBytes, scrypt } from 'node:crypto';
import { EncryptionKeyError } from '../errors';
import {
  canonicalContext,
  type DataKey,
  type EncryptionContext,
  type KeyProvider,
  type LocalWrappedKey,
  type WrappedKey,
} from './key-provider';

/** Shortest secret we accept: about 190 bits if random, and long enough to discourage passwords. */
export const MIN_SECRET_LENGTH = 32;

/** scrypt cost: ~0.1 s and 32 MiB here, paid once per process and salt, not per object. */
const SCRYPT = { n: 2 ** 15, r: 8, p: 1 } as const;

/** A cost a wrapped key may ask for: more would be a stored object making us spend minutes or gigabytes. */
const plausibleCost = ({ n, r, p }: LocalWrappedKey): boolean => n <= 2 ** 20 && r <= 32 && p <= 16;

function deriveKek(secret: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(secret, salt, 32, { N: n, r, p, maxmem: 256 * n * r }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

/**
 * Wraps data keys under a key-encryption key derived (scrypt) from a local secret. The salt and
 * cost travel with every wrapped key, so the secret alone opens any backup.
 */
export class LocalKeyProvider implements KeyProvider {
  private readonly keks = new Map<string, Promise<Buffer>>();
  /**
   * Salt of new wraps, fixed by the first wrap or unwrap: a salt with today's cost that we already
   * derived a KEK for (the repository's key check), so a backup pays for scrypt once, not twice;
   * else our own random one.
   */
  private salt?: Buffer;

  constructor(
    private readonly secret: string,
    readonly description: string,
  ) {
    if (secret.length < MIN_SECRET_LENGTH) {
      throw new EncryptionKeyError(
        `${description} is ${secret.length} characters; it must be at least ${MIN_SECRET_LENGTH} (try: openssl rand -base64 32)`,
      );
    }
  }

  private kek(salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
    const id = `${salt.toString('base64')}:${n}:${r}:${p}`;
    let kek = this.keks.get(id);
    if (!kek) {
      kek = deriveKek(this.secret, salt, n, r, p);
      this.keks.set(id, kek);
    }
    return kek;
  }

  async generateDataKey(context: EncryptionContext): Promise<DataKey> {
    const plaintext = randomBytes(32);
    const salt = (this.salt ??= randomBytes(16));
    const kek = await this.kek(salt, SCRYPT.n, SCRYPT.r, SCRYPT.p);
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', kek, iv);
    cipher.setAAD(canonicalContext(context));
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const wrapped: LocalWrappedKey = {
      provider: 'local',
      kdf: 'scrypt',
      ...SCRYPT,
      salt: salt.toString('base64'),
      iv: iv.toString('base64'),
      ciphertext: ciphertext.toString('base64'),
      tag: cipher.getAuthTag().toString('base64'),
    };
    return { plaintext, wrapped };
  }

  /** Derives the KEK for `wrapped`'s salt and cost now (KeyProvider.prepare). */
  prepare(wrapped: WrappedKey): void {
    if (wrapped.provider !== 'local' || !plausibleCost(wrapped)) return;
    this.kek(Buffer.from(wrapped.salt, 'base64'), wrapped.n, wrapped.r, wrapped.p).catch(() => undefined);
  }

  async decryptDataKey(wrapped: WrappedKey, context: EncryptionContext): Promise<Buffer> {
    if (wrapped.provider !== 'local') {
      throw new EncryptionKeyError(
        `this data was encrypted with a ${wrapped.provider} key (${wrapped.keyId}), but the configured key is ${this.description}`,
      );
    }
    if (!plausibleCost(wrapped)) {
      throw new EncryptionKeyError('wrapped key asks for an implausible scrypt cost; refusing');
    }
    const salt = Buffer.from(wrapped.salt, 'base64');
    const kek = await this.kek(salt, wrapped.n, wrapped.r, wrapped.p);
    try {
      const decipher = createDecipheriv('aes-256-gcm', kek, Buffer.from(wrapped.iv, 'base64'));
      decipher.setAAD(canonicalContext(context));
      decipher.setAuthTag(Buffer.from(wrapped.tag, 'base64'));
      const key = Buffer.concat([decipher.update(Buffer.from(wrapped.ciphertext, 'base64')), decipher.final()]);
      if (wrapped.n === SCRYPT.n && wrapped.r === SCRYPT.r && wrapped.p === SCRYPT.p && salt.length >= 16) this.salt ??= salt;
      return key;
    } catch (e) {
      throw new EncryptionKeyError(`wrong encryption key: ${this.description} does not unlock this data`, {
        cause: e,
      });
    }
  }
}
