import { createHash } from 'node:crypto';
import type { EncryptionContext, WrappedKey } from '../crypto/key-provider';
import { IntegrityError, StorageError, TidemarkError } from '../errors';
import { REPOSITORY_MARKER_KEY } from './layout';
import type { ObjectStore } from './storage';

/**
 * Which repository a backup was written into. Two repositories may share a key (staging and
 * production, a repository and its successor); without an identity, a backup folder copied from
 * one into the other would open, authenticate and restore as if it had been made there.
 *
 * The identity is derived, not stored: the SHA-256 of the key check in `tidemark.json`, whose
 * wrapped key is random per repository (its salt and IV, or KMS's ciphertext). So repositories
 * created before identities existed have one too, nothing is rewritten, and a repository copied
 * whole (folder to bucket, a replica bucket) keeps it. New backups and archive key epochs carry it
 * in their encryption context (`repository`), where the key wrap authenticates it; readers refuse
 * a context that names another repository. Contexts without it (older backups) are accepted as
 * before: nothing in them can tell where they were made.
 */

/** The key of the encryption context that names the repository. */
export const REPOSITORY_CONTEXT_KEY = 'repository';

export interface RepositoryMarker {
  readonly format: 'tidemark.repository';
  readonly keyCheck: WrappedKey;
}

/** Parses `tidemark.json`; anything else is a TidemarkError naming the store. */
export function parseMarker(bytes: Buffer, where: string): RepositoryMarker {
  let parsed: { format?: unknown; keyCheck?: unknown };
  try {
    parsed = JSON.parse(bytes.toString('utf8')) as typeof parsed;
  } catch {
    parsed = {};
  }
  if (parsed.format !== 'tidemark.repository' || typeof parsed.keyCheck !== 'object' || parsed.keyCheck === null) {
    throw new TidemarkError(`${where}: ${REPOSITORY_MARKER_KEY} is not a Tidemark repository marker`);
  }
  return parsed as RepositoryMarker;
}

/** 128 bits of SHA-256 over the key check, its fields in a fixed order. */
export function repositoryIdOf(keyCheck: WrappedKey): string {
  const fields = Object.keys(keyCheck)
    .sort()
    .map((k) => [k, (keyCheck as unknown as Record<string, unknown>)[k]]);
  return createHash('sha256').update(JSON.stringify(fields)).digest('hex').slice(0, 32);
}

/** The identity of the repository in `store`, or undefined while it has no marker (no backup yet). */
export async function readRepositoryId(store: ObjectStore): Promise<string | undefined> {
  let bytes: Buffer;
  try {
    bytes = await store.getBytes(REPOSITORY_MARKER_KEY);
  } catch (e) {
    if (e instanceof StorageError && e.code === 'NoSuchKey') return undefined;
    throw e;
  }
  return repositoryIdOf(parseMarker(bytes, store.description).keyCheck);
}

/**
 * Refuses a context bound to another repository (`what` names the object: a manifest, a key
 * epoch). A context without a binding is from before identities and passes.
 */
export function checkRepositoryBinding(context: EncryptionContext, here: string | undefined, what: string): void {
  const bound = context[REPOSITORY_CONTEXT_KEY];
  if (bound === undefined || bound === here) return;
  throw new IntegrityError(
    here === undefined
      ? `${what} belongs to repository ${bound}, but this repository has no ${REPOSITORY_MARKER_KEY} to prove it is that one`
      : `${what} belongs to another repository (${bound}; this one is ${here}): it was copied in, not made here`,
  );
}
