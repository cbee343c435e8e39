import { Duration, Stack, TimeZone, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import type { SourcePolicy } from '../core/config/retention';
import { nagReference } from './nag-finding';
import { tidemarkFunction } from './tidemark-function';

/** What the retention and tiering functions need of the vault; BackupVault satisfies it. */
export interface RetentionVault {
  readonly bucket: s3.IBucket;
  readonly prefix: string;
  grantRetention(grantee: iam.IGrantable, sources: readonly string[]): unknown;
  grantCatalogRead(grantee: iam.IGrantable, sources: readonly string[]): unknown;
  grantTagging(grantee: iam.IGrantable, sources: readonly string[]): unknown;
}

export interface RetentionFunctionsProps {
  readonly vault: RetentionVault;
  /** Each source's merged policy (`mergePolicy(config, config.sources[name])`), by source name. */
  readonly policies: Readonly<Record<string, SourcePolicy>>;
  /**
   * The vault's default Object Lock retention in days: the functions take an object as locked until
   * it was stored + this, and never delete it before.
   * @default - no lock is assumed (only for vaults without Object Lock)
   */
  readonly objectLockDays?: number;
  /**
   * When retention runs (EventBridge Scheduler cron, six fields; the stack passes aws.maintenance.retention).
   * @default 'cron(15 4 * * ? *)', daily at 04:15, after the nightly backups
   */
  readonly retentionCron?: string;
  /** @default 'cron(15 5 * * ? *)' */
  readonly tieringCron?: string;
  /** Time zone of both schedules. @default 'UTC' */
  readonly timeZone?: string;
  /** @default logs.RetentionDays.THREE_MONTHS */
  readonly logRetention?: logs.RetentionDays;
}

/** Lambda allows 4 KB of environment variables in total. */
const MAX_ENVIRONMENT_BYTES = 4096;

/**
 * The retention and tiering functions (lambda/retention, lambda/tiering), each on its own daily
 * schedule. Retention is the only principal of the deployment that may delete, and only under the
 * sources' backups/, wal/ and binlog/ (BackupVault.grantRetention); tiering may only tag there.
 * Their policies come from the config through the environment; no secret is needed or given.
 * Failures are alarmed by BackupObservability.watchFunction (the stack wires it).
 */
export class RetentionFunctions extends Construct {
  readonly retention: NodejsFunction;
  readonly tiering: NodejsFunction;
  readonly retentionSchedule: scheduler.Schedule;
  readonly tieringSchedule: scheduler.Schedule;

  constructor(scope: Construct, id: string, props: RetentionFunctionsProps) {
    super(scope, id);
    const sources = Object.keys(props.policies);
    if (sources.length === 0) throw new Error(`${this.node.path}: policies is empty; retention would have no source to plan for`);
    if (props.objectLockDays !== undefined && (!Number.isInteger(props.objectLockDays) || props.objectLockDays < 1)) {
      throw new Error(`${this.node.path}: objectLockDays must be a whole number of days, at least 1, got ${props.objectLockDays}`);
    }
    const environment: Record<string, string> = {
      TIDEMARK_REPOSITORY_URL: `s3://${props.vault.bucket.bucketName}/${props.vault.prefix}`,
      TIDEMARK_RETENTION_POLICIES: encodePolicies(props.policies),
      ...(props.objectLockDays !== undefined ? { TIDEMARK_OBJECT_LOCK_DAYS: String(props.objectLockDays) } : {}),
    };
    // The bucket name is a token here; 63 characters is its longest.
    const size = Object.entries(environment).reduce((n, [k, v]) => n + k.length + (k === 'TIDEMARK_REPOSITORY_URL' ? 80 : v.length), 0);
    if (size > MAX_ENVIRONMENT_BYTES) {
      throw new Error(`${this.node.path}: the policies of ${sources.length} sources make ${size} bytes of environment; Lambda allows 4 KB (give sources the same policy keys, or split the deployment)`);
    }
    const logRetention = props.logRetention ?? logs.RetentionDays.THREE_MONTHS;
    const timeZone = TimeZone.of(props.timeZone ?? 'UTC');

    this.retention = this.handler('Retention', 'retention', 'Tidemark: deletes what each source\'s retention plan says is due (daily)', environment, logRetention);
    props.vault.grantRetention(this.retention, sources);
    this.tiering = this.handler('Tiering', 'tiering', 'Tidemark: tags whole chains of long-term keeps warm or cold (daily)', environment, logRetention);
    props.vault.grantCatalogRead(this.tiering, sources);
    props.vault.grantTagging(this.tiering, sources);

    this.retentionSchedule = this.daily('RetentionSchedule', this.retention, props.retentionCron ?? 'cron(15 4 * * ? *)', timeZone, 'Tidemark: applies retention');
    this.tieringSchedule = this.daily('TieringSchedule', this.tiering, props.tieringCron ?? 'cron(15 5 * * ? *)', timeZone, 'Tidemark: applies tiering');
  }

  private handler(id: string, name: string, description: string, environment: Record<string, string>, logRetention: logs.RetentionDays): NodejsFunction {
    return tidemarkFunction(this, id, {
      name,
      description,
      environment,
      logRetention,
      owner: 'RetentionFunctions',
      // The planner over 100k backups and 5M WAL objects stays under 1 GB (BENCHMARKS.md, retention).
      memorySize: 1024,
      timeout: Duration.minutes(15),
      tracing: false,
      // The scheduler invokes asynchronously: Lambda retries a failed run twice (a plan applied
      // twice does nothing the second time); each failure still counts for the error alarm.
      retryAttempts: 2,
    }).fn;
  }

  private daily(id: string, fn: lambda.IFunction, cron: string, timeZone: TimeZone, description: string): scheduler.Schedule {
    if (!/^cron\(\S+ \S+ \S+ \S+ \S+ \S+\)$/.test(cron)) throw new Error(`${this.node.path}: ${id} must be a six-field EventBridge cron(...) expression, got ${JSON.stringify(cron)}`);
    // A role of our own for the scheduler, so the finding on grantInvoke's `<arn>:*` (the function's
    // versions) is acknowledged on it and nowhere else.
    const role = new iam.Role(this, `${id}Role`, { assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com'), description: `Tidemark: ${description}` });
    this.node.addValidation({
      validate: () => {
        Validations.of(role).acknowledge({
          id: `AwsSolutions-IAM5[Resource::${nagReference(Stack.of(this).resolve(fn.functionArn))}:*]`,
          reason: 'The scheduler may invoke this one function; the ":*" is CDK grantInvoke\'s cover for its versions and aliases.',
        });
        return [];
      },
    });
    return new scheduler.Schedule(this, id, {
      schedule: scheduler.ScheduleExpression.expression(cron, timeZone),
      // Retries cover delivering the invocation (throttling); failed runs are Lambda's retries.
      target: new targets.LambdaInvoke(fn, { role, retryAttempts: 3, maxEventAge: Duration.hours(6) }),
      timeWindow: scheduler.TimeWindow.off(),
      description,
    });
  }
}

/**
 * TIDEMARK_RETENTION_POLICIES (read by lib/core/lambda-environment.ts): sources that share a policy
 * share one entry, so a fleet of sources on the default policy costs a name each.
 */
export function encodePolicies(policies: Readonly<Record<string, SourcePolicy>>): string {
  const groups = new Map<string, string[]>();
  for (const [source, policy] of Object.entries(policies)) {
    const key = JSON.stringify(policy);
    groups.set(key, [...(groups.get(key) ?? []), source]);
  }
  return `[${[...groups].map(([policy, sources]) => `{"sources":${JSON.stringify(sources)},"policy":${policy}}`).join(',')}]`;
}
