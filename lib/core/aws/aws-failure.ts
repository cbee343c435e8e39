import { TidemarkError } from '../errors';

/** An AWS API call the operator commands depend on failed (credentials, permissions, a missing resource). */
export class AwsCallFailed extends TidemarkError {}

interface SdkError {
  readonly name?: string;
  readonly message?: string;
  readonly code?: string;
  readonly $metadata?: { readonly httpStatusCode?: number };
}

const THROTTLING = new Set(['ThrottlingException', 'Throttling', 'TooManyRequestsException', 'RequestLimitExceeded']);
const NETWORK = /\b(ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|EPIPE)\b/;

/** Worth polling again (the SDK has already retried a few times): throttling, a 5xx, the network. */
export function isTransientAwsError(e: unknown): boolean {
  const err = (e ?? {}) as SdkError;
  return (
    THROTTLING.has(err.name ?? '') ||
    (err.$metadata?.httpStatusCode ?? 0) >= 500 ||
    err.name === 'TimeoutError' ||
    NETWORK.test(`${err.code ?? ''} ${err.message ?? ''}`)
  );
}

/**
 * One line for a failed call: what was asked, of which service, and the SDK's own reason, plus the
 * fix for the failures every operator meets first (no credentials, no permission).
 */
export function awsCallFailed(what: string, e: unknown): AwsCallFailed {
  const err = (e ?? {}) as SdkError;
  const name = err.name ?? 'Error';
  const message = (err.message ?? String(e)).replace(/\s+/g, ' ').trim();
  let hint = '';
  if (name === 'CredentialsProviderError' || /Could not load credentials/i.test(message)) {
    hint = ' (no AWS credentials: set AWS_PROFILE, or run where a role is available)';
  } else if (name === 'AccessDeniedException' || name === 'AccessDenied' || /not authorized to perform/i.test(message)) {
    hint = ' (the caller needs that permission on the deployed stack)';
  }
  return new AwsCallFailed(`${what}: ${name}: ${message}${hint}`, { cause: e });
}
