import pLimit from 'p-limit';
import { parseDuration, formatDuration } from '../config/duration';
import type { Deployment } from '../config/deployment';
import type { TidemarkConfig } from '../config/schema';
import { StackOutputNames, streamerServiceOutput } from '../config/stack-outputs';
import type { DrillTarget } from '../drill/report';
import { listDrillReports } from '../drill/report-store';
import { TidemarkError, UsageError } from '../errors';
import { openStore } from '../repository/open-store';
import type { ObjectStore } from '../repository/storage';
import { DeployedStack, locateDeployments } from '../aws/deployed-stack';
import { describeStreamers, type StreamerHealth } from '../aws/streamer-health';
import { newestRestorablePoint, secondsSince, type NewestRestorablePoint } from './newest-point';
import { formatBytes } from '../format';

/**
 * `tidemark status [--aws]`: for each source, what an operator checks first — the last backup, the
 * last drill, how old the newest restorable point is against the RPO, and (on AWS) whether its
 * streamer is running. It reads manifests and drill reports only (no key) and, with --aws, the
 * stacks' outputs and ECS; it changes nothing.
 */

export interface SourceStatus {
  readonly source: string;
  /** Nothing below needs attention. */
  readonly ok: boolean;
  /** One line each: what needs attention. */
  readonly problems: readonly string[];
  /** The stack and region it is deployed to (--aws). */
  readonly stack?: string;
  readonly region?: string;
  /** Where backups were read. */
  readonly repository: string;
  /** The newest committed backup. */
  readonly lastBackup: { readonly id: string; readonly type: string; readonly finishedAt: string; readonly storedBytes: number } | null;
  /** The newest drill report. */
  readonly lastDrill: {
    readonly id: string;
    readonly ok: boolean;
    readonly finishedAt: string;
    readonly target: DrillTarget;
    readonly rtoSeconds?: number;
    readonly rpoSeconds?: number;
    readonly error?: string;
  } | null;
  readonly rpo: {
    /** The newest point a restore can reach (the archive included). */
    readonly newestPoint: string | null;
    readonly ageSeconds: number | null;
    /** The source's RPO: configured, or (with --aws) the deployment's default. */
    readonly objectiveSeconds?: number;
    readonly ok: boolean;
  };
  /** Streaming sources only, with --aws. */
  readonly streamer?: StreamerHealth;
}

export interface StatusResult {
  readonly checkedAt: string;
  readonly ok: boolean;
  readonly sources: readonly SourceStatus[];
}

export interface StatusOptions {
  /** Only this source. */
  readonly source?: string;
  /** Read the deployed stacks (vault, streamers) instead of the config's repository alone. */
  readonly aws?: boolean;
  readonly signal?: AbortSignal;
  /** For tests. @default Date.now() */
  readonly now?: number;
}

// One source costs a listing and a manifest read, a drill listing and a report read.
const PARALLEL_SOURCES = 8;

interface SourcePlan {
  readonly name: string;
  /** Where its backups are; absent when its stack could not be read (`unreachable` says why). */
  readonly store?: ObjectStore;
  readonly unreachable?: string;
  readonly objectiveSeconds?: number;
  readonly stack?: string;
  readonly region?: string;
  /** Streaming sources with --aws: the health, or why it could not be read. */
  readonly streamer?: StreamerHealth | string;
}

export async function runStatus(config: TidemarkConfig, options: StatusOptions = {}): Promise<StatusResult> {
  const now = options.now ?? Date.now();
  const names = Object.keys(config.sources);
  if (options.source !== undefined && !names.includes(options.source)) {
    throw new UsageError(`unknown source '${options.source}' (configured: ${names.join(', ')})`);
  }
  const wanted = (name: string) => options.source === undefined || options.source === name;
  const plans = options.aws ? await awsPlans(config, wanted, options.signal) : localPlans(config, names.filter(wanted));
  const limit = pLimit(PARALLEL_SOURCES);
  const sources = await Promise.all(plans.map((plan) => limit(() => statusOf(plan, now))));
  return { checkedAt: new Date(now).toISOString(), ok: sources.every((s) => s.ok), sources };
}

function localPlans(config: TidemarkConfig, names: readonly string[]): SourcePlan[] {
  const store = openStore(config.repository);
  return names.map((name) => {
    const rpo = config.sources[name].rpo;
    return { name, store, ...(rpo ? { objectiveSeconds: parseDuration(rpo) } : {}) };
  });
}

/**
 * Per deployed stack: its outputs (the vault's repository URL, the cluster, the streamers), then
 * every streamer of the stack in as few DescribeServices calls as ECS allows. A stack that cannot
 * be read is a problem of its sources while the other stacks are still reported; when no stack
 * can be read at all, that is the one-line error.
 */
async function awsPlans(config: TidemarkConfig, wanted: (name: string) => boolean, signal?: AbortSignal): Promise<SourcePlan[]> {
  const plans: SourcePlan[] = [];
  const failures: TidemarkError[] = [];
  let stacks = 0;
  for (const { deployment, location } of locateDeployments(config)) {
    const sources = deployment.sources.filter((s) => wanted(s.name));
    if (sources.length === 0) continue;
    stacks++;
    let stack: DeployedStack;
    try {
      stack = await DeployedStack.describe(location, { signal });
    } catch (e) {
      if (!(e instanceof TidemarkError) || signal?.aborted) throw e;
      failures.push(e);
      for (const source of sources) plans.push({ name: source.name, unreachable: e.message, objectiveSeconds: source.rpoSeconds, stack: location.stackName, region: deployment.region });
      continue;
    }
    // The vault the workers write to; a stack without the output (older Tidemark) falls back to the config.
    const repositoryUrl = stack.get(StackOutputNames.repositoryUrl);
    const store = repositoryUrl ? openStore({ url: repositoryUrl, region: deployment.region }) : openStore(config.repository);
    const streamers = await streamerHealth(stack, deployment, sources.filter((s) => s.stream).map((s) => s.name), signal);
    for (const source of sources) {
      plans.push({
        name: source.name,
        store,
        objectiveSeconds: source.rpoSeconds,
        stack: location.stackName,
        region: deployment.region,
        ...(source.stream ? { streamer: streamers.get(source.name) } : {}),
      });
    }
  }
  if (stacks > 0 && failures.length === stacks) throw failures[0];
  return plans;
}

async function streamerHealth(stack: DeployedStack, deployment: Deployment, sources: readonly string[], signal?: AbortSignal): Promise<Map<string, StreamerHealth | string>> {
  const result = new Map<string, StreamerHealth | string>();
  const arns = new Map<string, string>();
  for (const source of sources) {
    const arn = stack.get(streamerServiceOutput(source));
    if (arn) arns.set(source, arn);
    else result.set(source, `stack ${stack.location.stackName} has no output ${streamerServiceOutput(source)} (deploy this version, or the source was added since the last deploy)`);
  }
  if (arns.size === 0) return result;
  const cluster = stack.get(StackOutputNames.workersCluster);
  if (!cluster) {
    for (const source of arns.keys()) result.set(source, `stack ${stack.location.stackName} has no output ${StackOutputNames.workersCluster}`);
    return result;
  }
  let health: Map<string, StreamerHealth>;
  try {
    health = await describeStreamers(deployment.region, cluster, [...arns.values()], { signal });
  } catch (e) {
    if (!(e instanceof TidemarkError) || signal?.aborted) throw e;
    for (const source of arns.keys()) result.set(source, e.message);
    return result;
  }
  for (const [source, arn] of arns) result.set(source, health.get(arn) ?? `ECS did not describe ${arn}`);
  return result;
}

async function statusOf(plan: SourcePlan, now: number): Promise<SourceStatus> {
  const problems: string[] = [];
  let newest: NewestRestorablePoint | null = null;
  let drill: SourceStatus['lastDrill'] = null;
  let read = false;
  if (plan.unreachable) problems.push(plan.unreachable);
  else if (plan.store) {
    try {
      [newest, drill] = await Promise.all([newestRestorablePoint(plan.store, plan.name), lastDrill(plan.store, plan.name, problems)]);
      read = true;
    } catch (e) {
      // One unreadable source (access denied, a missing bucket) must not hide the others.
      if (!(e instanceof TidemarkError)) throw e;
      problems.push(`cannot read ${plan.store.description}: ${e.message}`);
    }
  }
  const age = newest ? secondsSince(newest.time, now) : null;
  const rpoOk = age !== null && (plan.objectiveSeconds === undefined || age <= plan.objectiveSeconds);
  if (read && !newest) problems.push('no committed backup: nothing can be restored');
  else if (newest && !rpoOk) problems.push(`newest restorable point is ${formatAge(age!)} old, over the RPO of ${formatDuration(plan.objectiveSeconds!)}`);
  for (const p of newest?.passedOver.problems ?? []) problems.push(`backup ${p.id} is unusable: ${p.reason}`);
  if (drill && !drill.ok) problems.push(`last drill ${drill.id} failed${drill.error ? `: ${drill.error}` : ''}`);
  let streamer: StreamerHealth | undefined;
  if (typeof plan.streamer === 'string') problems.push(`streamer: ${plan.streamer}`);
  else if (plan.streamer) {
    streamer = plan.streamer;
    if (!streamer.ok) problems.push(`streamer ${describeStreamer(streamer)}`);
  }
  return {
    source: plan.name,
    ok: problems.length === 0,
    problems,
    ...(plan.stack ? { stack: plan.stack, region: plan.region } : {}),
    repository: plan.store?.description ?? '',
    lastBackup: newest
      ? { id: newest.backup.id, type: newest.backup.type, finishedAt: newest.backup.finishedAt, storedBytes: newest.backup.storedBytes }
      : null,
    lastDrill: drill,
    rpo: { newestPoint: newest?.time ?? null, ageSeconds: age, ...(plan.objectiveSeconds !== undefined ? { objectiveSeconds: plan.objectiveSeconds } : {}), ok: rpoOk },
    ...(streamer ? { streamer } : {}),
  };
}

/** The newest drill report (ids sort by time); one that cannot be used is a problem, not a drill. */
async function lastDrill(store: ObjectStore, source: string, problems: string[]): Promise<SourceStatus['lastDrill']> {
  const { reports, unreadable } = await listDrillReports(store, source, { newest: 1 });
  for (const u of unreadable) problems.push(`drill report ${u.key} cannot be read: ${u.reason}`);
  const report = reports[0];
  if (!report) return null;
  return {
    id: report.id,
    ok: report.ok,
    finishedAt: report.finishedAt,
    target: report.target,
    ...(report.rtoSeconds !== undefined ? { rtoSeconds: report.rtoSeconds } : {}),
    ...(report.rpoSeconds !== undefined ? { rpoSeconds: report.rpoSeconds } : {}),
    ...(report.error ? { error: report.error } : {}),
  };
}

function describeStreamer(s: StreamerHealth): string {
  const rollout = s.rollout && s.rollout !== 'COMPLETED' ? `, rollout ${s.rollout}${s.rolloutReason ? ` (${s.rolloutReason})` : ''}` : '';
  const event = s.lastEvent ? `; last event: ${s.lastEvent}` : '';
  return `${s.service}: ${s.status}, ${s.running} of ${s.desired} running${s.pending ? `, ${s.pending} pending` : ''}${rollout}${event}`;
}

/** 59 → "59s", 3720 → "1h02m", 90000 → "1d01h". */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}

/** The human table: one row per source, then one line per problem. */
export function formatStatus(result: StatusResult): string {
  const now = Date.parse(result.checkedAt);
  const ago = (iso: string) => (iso ? `${formatAge(secondsSince(iso, now))} ago` : '?');
  const rows = result.sources.map((s) => {
    const backup = s.lastBackup ? `${s.lastBackup.type} ${ago(s.lastBackup.finishedAt)}, ${formatBytes(s.lastBackup.storedBytes)}` : 'none';
    const drill = s.lastDrill
      ? `${s.lastDrill.ok ? 'ok' : 'FAILED'} ${ago(s.lastDrill.finishedAt)}${s.lastDrill.rtoSeconds !== undefined ? `, RTO ${formatAge(s.lastDrill.rtoSeconds)}` : ''}`
      : 'never';
    const rpo = `${s.rpo.ageSeconds === null ? '-' : formatAge(s.rpo.ageSeconds)} / ${s.rpo.objectiveSeconds === undefined ? 'no RPO' : formatDuration(s.rpo.objectiveSeconds)}${s.rpo.ok ? '' : ' !'}`;
    const streamer = s.streamer ? `${s.streamer.running}/${s.streamer.desired} running${s.streamer.ok ? '' : ' !'}` : s.problems.some((p) => p.startsWith('streamer')) ? '?' : '-';
    return [s.ok ? 'ok' : 'ATTENTION', s.source, backup, drill, rpo, streamer];
  });
  const header = ['STATE', 'SOURCE', 'LAST BACKUP', 'LAST DRILL', 'RPO AGE / OBJECTIVE', 'STREAMER'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd();
  const problems = result.sources.flatMap((s) => s.problems.map((p) => `! ${s.source}: ${p}`));
  return [line(header), ...rows.map(line), ...(problems.length ? ['', ...problems] : [])].join('\n');
}
