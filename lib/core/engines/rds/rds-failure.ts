import { TidemarkError } from '../../errors';

/** An RDS snapshot could not be taken or copied; nothing was recorded in the catalog. */
export class RdsSnapshotFailed extends TidemarkError {}

const NETWORK_ERRORS = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE',
]);

const THROTTLING = new Set(['Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequestsException']);

interface AwsError {
  name?: string;
  code?: string;
  message?: string;
  errors?: { code?: string }[];
  $metadata?: { httpStatusCode?: number };
}

function asAwsError(err: unknown): AwsError {
  return (typeof err === 'object' && err !== null ? err : {}) as AwsError;
}

/** RDS error code without the SDK's `Fault` suffix: SnapshotQuotaExceededFault → SnapshotQuotaExceeded. */
function codeOf(e: AwsError): string {
  return (e.name ?? '').replace(/Fault$/, '');
}

function networkCode(e: AwsError): string | undefined {
  if (e.name === 'TimeoutError') return 'connection timed out';
  return [e.code, ...(e.errors ?? []).map((x) => x.code), ...(e.message?.match(/\bE[A-Z_]+\b/g) ?? [])]
    .find((c) => c !== undefined && NETWORK_ERRORS.has(c));
}

/** Worth another poll rather than failing a snapshot that RDS is still taking. */
export function isTransientRdsError(err: unknown): boolean {
  const e = asAwsError(err);
  const status = e.$metadata?.httpStatusCode ?? 0;
  return THROTTLING.has(e.name ?? '') || networkCode(e) !== undefined || status >= 500;
}

export interface RdsFailureContext {
  /** The config source name, for "check sources.<name>.rds". */
  readonly source: string;
  /** `instance 'db-1'` / `cluster 'aurora-1'`. */
  readonly label: string;
  readonly region: string;
  readonly snapshotIdentifier: string;
}

/** Why an RDS call failed, in one line that says what to do. AWS messages name requests, not secrets. */
export function rdsFailureReason(err: unknown, ctx: RdsFailureContext): string {
  const e = asAwsError(err);
  const code = codeOf(e);
  const message = (e.message ?? '').split('\n')[0].trim();
  const aws = message ? `${code}: ${message}` : code;
  switch (code) {
    case 'SnapshotQuotaExceeded':
      return `the account's manual snapshot quota in ${ctx.region} is used up (SnapshotQuotaExceeded): delete old manual snapshots or ask AWS for a higher quota`;
    case 'InvalidDBInstanceState':
    case 'InvalidDBClusterState':
      return `${ctx.label} cannot be snapshotted in its current state (${aws})`;
    case 'DBInstanceNotFound':
    case 'DBClusterNotFound':
      return `${ctx.label} does not exist in ${ctx.region} (${code}): check sources.${ctx.source}.rds and the region`;
    case 'DBSnapshotAlreadyExists':
    case 'DBClusterSnapshotAlreadyExists':
      return `a snapshot named ${ctx.snapshotIdentifier} already exists in ${ctx.region} (did another backup of '${ctx.source}' start in the same second?)`;
    case 'KMSKeyNotAccessible':
      return `the KMS key is not usable (${aws}): check that it is enabled and that its policy allows RDS and this role`;
    case 'AccessDenied':
    case 'AccessDeniedException':
    case 'UnauthorizedOperation':
      return `no permission (${aws})`;
    case 'CredentialsProviderError':
    case 'InvalidClientTokenId':
    case 'ExpiredToken':
    case 'SignatureDoesNotMatch':
      return `no valid AWS credentials (${code}): set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run with a role`;
  }
  const network = networkCode(e);
  if (network) return `cannot reach RDS in ${ctx.region} (${network})`;
  if (/region is missing/i.test(message)) return `no AWS region: set sources.${ctx.source}.aws.region or AWS_REGION`;
  return (aws || String(err)).replace(/\s+/g, ' ');
}
