import { Duration, Stack, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { asList, nagReference } from './nag-finding';
import { tidemarkFunction } from './tidemark-function';
import type { SourceDeployment } from '../core/config/deployment';

/** What the functions need of the vault; BackupVault satisfies it. */
export interface BackupVaultReader {
  readonly bucket: s3.IBucket;
  /** Key prefix of the repository in the bucket, without slashes at the ends (e.g. 'tidemark'). */
  readonly prefix: string;
  /** Grants reading the repository: listing, objects, and the key that decrypts them. */
  grantRead(grantee: iam.IGrantable): unknown;
}

export interface BackupFunctionsProps {
  /** The repository the functions read manifests from. */
  readonly vault: BackupVaultReader;
  /** Every source of this deployment; rpo-check measures each of them. */
  readonly sources: readonly SourceDeployment[];
  /**
   * CloudWatch namespace of the metrics; BackupObservability must watch the same one.
   * @default 'Tidemark'
   */
  readonly namespace?: string;
  /**
   * How long the functions' logs (failure causes included) are kept.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
}

/** Lambda environment variables are limited to 4 KB in total; leave room for the rest. */
const MAX_SOURCES_JSON = 3000;

/**
 * The two Lambda functions of the backup pipeline (docs/aws-architecture.md):
 * - `recordResult`: called by the backup state machine after each run; emits the run's metrics.
 * - `rpoCheck`: runs every minute; emits SecondsSinceNewestRestorablePoint for every source.
 * Both only read manifests: they get read access to the vault and no key-unwrapping path of their own.
 */
export class BackupFunctions extends Construct {
  readonly recordResult: NodejsFunction;
  readonly rpoCheck: NodejsFunction;
  /** The every-minute schedule of rpo-check. */
  readonly rpoCheckSchedule: events.Rule;

  constructor(scope: Construct, id: string, props: BackupFunctionsProps) {
    super(scope, id);
    const namespace = props.namespace ?? 'Tidemark';
    if (!/^[^:]{1,255}$/.test(namespace)) throw new Error(`BackupFunctions: namespace '${namespace}' must be 1–255 characters without ':'`);
    const names = props.sources.map((s) => s.name);
    if (names.length === 0) throw new Error('BackupFunctions: sources is empty; rpo-check would have nothing to measure');
    const duplicate = names.find((n, i) => names.indexOf(n) !== i);
    if (duplicate !== undefined) throw new Error(`BackupFunctions: source '${duplicate}' is listed twice`);
    const sourcesJson = JSON.stringify(names);
    if (sourcesJson.length > MAX_SOURCES_JSON) {
      throw new Error(`BackupFunctions: ${names.length} sources make TIDEMARK_SOURCES ${sourcesJson.length} characters; Lambda allows 4 KB of environment in total`);
    }

    // The contract of docs/aws-architecture.md; no secrets: the functions never need one.
    const environment = {
      TIDEMARK_REPOSITORY_URL: `s3://${props.vault.bucket.bucketName}/${props.vault.prefix}`,
      TIDEMARK_SOURCES: sourcesJson,
      TIDEMARK_METRICS_NAMESPACE: namespace,
    };
    const retention = props.logRetention ?? logs.RetentionDays.THREE_MONTHS;

    this.recordResult = this.handlerFunction('RecordResult', {
      name: 'record-result',
      description: 'Tidemark: records a backup run outcome as metrics',
      timeout: Duration.seconds(30),
      environment,
      retention,
      vault: props.vault,
    });
    this.rpoCheck = this.handlerFunction('RpoCheck', {
      name: 'rpo-check',
      description: 'Tidemark: measures the newest restorable point of every source (every minute)',
      timeout: Duration.minutes(2),
      environment,
      retention,
      vault: props.vault,
      // A retried run would land a minute late next to the next scheduled one; the alarm asks for
      // three missing minutes in a row before it pages, so one lost run is harmless.
      retryAttempts: 0,
    });
    this.rpoCheckSchedule = new events.Rule(this, 'RpoCheckSchedule', {
      description: 'Tidemark: runs rpo-check every minute',
      schedule: events.Schedule.rate(Duration.minutes(1)),
      targets: [new targets.LambdaFunction(this.rpoCheck, { retryAttempts: 2, maxEventAge: Duration.minutes(1) })],
    });
  }

  private handlerFunction(
    id: string,
    options: {
      name: string;
      description: string;
      timeout: Duration;
      environment: Record<string, string>;
      retention: logs.RetentionDays;
      vault: BackupVaultReader;
      retryAttempts?: number;
    },
  ): NodejsFunction {
    const { fn, role } = tidemarkFunction(this, id, {
      name: options.name,
      description: options.description,
      environment: options.environment,
      logRetention: options.retention,
      timeout: options.timeout,
      retryAttempts: options.retryAttempts,
      grant: (r) => options.vault.grantRead(r),
      owner: 'BackupFunctions',
    });
    acknowledgeNagFindings(role, options.vault);
    return fn;
  }
}

/**
 * cdk-nag (AwsSolutions) findings that are deliberate, acknowledged with the reason on the very
 * resource, finding by finding (cdk-nag 3 matches exact finding ids only).
 */
function acknowledgeNagFindings(role: iam.Role, vault: BackupVaultReader): void {
  const policy = role.node.tryFindChild('DefaultPolicy') as iam.Policy | undefined;
  if (!policy) return;
  for (const finding of wildcardFindings(policy, vault)) {
    Validations.of(policy).acknowledge({ id: `AwsSolutions-IAM5[${finding.id}]`, reason: finding.reason });
  }
}

/**
 * The wildcards in a function's policy that are expected: X-Ray (which has no resource-level
 * permissions) and the vault's read grant (manifests are found by listing, so reads cover every key
 * under the repository). Anything else stays a finding. The ids follow cdk-nag's rendering of the
 * policy (`Action::s3:GetObject*`, `Resource::<Bucket.Arn>/*`).
 */
function wildcardFindings(policy: iam.Policy, vault: BackupVaultReader): { id: string; reason: string }[] {
  const stack = Stack.of(policy);
  const bucketArn = nagReference(stack.resolve(vault.bucket.bucketArn));
  const document = stack.resolve(policy.document.toJSON()) as { Statement?: { Effect: string; Action: unknown; Resource: unknown }[] };
  const xrayReason = 'X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions; "*" is the only resource they accept.';
  const vaultReason = 'Read access to the repository in the vault (BackupVault.grantRead): manifests are found by listing backup folders, so reads cover keys under the repository prefix. Read only; no write or delete.';
  const findings = new Map<string, string>();
  for (const statement of document.Statement ?? []) {
    if (statement.Effect !== 'Allow') continue;
    const actions = asList(statement.Action).map(String);
    const resources = asList(statement.Resource).map(nagReference);
    const isXray = actions.every((a) => a.startsWith('xray:'));
    const isVaultRead = resources.some((r) => r.startsWith(bucketArn)) && actions.every((a) => /^(s3:(Get|List)|kms:(Decrypt|DescribeKey))/.test(a));
    if (!isXray && !isVaultRead) continue;
    const reason = isXray ? xrayReason : vaultReason;
    for (const action of actions.filter((a) => a.includes('*'))) findings.set(`Action::${action}`, reason);
    for (const resource of resources.filter((r) => r.includes('*'))) findings.set(`Resource::${resource}`, reason);
  }
  return [...findings].map(([id, reason]) => ({ id, reason }));
}
