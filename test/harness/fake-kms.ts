import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import {
  IncorrectKeyException,
  InvalidCiphertextException,
  NotFoundException,
  type DecryptCommandInput,
  type GenerateDataKeyCommandInput,
} from '@aws-sdk/client-kms';

const meta = { $metadata: {} };

/**
 * A KMS that really encrypts: each key has its own AES-256-GCM master key, the blob names the key
 * that wrapped it, and the encryption context is the AAD, so a changed context or another key fails
 * the way KMS fails. Its context encoding is its own, independent of the code under test.
 */
export class FakeKms {
  private readonly masters = new Map<string, Buffer>();
  private readonly aliases = new Map<string, string>();

  addKey(arn: string, alias?: string): void {
    this.masters.set(arn, randomBytes(32));
    if (alias) this.aliases.set(alias, arn);
  }

  /** UpdateAlias: the alias names another key from now on; the old key stays, and so does every blob it wrapped. */
  moveAlias(alias: string, arn: string): void {
    if (!this.masters.has(arn)) throw new Error(`no key ${arn}`);
    this.aliases.set(alias, arn);
  }

  /** KMS accepts a key ARN, a key id, alias/<name> or an alias ARN. */
  private resolve(keyId: string | undefined): string {
    const id = keyId ?? '';
    const alias = /^arn:aws:kms:[^:]+:\d+:(alias\/.+)$/.exec(id)?.[1] ?? (id.startsWith('alias/') ? id : undefined);
    const arn = alias ? this.aliases.get(alias) : [...this.masters.keys()].find((a) => a === id || a.endsWith(`:key/${id}`));
    if (!arn) throw new NotFoundException({ message: `Key '${id}' does not exist`, ...meta });
    return arn;
  }

  private static aad(context: Record<string, string> | undefined): Buffer {
    return Buffer.from(Object.entries(context ?? {}).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${v}`).join('\n'));
  }

  generateDataKey(input: GenerateDataKeyCommandInput) {
    expect(input.KeySpec).toBe('AES_256');
    const arn = this.resolve(input.KeyId);
    const plaintext = randomBytes(32);
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.masters.get(arn) as Buffer, iv);
    cipher.setAAD(FakeKms.aad(input.EncryptionContext));
    const sealed = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const name = Buffer.from(arn);
    const blob = Buffer.concat([Buffer.from([name.length]), name, iv, cipher.getAuthTag(), sealed]);
    return { KeyId: arn, Plaintext: new Uint8Array(plaintext), CiphertextBlob: new Uint8Array(blob) };
  }

  decrypt(input: DecryptCommandInput) {
    const blob = Buffer.from(input.CiphertextBlob as Uint8Array);
    const length = blob[0] ?? 0;
    const wrappedBy = blob.subarray(1, 1 + length).toString();
    if (!this.masters.has(wrappedBy)) throw new InvalidCiphertextException({ message: 'invalid ciphertext', ...meta });
    if (input.KeyId !== undefined && this.resolve(input.KeyId) !== wrappedBy) {
      throw new IncorrectKeyException({ message: 'The key ID in the request does not identify a CMK that can perform this operation.', ...meta });
    }
    const rest = blob.subarray(1 + length);
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.masters.get(wrappedBy) as Buffer, rest.subarray(0, 12));
      decipher.setAAD(FakeKms.aad(input.EncryptionContext));
      decipher.setAuthTag(rest.subarray(12, 28));
      const plaintext = Buffer.concat([decipher.update(rest.subarray(28)), decipher.final()]);
      return { KeyId: wrappedBy, Plaintext: new Uint8Array(plaintext) };
    } catch {
      throw new InvalidCiphertextException({ message: 'invalid ciphertext', ...meta });
    }
  }
}
