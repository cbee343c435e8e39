import { Duration, RemovalPolicy, TimeZone } from 'aws-cdk-lib';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { ScheduledRun } from '../core/config/deployment';
import { deadLetterQueue } from './dead-letter-queue';

export interface BackupSchedulesProps {
  /** The backup state machine (input contract: `{ "runs": [{ "source", "type" }] }`). */
  readonly stateMachine: sfn.IStateMachine;
  /** One schedule each: from `planDeployments(config)[i].schedules`. */
  readonly runs: readonly ScheduledRun[];
}

/**
 * EventBridge Scheduler schedules that start the backup state machine: one per `ScheduledRun`
 * (a backup type, a cron and a time zone), each starting every source that shares them in one
 * execution. Schedules run in their own time zone (daylight saving included), at the stated
 * minute (no flexible window), and an invocation that still fails after the retries lands in a
 * dead-letter queue.
 */
export class BackupSchedules extends Construct {
  readonly scheduleGroup: scheduler.ScheduleGroup;
  /** Schedules by `ScheduledRun.id`. */
  readonly schedules: ReadonlyMap<string, scheduler.Schedule>;
  /** Start attempts that failed for good (the message names the schedule); alarm on its depth. */
  readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: BackupSchedulesProps) {
    super(scope, id);
    const ids = new Set<string>();
    for (const run of props.runs) {
      if (run.sources.length === 0) throw new Error(`BackupSchedules ${this.node.path}: schedule ${run.id} has no sources`);
      if (ids.has(run.id)) throw new Error(`BackupSchedules ${this.node.path}: two schedules have the id ${run.id}`);
      ids.add(run.id);
    }

    // Holds schedules only, no backups: it goes with the stack.
    this.scheduleGroup = new scheduler.ScheduleGroup(this, 'Group', { removalPolicy: RemovalPolicy.DESTROY });

    this.deadLetterQueue = deadLetterQueue(this, 'the backup schedules (EventBridge Scheduler DeadLetterConfig)');

    const schedules = new Map<string, scheduler.Schedule>();
    for (const run of props.runs) {
      const target = new targets.StepFunctionsStartExecution(props.stateMachine, {
        input: scheduler.ScheduleTargetInput.fromObject({ runs: run.sources.map((source) => ({ source, type: run.type })) }),
        deadLetterQueue: this.deadLetterQueue,
        // StartExecution fails for throttling or a broken deployment. Keep trying for an hour: a
        // backup that starts late is still a backup; after that the DLQ (and its alarm) is the
        // better signal, and the next run may be close.
        maxEventAge: Duration.hours(1),
        retryAttempts: 20,
      });
      schedules.set(
        run.id,
        new scheduler.Schedule(this, run.id, {
          schedule: scheduler.ScheduleExpression.expression(run.expression, TimeZone.of(run.timeZone)),
          target,
          scheduleGroup: this.scheduleGroup,
          timeWindow: scheduler.TimeWindow.off(),
          description: describe(run),
        }),
      );
    }
    this.schedules = schedules;
  }
}

/** What the console shows for a schedule (at most 512 characters). */
function describe(run: ScheduledRun): string {
  const text = `Tidemark ${run.type} backup at "${run.cron}" ${run.timeZone}: ${run.sources.join(', ')}`;
  return text.length <= 512 ? text : `${text.slice(0, 509)}...`;
}
