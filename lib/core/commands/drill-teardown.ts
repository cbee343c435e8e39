import { logLine } from '../lambda-environment';
import type { ObjectStore } from '../repository/storage';
import { recordDrill, type DrillRecordOptions, type DrillRecordOutput, type StepError } from './drill-record';
import type { DrillKind, DrillSources, DrillTargetOutput, RdsDrillPlan } from './drill-target';

/**
 * Teardown of a drill execution that ended without running its own teardown: stopped
 * (StopExecution, Ctrl-C locally), timed out, or failed with an error no Catch sees (States.Runtime).
 * The state machine's Catch paths cover every error of a running execution; they cannot cover the
 * execution itself ending. So whatever the drill provisioned is found from the drill target (its id
 * names the ECS tasks' startedBy, the RDS instance and its tag), stopped or deleted, and the drill
 * is recorded as failed when the machine had not recorded it. Every step is idempotent: a second
 * delivery of the same event finds nothing left to stop and a report already written.
 *
 * Runtimes plug in what teardown acts on (ECS and RDS on AWS, the worker processes and the local
 * RDS stand-in here) through {@link DrillProvisioned}.
 */

/** The drill machine's state whose output carries the drill target (DrillStateNames.chooseTarget). */
export const DRILL_TARGET_STATE = 'Choose drill target';
/** The Choice entered only after the record step succeeded (DrillStateNames.passed). */
export const DRILL_RECORDED_STATE = 'Drill passed';

/** Execution statuses after which nothing of the machine runs any more. */
export const UNFINISHED_DRILL_STATUSES = ['ABORTED', 'TIMED_OUT', 'FAILED'] as const;
export type UnfinishedDrillStatus = (typeof UNFINISHED_DRILL_STATUSES)[number];

/** What is known of the execution when it has ended. */
export interface EndedDrillExecution {
  readonly source: string;
  readonly kind: DrillKind;
  /** The drill target, or null when the execution ended before one was chosen (nothing provisioned). */
  readonly drill: DrillTargetOutput | null;
  /** The record step ran to its verdict: report and metrics exist. */
  readonly recorded: boolean;
  readonly status: UnfinishedDrillStatus;
  /** How the execution ended, for the report (`States.Aborted: interrupted by SIGTERM`). */
  readonly error: StepError;
}

/** What a drill may have provisioned, as the runtime reaches it. Both must be idempotent. */
export interface DrillProvisioned {
  /** Stops every task (worker, checks) still running for the drill; how many it stopped. */
  stopTasks(drill: DrillTargetOutput): Promise<number>;
  /** Deletes the throwaway RDS instance: deleted now, already being deleted, or not there at all. */
  deleteInstance(drillId: string, rds: RdsDrillPlan): Promise<'deleted' | 'deleting' | 'absent'>;
}

export interface DrillTeardownResult {
  readonly source: string;
  readonly status: UnfinishedDrillStatus;
  readonly drillId?: string;
  readonly stoppedTasks: number;
  readonly instance?: 'deleted' | 'deleting' | 'absent';
  /** `before`: the machine had recorded it; `now`: recorded here; `none`: recording failed. */
  readonly recorded: 'before' | 'now' | 'none';
  readonly outcome?: DrillRecordOutput;
  /** Teardown failed: the throwaway may still exist (the caller fails so it is retried and alarms). */
  readonly teardownError?: string;
}

export async function tearDownDrill(
  store: ObjectStore,
  sources: DrillSources,
  execution: EndedDrillExecution,
  provisioned: DrillProvisioned,
  options: DrillRecordOptions = {},
): Promise<DrillTeardownResult> {
  const { drill, source } = execution;
  let stoppedTasks = 0;
  let instance: DrillTeardownResult['instance'];
  const problems: string[] = [];
  if (drill) {
    // Independent: an RDS drill's checks task and its instance go at once.
    const [tasks, rds] = await Promise.allSettled([provisioned.stopTasks(drill), drill.rds ? provisioned.deleteInstance(drill.id, drill.rds) : Promise.resolve(undefined)]);
    if (tasks.status === 'fulfilled') stoppedTasks = tasks.value;
    else problems.push(`stopping the drill's tasks failed: ${message(tasks.reason)}`);
    if (rds.status === 'fulfilled') instance = rds.value;
    else problems.push(`deleting RDS instance ${drill.rds?.instance} failed: ${message(rds.reason)}`);
  }
  const teardownError = problems.length > 0 ? problems.join('; ') : undefined;

  let recorded: DrillTeardownResult['recorded'] = 'before';
  let outcome: DrillRecordOutput | undefined;
  if (!execution.recorded) {
    try {
      outcome = await recordDrill(
        store,
        sources,
        {
          source,
          kind: execution.kind,
          drill,
          error: execution.error,
          cleanupError: teardownError ? { Error: 'Tidemark.TeardownFailed', Cause: teardownError } : {},
        },
        options,
      );
      recorded = 'now';
    } catch (e) {
      recorded = 'none';
      problems.push(`recording the drill failed: ${message(e)}`);
    }
  }
  const result: DrillTeardownResult = {
    source,
    status: execution.status,
    ...(drill ? { drillId: drill.id } : {}),
    stoppedTasks,
    ...(instance ? { instance } : {}),
    recorded,
    ...(outcome ? { outcome } : {}),
    ...(problems.length > 0 ? { teardownError: problems.join('; ') } : {}),
  };
  if (result.teardownError) logLine('error', 'drill teardown failed', { ...result });
  return result;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
