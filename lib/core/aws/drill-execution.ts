import { ECSClient, ListTasksCommand, StopTaskCommand } from '@aws-sdk/client-ecs';
import { DeleteDBInstanceCommand, DescribeDBInstancesCommand, RDSClient, type DBInstance } from '@aws-sdk/client-rds';
import { GetExecutionHistoryCommand, SFNClient, type HistoryEvent } from '@aws-sdk/client-sfn';
import { sleep } from '../abort';
import { isDrillKind, type DrillTargetOutput } from '../commands/drill-target';
import { DRILL_RECORDED_STATE, DRILL_TARGET_STATE, UNFINISHED_DRILL_STATUSES, type DrillProvisioned, type EndedDrillExecution, type UnfinishedDrillStatus } from '../commands/drill-teardown';
import { UsageError } from '../errors';

/**
 * The AWS side of drill teardown (lib/core/commands/drill-teardown.ts): the EventBridge event of a
 * drill execution that ended, read back through its history into the drill it ran, and ECS and RDS
 * as the teardown reaches them. The drill id names everything: the tasks' startedBy, the RDS
 * instance (`tidemark-drill-<id>`) and its `tidemark:drill` tag.
 */

/** Tag every throwaway RDS instance carries, value the drill id (lib/infra DRILL_INSTANCE_TAG). */
export const RDS_DRILL_TAG = 'tidemark:drill';

/** `Step Functions Execution Status Change` (source aws.states), as EventBridge delivers it. */
export interface ExecutionStatusChangeEvent {
  readonly source?: string;
  readonly 'detail-type'?: string;
  readonly detail: {
    readonly executionArn: string;
    readonly stateMachineArn?: string;
    readonly name?: string;
    readonly status: string;
    /** The execution input as JSON: `{ source, kind, at? }`. */
    readonly input?: string | null;
    readonly error?: string | null;
    readonly cause?: string | null;
  };
}

const HOW_IT_ENDED: Record<UnfinishedDrillStatus, { error: string; cause: string }> = {
  ABORTED: { error: 'States.Aborted', cause: 'the drill execution was stopped (StopExecution) before its teardown ran' },
  TIMED_OUT: { error: 'States.Timeout', cause: 'the drill execution timed out before its teardown ran' },
  FAILED: { error: 'States.Runtime', cause: 'the drill execution failed outside its Catch paths' },
};

/**
 * The drill an ended execution ran, from its history: the drill target (what was provisioned) and
 * whether the record step already gave its verdict. Undefined for a status that needs no teardown.
 */
export async function readEndedDrillExecution(sfn: SFNClient, event: ExecutionStatusChangeEvent): Promise<EndedDrillExecution | undefined> {
  const detail = event?.detail;
  if (!detail || typeof detail.executionArn !== 'string') throw new UsageError('drill-teardown: expected a Step Functions Execution Status Change event (detail.executionArn)');
  const status = detail.status as UnfinishedDrillStatus;
  if (!UNFINISHED_DRILL_STATUSES.includes(status)) return undefined;

  let drill: DrillTargetOutput | null = null;
  let recorded = false;
  let end: { error?: string; cause?: string } = {};
  for await (const event of executionHistory(sfn, detail.executionArn)) {
    const exited = event.stateExitedEventDetails;
    if (event.type === 'TaskStateExited' && exited?.name === DRILL_TARGET_STATE && exited.output) {
      drill = drillOf(exited.output);
    }
    if (event.stateEnteredEventDetails?.name === DRILL_RECORDED_STATE) recorded = true;
    const ended = event.executionAbortedEventDetails ?? event.executionTimedOutEventDetails ?? event.executionFailedEventDetails;
    if (ended) end = ended;
  }
  const input = parseJson(detail.input) as { source?: unknown; kind?: unknown } | undefined;
  const source = drill?.source ?? (typeof input?.source === 'string' ? input.source : undefined);
  const kind = drill?.kind ?? (isDrillKind(input?.kind) ? input.kind : 'manual');
  if (!source) throw new UsageError(`drill-teardown: execution ${detail.executionArn} names no source (input ${JSON.stringify(detail.input)})`);
  const how = HOW_IT_ENDED[status];
  const error = end.error ?? detail.error ?? how.error;
  const cause = [how.cause, end.cause ?? detail.cause].filter(Boolean).join(': ');
  return { source, kind, drill, recorded, status, error: { Error: error, Cause: cause } };
}

async function* executionHistory(sfn: SFNClient, executionArn: string): AsyncGenerator<HistoryEvent> {
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(new GetExecutionHistoryCommand({ executionArn, maxResults: 1000, includeExecutionData: true, nextToken }));
    yield* page.events ?? [];
    nextToken = page.nextToken;
  } while (nextToken);
}

/** The chooseTarget state's output is `{ source, kind, drill, error, cleanupError }`. */
function drillOf(output: string): DrillTargetOutput | null {
  const drill = (parseJson(output) as { drill?: DrillTargetOutput } | undefined)?.drill;
  return drill && typeof drill.id === 'string' && typeof drill.source === 'string' ? drill : null;
}

function parseJson(text: string | null | undefined): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

export interface AwsDrillProvisionedOptions {
  readonly ecs: ECSClient;
  readonly rds: RDSClient;
  /** The ECS cluster the drill tasks run in. */
  readonly cluster: string;
  /** Until when a delete that RDS refuses (instance still being created) is tried again (epoch ms). */
  readonly deadline: number;
  /** Pause between two delete attempts. @default 30 s */
  readonly pollMs?: number;
}

/** ECS tasks found by startedBy = drill id; the RDS instance deleted only if it carries the drill's tag. */
export function awsDrillProvisioned(options: AwsDrillProvisionedOptions): DrillProvisioned {
  const { ecs, rds, cluster } = options;
  return {
    async stopTasks(drill) {
      const tasks: string[] = [];
      let nextToken: string | undefined;
      do {
        const page = await ecs.send(new ListTasksCommand({ cluster, startedBy: drill.id, desiredStatus: 'RUNNING', nextToken }));
        tasks.push(...(page.taskArns ?? []));
        nextToken = page.nextToken;
      } while (nextToken);
      const reason = `Tidemark: drill ${drill.id} ended before its teardown; stopped by drill-teardown`;
      await Promise.all(tasks.map((task) => ecs.send(new StopTaskCommand({ cluster, task, reason }))));
      return tasks.length;
    },

    async deleteInstance(drillId, plan) {
      const id = plan.instance;
      for (;;) {
        const instance = await describe(rds, id);
        if (!instance) return 'absent';
        const tag = instance.TagList?.find((t) => t.Key === RDS_DRILL_TAG)?.Value;
        if (tag !== drillId) throw new Error(`RDS instance ${id} carries ${RDS_DRILL_TAG}=${tag ?? '(none)'}, not drill ${drillId}; left alone`);
        if (instance.DBInstanceStatus === 'deleting') return 'deleting';
        try {
          await rds.send(new DeleteDBInstanceCommand({ DBInstanceIdentifier: id, SkipFinalSnapshot: true, DeleteAutomatedBackups: true }));
          return 'deleted';
        } catch (e) {
          const name = (e as Error).name;
          if (name === 'DBInstanceNotFoundFault') return 'absent';
          // Still being created (a restore in flight when the execution stopped): RDS refuses the
          // delete until it is available. Keep asking while there is time; then fail, to be retried.
          if (name !== 'InvalidDBInstanceStateFault' || Date.now() + (options.pollMs ?? 30_000) > options.deadline) throw e;
        }
        await sleep(options.pollMs ?? 30_000);
      }
    },
  };
}

async function describe(rds: RDSClient, id: string): Promise<DBInstance | undefined> {
  try {
    return (await rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: id }))).DBInstances?.[0];
  } catch (e) {
    if ((e as Error).name === 'DBInstanceNotFoundFault') return undefined;
    throw e;
  }
}
