import { UsageError } from '../errors';
import { resolveSecret } from '../secrets';
import type { RestoreTarget } from './engine';

export type DatabaseTarget = Extract<RestoreTarget, { kind: 'database' }>;

/** Logical backups restore into a database; `example` shows the URL form in the error. */
export function databaseTarget(to: RestoreTarget, example: string): DatabaseTarget {
  if (to.kind !== 'database') throw new UsageError(`a logical backup restores into a database: --to ${example}`);
  return to;
}

/**
 * The target's endpoint with its password: from the URL, or from --to-password resolved now, at the
 * moment of use — never both. Works for any endpoint type that carries an optional password.
 */
export async function withTargetPassword<E extends { readonly password?: string }>(to: DatabaseTarget, parsed: E): Promise<E> {
  if (to.passwordRef === undefined) return parsed;
  if (parsed.password !== undefined) throw new UsageError('the target password is given twice: keep it in --to-password and out of the --to URL');
  return { ...parsed, password: await resolveSecret(to.passwordRef, '--to-password') };
}
