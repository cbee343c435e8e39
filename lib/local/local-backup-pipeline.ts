import { recordBackupResult, type RecordResultEvent } from '../core/commands/record-result';
import type { BackupType } from '../core/repository/manifest';
import type { ObjectStore } from '../core/repository/storage';
import { runStateMachine, type LocalExecutionResult, type SnsPublishRequest } from './state-machine-runner';
import { workerProcessResolver } from './worker-process';

/**
 * The backup state machine of a deployment, run on this machine: the definition synthesized from
 * the same constructs as on AWS, with ECS RunTask as a worker child process, the record-result
 * Lambda in process, and SNS as a list. Nothing about the flow (retries, catches, the failure
 * path, the final verdict) is re-implemented here.
 */

/** Construct path of the record-result function inside a TidemarkStack ("Functions/RecordResult"). */
const RECORD_RESULT_PREFIX = 'FunctionsRecordResult';

export interface LocalBackupRun {
  readonly source: string;
  readonly type: BackupType;
}

export interface LocalBackupPipelineOptions {
  /** The backup state machine's definition, from `stateMachineDefinition(template)`. */
  readonly definition: object;
  /** TIDEMARK_CONFIG_JSON for the workers: the local repository, key reference and sources. */
  readonly workerConfigJson: string;
  /** More environment for the workers (the key's variable, PATH, …). */
  readonly workerEnv?: Record<string, string>;
  /** The worker: `containers/worker/main.ts` (via tsx) by default, or a bundle. */
  readonly workerEntry?: string;
  /** The repository record-result reads, as the Lambda would from TIDEMARK_REPOSITORY_URL. */
  readonly store: ObjectStore;
  readonly namespace?: string;
  readonly onWorkerOutput?: (line: string, stream: 'stdout' | 'stderr') => void;
  readonly onStateEntered?: (state: string, index?: number) => void;
}

export interface LocalBackupPipelineResult extends LocalExecutionResult {
  /** What would have been published to the alarm topic. */
  readonly notifications: readonly SnsPublishRequest[];
  /** The EMF lines record-result emitted (CloudWatch would turn them into metrics). */
  readonly metrics: readonly Record<string, unknown>[];
}

export async function runBackupsLocally(runs: readonly LocalBackupRun[], options: LocalBackupPipelineOptions): Promise<LocalBackupPipelineResult> {
  const notifications: SnsPublishRequest[] = [];
  const metrics: Record<string, unknown>[] = [];
  const result = await runStateMachine(
    options.definition,
    { runs },
    {
      ecsRunTask: workerProcessResolver({
        ...(options.workerEntry ? { entry: options.workerEntry } : {}),
        env: { ...options.workerEnv, TIDEMARK_CONFIG_JSON: options.workerConfigJson },
        onOutput: options.onWorkerOutput,
      }),
      lambda: (functionId, payload) => {
        if (!functionId.startsWith(RECORD_RESULT_PREFIX)) throw new Error(`no local stand-in for the Lambda ${functionId}`);
        return recordBackupResult(options.store, payload as RecordResultEvent, {
          namespace: options.namespace,
          write: (line) => metrics.push(JSON.parse(line) as Record<string, unknown>),
        });
      },
      snsPublish: (request) => {
        notifications.push(request);
        return { MessageId: `local-${notifications.length}` };
      },
    },
    { onStateEntered: options.onStateEntered },
  );
  return { ...result, notifications, metrics };
}
