import { Duration, RemovalPolicy, TimeZone } from 'aws-cdk-lib';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { toEventBridgeCron } from '../core/config/cron';
import type { Deployment } from '../core/config/deployment';
import { DRILL_SCHEDULE_DEFAULTS } from '../core/config/drill';
import type { TidemarkConfig } from '../core/config/schema';
import { deadLetterQueue } from './dead-letter-queue';

/** The scheduled drill kinds: a daily verify, a weekly restore of the newest point, a monthly full drill at a random point. */
export const SCHEDULED_DRILL_KINDS = ['verify', 'restore', 'full'] as const;
export type ScheduledDrillKind = (typeof SCHEDULED_DRILL_KINDS)[number];

/** One drill schedule: a kind of drill of one source. */
export interface DrillRun {
  readonly source: string;
  readonly kind: ScheduledDrillKind;
  /** Five-field cron as configured (or the default). */
  readonly cron: string;
  readonly expression: string;
  readonly timeZone: string;
}

/**
 * The drill schedules of a deployment: `sources.<name>.drill.schedule`, each omitted kind taking
 * DRILL_SCHEDULE_DEFAULTS, in the source's time zone (its backup schedule's, else aws.timeZone).
 */
export function planDrillRuns(config: TidemarkConfig, deployment: Deployment): DrillRun[] {
  return deployment.sources.flatMap((s) => {
    const source = config.sources[s.name];
    const timeZone = source?.schedule?.timeZone ?? deployment.aws.timeZone;
    return SCHEDULED_DRILL_KINDS.map((kind) => {
      const cron = source?.drill?.schedule?.[kind] ?? DRILL_SCHEDULE_DEFAULTS[kind];
      return { source: s.name, kind, cron, expression: toEventBridgeCron(cron), timeZone };
    });
  });
}

export interface DrillSchedulesProps {
  /** The drill state machine (input: `{ source, kind }`). */
  readonly stateMachine: sfn.IStateMachine;
  readonly runs: readonly DrillRun[];
}

/**
 * EventBridge Scheduler schedules that start the drill state machine, one per source and kind
 * (a drill restores one source into its own throwaway instance, so they are not batched like
 * backups). Like BackupSchedules: own time zone, no flexible window, a dead-letter queue.
 */
export class DrillSchedules extends Construct {
  readonly scheduleGroup: scheduler.ScheduleGroup;
  /** Schedules by `<source>/<kind>`. */
  readonly schedules: ReadonlyMap<string, scheduler.Schedule>;
  readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: DrillSchedulesProps) {
    super(scope, id);
    const keys = props.runs.map((r) => `${r.source}/${r.kind}`);
    const duplicate = keys.find((k, i) => keys.indexOf(k) !== i);
    if (duplicate) throw new Error(`DrillSchedules ${this.node.path}: two schedules for ${duplicate}`);

    this.scheduleGroup = new scheduler.ScheduleGroup(this, 'Group', { removalPolicy: RemovalPolicy.DESTROY });
    this.deadLetterQueue = deadLetterQueue(this, 'the drill schedules (EventBridge Scheduler DeadLetterConfig)');

    const schedules = new Map<string, scheduler.Schedule>();
    for (const run of props.runs) {
      const target = new targets.StepFunctionsStartExecution(props.stateMachine, {
        input: scheduler.ScheduleTargetInput.fromObject({ source: run.source, kind: run.kind }),
        deadLetterQueue: this.deadLetterQueue,
        maxEventAge: Duration.hours(1),
        retryAttempts: 20,
      });
      const key = `${run.source}/${run.kind}`;
      schedules.set(
        key,
        new scheduler.Schedule(this, `${run.source}-${run.kind}`, {
          schedule: scheduler.ScheduleExpression.expression(run.expression, TimeZone.of(run.timeZone)),
          target,
          scheduleGroup: this.scheduleGroup,
          timeWindow: scheduler.TimeWindow.off(),
          description: `Tidemark ${run.kind} drill of ${run.source} at "${run.cron}" ${run.timeZone}`.slice(0, 512),
        }),
      );
    }
    this.schedules = schedules;
  }
}
