import { createHash } from 'node:crypto';
import { ConfigError } from '../errors';
import { BACKUP_TYPES, type BackupType } from '../engines/backup-types';
import { defaultSchedule, unavailableReason } from '../engines/registry';
import { cronMatcher, toEventBridgeCron } from './cron';
import { parseDuration } from './duration';
import { AwsConfig, type SourceConfig, type TidemarkConfig } from './schema';

/**
 * What `cdk deploy` builds, planned from the config as plain data: one deployment per
 * account/region, the schedules grouped so one schedule starts every source due at the same time,
 * and the config the workers run with. lib/infra turns this into resources; nothing here knows CDK.
 */

/** The secret a worker needs for one source, injected by ECS as an environment variable. */
export interface WorkerSecret {
  /** Environment variable the container sees. */
  readonly env: string;
  /** Secrets Manager ARN or name. */
  readonly secretId: string;
  /** JSON field of the secret (RDS-managed secrets hold JSON with `password`). */
  readonly field?: string;
}

export interface SourceDeployment {
  readonly name: string;
  readonly engine: SourceConfig['engine'];
  readonly host: string;
  readonly port: number;
  readonly rds?: SourceConfig['rds'];
  readonly stream?: { readonly flushSeconds: number };
  readonly rpoSeconds: number;
  readonly rtoSeconds?: number;
  readonly securityGroupId?: string;
  readonly secret?: WorkerSecret;
}

/** One EventBridge schedule: a backup type for every source that shares the cron and time zone. */
export interface ScheduledRun {
  /** Stable identifier for the construct id (type + cron + zone). */
  readonly id: string;
  readonly type: BackupType;
  /** Five-field cron as configured. */
  readonly cron: string;
  /** EventBridge form: cron(m h dom mon dow year). */
  readonly expression: string;
  readonly timeZone: string;
  readonly sources: readonly string[];
}

export interface Deployment {
  readonly account: string;
  readonly region: string;
  readonly aws: AwsConfig;
  readonly sources: readonly SourceDeployment[];
  readonly schedules: readonly ScheduledRun[];
  /** What synth should warn about: schedules no backup method of this version can run. */
  readonly warnings: readonly string[];
}


/** Environment variable name a source's password arrives in inside the worker. */
export function secretEnvName(source: string): string {
  return `TIDEMARK_SECRET_${source.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}

function endpoint(source: SourceConfig): { host: string; port: number } {
  const u = new URL(source.url);
  return { host: decodeURIComponent(u.hostname), port: u.port ? Number(u.port) : source.engine === 'postgres' ? 5432 : 3306 };
}

/**
 * Minutes between consecutive runs of a set of crons, at most, over a sample week (UTC).
 * Enough to derive a default RPO; exact for anything that repeats weekly.
 */
export function longestGapMinutes(crons: readonly string[]): number {
  const matchers = crons.map(cronMatcher);
  const start = Date.UTC(2026, 0, 5); // a Monday
  const runs: number[] = [];
  for (let m = 0; m < 15 * 24 * 60; m++) {
    const d = new Date(start + m * 60_000);
    if (matchers.some((match) => match(d))) runs.push(m);
  }
  if (runs.length < 2) return 31 * 24 * 60; // monthly or rarer
  let gap = 0;
  for (let i = 1; i < runs.length; i++) gap = Math.max(gap, runs[i] - runs[i - 1]);
  return gap;
}

/** The configured schedules, or the default of the source's first backup method (engines/registry.ts). */
function scheduleOf(source: SourceConfig): Partial<Record<BackupType, string>> {
  const configured = source.schedule ? BACKUP_TYPES.filter((t) => source.schedule?.[t] !== undefined) : [];
  if (configured.length === 0) return defaultSchedule(source);
  return Object.fromEntries(configured.map((t) => [t, source.schedule![t]!]));
}

/**
 * Scheduled types no backup method takes yet (physical PostgreSQL and MySQL arrive after this
 * version). They are deployed as configured, so a config written for them starts working when the
 * method lands, but synth warns about each: until then those runs fail (loudly: BackupFailed alarm).
 */
function scheduleWarnings(name: string, source: SourceConfig, origin: string): string[] {
  const types = Object.keys(scheduleOf(source)) as BackupType[];
  if (types.length === 0) {
    return [`${origin}: sources.${name}: no backup method in this version takes ${source.engine}${source.rds ? ' RDS' : ''} sources; nothing is scheduled for it`];
  }
  return types.flatMap((type) => {
    const reason = unavailableReason(source, type);
    return reason ? [`${origin}: sources.${name}.schedule.${type}: ${reason}; these runs will fail until it is`] : [];
  });
}

/** Default RPO: with streaming, a few flush intervals; otherwise the longest gap between backups plus a quarter. */
function defaultRpoSeconds(source: SourceConfig): number {
  if (source.stream) return Math.max(300, 3 * source.stream.flushSeconds);
  const crons = Object.values(scheduleOf(source));
  if (crons.length === 0) return 25 * 3600; // nothing scheduled (no method yet): the alarm fires after a day
  const gap = longestGapMinutes(crons) * 60;
  return Math.round(gap * 1.25) + 900;
}

export function planDeployments(config: TidemarkConfig, origin = 'config'): Deployment[] {
  const groups = new Map<string, { account: string; region: string; sources: [string, SourceConfig][] }>();
  for (const [name, source] of Object.entries(config.sources)) {
    const account = source.aws?.account ?? config.aws?.account;
    const region = source.aws?.region ?? config.aws?.region;
    if (!account || !region) {
      throw new ConfigError(`${origin}: sources.${name}: no AWS account/region to deploy it to (set aws.account and aws.region, or sources.${name}.aws)`);
    }
    if (source.password && !source.password.startsWith('secret:')) {
      throw new ConfigError(
        `${origin}: sources.${name}.password: ${source.password.split(':')[0]}: references cannot reach a worker on AWS; use secret:<Secrets Manager ARN>`,
      );
    }
    const elsewhere = account !== config.aws?.account || region !== config.aws?.region;
    if (elsewhere && config.aws?.vpc && 'id' in config.aws.vpc) {
      throw new ConfigError(
        `${origin}: sources.${name}.aws: aws.vpc.id is a VPC of ${config.aws.account}/${config.aws.region}; a source deployed to ${account}/${region} cannot use it (give it a new VPC by removing aws.vpc.id, or move the source)`,
      );
    }
    const key = `${account}/${region}`;
    const group = groups.get(key) ?? { account, region, sources: [] };
    group.sources.push([name, source]);
    groups.set(key, group);
  }
  const aws: AwsConfig | undefined = config.aws;
  return [...groups.values()].map(({ account, region, sources }) => {
    const awsHere = { ...(aws ?? defaultAws(account, region)), account, region };
    return {
      account,
      region,
      aws: awsHere,
      sources: sources.map(([name, source]) => sourceDeployment(name, source)),
      schedules: groupSchedules(sources, awsHere.timeZone),
      warnings: sources.flatMap(([name, source]) => scheduleWarnings(name, source, origin)),
    };
  });
}

function sourceDeployment(name: string, source: SourceConfig): SourceDeployment {
  const secretId = source.password?.slice('secret:'.length);
  return {
    name,
    engine: source.engine,
    ...endpoint(source),
    ...(source.rds ? { rds: source.rds } : {}),
    ...(source.stream ? { stream: { flushSeconds: source.stream.flushSeconds } } : {}),
    rpoSeconds: source.rpo ? parseDuration(source.rpo) : defaultRpoSeconds(source),
    ...(source.rto ? { rtoSeconds: parseDuration(source.rto) } : {}),
    ...(source.securityGroupId ? { securityGroupId: source.securityGroupId } : {}),
    ...(secretId ? { secret: { env: secretEnvName(name), secretId, ...(source.rds ? { field: 'password' } : {}) } } : {}),
  };
}

function groupSchedules(sources: [string, SourceConfig][], defaultZone: string): ScheduledRun[] {
  const runs = new Map<string, ScheduledRun & { sources: string[] }>();
  for (const [name, source] of sources) {
    const zone = source.schedule?.timeZone ?? defaultZone;
    for (const [type, cron] of Object.entries(scheduleOf(source)) as [BackupType, string][]) {
      const expression = toEventBridgeCron(cron);
      const id = `${type}-${createHash('sha256').update(`${expression} ${zone}`).digest('hex').slice(0, 8)}`;
      const run = runs.get(id) ?? { id, type, cron, expression, timeZone: zone, sources: [] };
      run.sources.push(name);
      runs.set(id, run);
    }
  }
  return [...runs.values()];
}

/** Every aws.* default, from the schema itself, for a source placed in another account/region. */
function defaultAws(account: string, region: string): AwsConfig {
  return AwsConfig.parse({ account, region });
}

/**
 * The config a worker runs with on AWS: the vault bucket as repository, the vault's KMS key, and
 * each source's password as the environment variable ECS injects from Secrets Manager. It holds
 * no secret, so it may travel in the task definition.
 */
export function workerConfig(config: TidemarkConfig, deployment: Deployment, vault: { bucketName: string; prefix: string; keyArn: string }): unknown {
  const sources = Object.fromEntries(
    deployment.sources.map((s) => {
      const { engine, url, rds } = config.sources[s.name];
      return [
        s.name,
        { engine, url, ...(s.secret ? { password: `env:${s.secret.env}` } : {}), ...(rds ? { rds, aws: { region: deployment.region } } : {}) },
      ];
    }),
  );
  return {
    repository: { url: `s3://${vault.bucketName}/${vault.prefix}`, region: deployment.region },
    encryption: { key: `kms:${vault.keyArn}` },
    compression: config.compression,
    sources,
  };
}
