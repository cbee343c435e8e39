import { SFNClient } from '@aws-sdk/client-sfn';
import { sourceConfig } from '../config/load';
import type { SourceConfig, TidemarkConfig } from '../config/schema';
import { StackOutputNames } from '../config/stack-outputs';
import { BACKUP_TYPES, type BackupType } from '../engines/backup-types';
import { defaultSchedule, unavailableReason } from '../engines/registry';
import { TidemarkError, UsageError } from '../errors';
import { DeployedStack, locateStack } from '../aws/deployed-stack';
import { oneLine } from '../aws/execution-history';
import { executionName, followExecution, startExecution, type ExecutionOutcome, type ExecutionWatcher } from '../aws/follow-execution';

/**
 * `tidemark run backup|drill <source> --aws`: start the deployed state machine the way a schedule
 * would and follow it to the end. The machine's ARN comes from the stack's outputs
 * (lib/core/config/stack-outputs.ts), so the CLI needs no ARN in the config, only credentials that
 * may read the stack and start and watch executions.
 */

/** The execution ended in anything but SUCCEEDED; the message is the failing state's error and cause. */
export class ExecutionFailed extends TidemarkError {}

export interface RunOnAwsOptions {
  /** Stack name instead of Tidemark-<account>-<region>. */
  readonly stack?: string;
  /** Between polls. @default 5000 */
  readonly pollMs?: number;
  /** Stops following (never the execution). */
  readonly signal?: AbortSignal;
  readonly watcher?: ExecutionWatcher;
}

export interface RunOnAwsResult extends ExecutionOutcome {
  readonly stack: string;
  readonly stateMachineArn: string;
  readonly input: unknown;
}

/** Starts the backup state machine for one source: `{ runs: [{ source, type }] }`, the schedules' input. */
export async function runBackupOnAws(config: TidemarkConfig, source: string, options: RunOnAwsOptions & { type?: BackupType } = {}): Promise<RunOnAwsResult> {
  const src = sourceConfig(config, source);
  const type = options.type ?? defaultType(src);
  const reason = unavailableReason(src, type);
  if (reason) throw new UsageError(`${source}: ${reason}`);
  return runOnAws(config, source, StackOutputNames.backupStateMachine, { runs: [{ source, type }] }, ['backup', source, type], options);
}

/**
 * Starts the drill state machine for one source: `{ source, kind: 'manual', at }`, where `at` is
 * `latest`, `random` (a point of the window) or an ISO time with a zone, normalised to UTC.
 */
export async function runDrillOnAws(config: TidemarkConfig, source: string, options: RunOnAwsOptions & { at?: string } = {}): Promise<RunOnAwsResult> {
  sourceConfig(config, source);
  const at = drillPoint(options.at ?? 'latest');
  return runOnAws(config, source, StackOutputNames.drillStateMachine, { source, kind: 'manual', at }, ['drill', source], options);
}

/**
 * Follows an execution that is already running (one started by a schedule, or one this command
 * stopped following): `tidemark run follow <execution-arn> --aws`. The region is the ARN's.
 */
export async function followOnAws(executionArn: string, options: Omit<RunOnAwsOptions, 'stack'> = {}): Promise<ExecutionOutcome> {
  const match = /^arn:[^:]+:states:([^:]+):\d{12}:execution:[^:]+:[^:]+$/.exec(executionArn);
  if (!match) throw new UsageError(`not an execution ARN: '${executionArn}' (expected arn:aws:states:<region>:<account>:execution:<state machine>:<name>)`);
  const client = new SFNClient({ region: match[1] });
  try {
    return await followExecution(client, executionArn, { pollMs: options.pollMs, signal: options.signal, watcher: options.watcher });
  } finally {
    client.destroy();
  }
}

/** One line for a run that did not succeed: the state that failed first, its error and cause. */
export function failureLine(result: Pick<RunOnAwsResult, 'name' | 'status' | 'failure' | 'executionError' | 'executionArn'>): string {
  const f = result.failure;
  const where = f?.state ? ` in "${f.state}"${f.source ? ` [${f.source}]` : ''}` : '';
  const what = f ? `: ${oneLine(f)}` : '';
  const ended = result.executionError && result.executionError !== f ? ` (execution ended with ${result.executionError.error})` : '';
  return `execution ${result.name} ${result.status}${where}${what}${ended}`;
}

async function runOnAws(
  config: TidemarkConfig,
  source: string,
  output: string,
  input: unknown,
  nameParts: readonly string[],
  options: RunOnAwsOptions,
): Promise<RunOnAwsResult> {
  const location = locateStack(config, source, options.stack);
  const stack = await DeployedStack.describe(location, { signal: options.signal });
  const stateMachineArn = stack.require(output);
  // The state machine's own region, from its ARN: a --stack in another region still works.
  const region = /^arn:[^:]+:states:([^:]+):/.exec(stateMachineArn)?.[1] ?? location.region;
  const client = new SFNClient(region ? { region } : {});
  try {
    const { executionArn } = await startExecution(client, stateMachineArn, input, executionName(['manual', ...nameParts]), options.signal);
    options.watcher?.line({ kind: 'execution', text: `started ${executionArn}` });
    try {
      const outcome = await followExecution(client, executionArn, { pollMs: options.pollMs, signal: options.signal, watcher: options.watcher });
      return { ...outcome, stack: location.stackName, stateMachineArn, input };
    } catch (e) {
      if (options.signal?.aborted) {
        options.watcher?.line({
          kind: 'execution',
          text: `stopped following; the execution keeps running. Follow it again: tidemark run follow ${executionArn} --aws; stop it: aws stepfunctions stop-execution --execution-arn ${executionArn}`,
        });
      }
      throw e;
    }
  } finally {
    client.destroy();
  }
}

/** The first type the source is scheduled for (configured, or its method's default): its main backup. */
function defaultType(src: SourceConfig): BackupType {
  const scheduled = src.schedule ? BACKUP_TYPES.filter((t) => src.schedule?.[t] !== undefined) : [];
  const types = scheduled.length > 0 ? scheduled : BACKUP_TYPES.filter((t) => defaultSchedule(src)[t] !== undefined);
  const type = types.find((t) => unavailableReason(src, t) === undefined);
  if (!type) throw new UsageError(`no backup type of this source can run in this version; name one with --type`);
  return type;
}

function drillPoint(at: string): string {
  if (at === 'latest' || at === 'random') return at;
  // A time without a zone means different instants on the laptop and in the drill.
  if (!/(Z|[+-]\d\d:?\d\d)$/i.test(at) || Number.isNaN(Date.parse(at))) {
    throw new UsageError(`--at must be latest, random or an ISO time with a zone (2026-12-01T02:14:00Z), got '${at}'`);
  }
  return new Date(at).toISOString();
}
