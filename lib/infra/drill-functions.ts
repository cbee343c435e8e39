import { Duration, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { BackupVaultReader } from './backup-functions';
import { asList, nagReference } from './nag-finding';
import { tidemarkFunction } from './tidemark-function';
import type { SourceDeployment } from '../core/config/deployment';

/** The vault as the drill functions need it: the record step writes reports. */
export interface DrillVault extends BackupVaultReader {
  grantWrite(grantee: iam.IGrantable): unknown;
}

export interface DrillFunctionsProps {
  readonly vault: DrillVault;
  readonly sources: readonly SourceDeployment[];
  /** @default 'Tidemark' */
  readonly namespace?: string;
  /** @default logs.RetentionDays.THREE_MONTHS */
  readonly logRetention?: logs.RetentionDays;
}

/** Lambda environment variables are limited to 4 KB in total. */
const MAX_SOURCES_JSON = 3500;

/**
 * The two Lambdas of the drill state machine (docs/aws-architecture.md, "Drills"):
 * - `chooseTarget` (lambda/drill-target): reads the restorable window, picks the point, plans the path;
 * - `record` (lambda/drill-record): reads or writes the drill report, emits the drill metrics.
 * They know each source through TIDEMARK_DRILL_SOURCES (engine, objectives, RDS instance) — no secrets.
 */
export class DrillFunctions extends Construct {
  readonly chooseTarget: NodejsFunction;
  readonly record: NodejsFunction;
  /** What every drill function knows: the repository, the sources, the metrics namespace. */
  readonly environment: Readonly<Record<string, string>>;

  constructor(scope: Construct, id: string, props: DrillFunctionsProps) {
    super(scope, id);
    if (props.sources.length === 0) throw new Error('DrillFunctions: sources is empty; there would be nothing to drill');
    const sourcesJson = JSON.stringify(drillSourcesJson(props.sources));
    if (sourcesJson.length > MAX_SOURCES_JSON) {
      throw new Error(`DrillFunctions: ${props.sources.length} sources make TIDEMARK_DRILL_SOURCES ${sourcesJson.length} characters; Lambda allows 4 KB of environment in total`);
    }
    const environment = {
      TIDEMARK_REPOSITORY_URL: `s3://${props.vault.bucket.bucketName}/${props.vault.prefix}`,
      TIDEMARK_DRILL_SOURCES: sourcesJson,
      TIDEMARK_METRICS_NAMESPACE: props.namespace ?? 'Tidemark',
    };
    const retention = props.logRetention ?? logs.RetentionDays.THREE_MONTHS;
    this.environment = environment;
    this.chooseTarget = drillHandlerFunction(this, { id: 'ChooseTarget', name: 'drill-target', description: 'Tidemark: chooses what a restore drill restores', environment, retention, grant: (role) => props.vault.grantRead(role), vault: props.vault });
    // Writes only when the worker died without a report; reports are never overwritten (put refuses).
    this.record = drillHandlerFunction(this, { id: 'Record', name: 'drill-record', description: 'Tidemark: records a restore drill (report, metrics)', environment, retention, grant: (role) => props.vault.grantWrite(role), vault: props.vault });
  }
}

/** One drill Lambda (lambda/<name>/index.ts): its own role and log group, Node 22 on ARM, X-Ray. */
export interface DrillHandlerFunctionProps {
  readonly id: string;
  /** The folder under lambda/. */
  readonly name: string;
  readonly description: string;
  readonly environment: Readonly<Record<string, string>>;
  readonly retention: logs.RetentionDays;
  /** Grants on the vault (read, write). */
  readonly grant: (role: iam.Role) => unknown;
  readonly vault: BackupVaultReader;
  /** @default Duration.minutes(2) */
  readonly timeout?: Duration;
}

export function drillHandlerFunction(scope: Construct, props: DrillHandlerFunctionProps): NodejsFunction {
  const { fn, role } = tidemarkFunction(scope, props.id, {
    name: props.name,
    description: props.description,
    environment: props.environment,
    logRetention: props.retention,
    timeout: props.timeout ?? Duration.minutes(2),
    grant: props.grant,
    owner: 'DrillFunctions',
  });
  acknowledgeWildcards(role, props.vault);
  return fn;
}

/** TIDEMARK_DRILL_SOURCES (lib/core/commands/drill-target.ts, DrillSources). */
export function drillSourcesJson(sources: readonly SourceDeployment[]): Record<string, unknown> {
  return Object.fromEntries(
    sources.map((s) => [
      s.name,
      {
        engine: s.engine,
        rpoSeconds: s.rpoSeconds,
        ...(s.rtoSeconds !== undefined ? { rtoSeconds: s.rtoSeconds } : {}),
        ...(s.rds ? { rds: { ...(s.rds.instance ? { instance: s.rds.instance } : {}), ...(s.rds.cluster ? { cluster: s.rds.cluster } : {}), securityGroupIds: s.securityGroupId ? [s.securityGroupId] : [] } } : {}),
      },
    ]),
  );
}

/** X-Ray and the vault grants (keys under the repository prefix) are the expected wildcards. */
function acknowledgeWildcards(role: iam.Role, vault: BackupVaultReader): void {
  const policy = role.node.tryFindChild('DefaultPolicy') as iam.Policy | undefined;
  if (!policy) return;
  const stack = Stack.of(policy);
  const bucketArn = nagReference(stack.resolve(vault.bucket.bucketArn));
  const document = stack.resolve(policy.document.toJSON()) as { Statement?: { Effect: string; Action: unknown; Resource: unknown }[] };
  const ids = new Map<string, string>();
  for (const statement of document.Statement ?? []) {
    if (statement.Effect !== 'Allow') continue;
    const actions = asList(statement.Action).map(String);
    const resources = asList(statement.Resource).map(nagReference);
    const isXray = actions.every((a) => a.startsWith('xray:'));
    const isVault = resources.some((r) => r.startsWith(bucketArn)) && actions.every((a) => /^(s3:(Get|List|Put|Abort)|kms:(Decrypt|DescribeKey|GenerateDataKey))/.test(a));
    if (!isXray && !isVault) continue;
    const reason = isXray
      ? 'X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions.'
      : 'The repository in the vault: reports and manifests are found by listing under the repository prefix; writes only add objects (the bucket keeps versions and Object Lock).';
    for (const action of actions.filter((a) => a.includes('*'))) ids.set(`Action::${action}`, reason);
    for (const resource of resources.filter((r) => r.includes('*'))) ids.set(`Resource::${resource}`, reason);
  }
  for (const [id, reason] of ids) Validations.of(policy).acknowledge({ id: `AwsSolutions-IAM5[${id}]`, reason });
}
