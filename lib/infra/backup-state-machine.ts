import { Duration, Names, Token } from 'aws-cdk-lib';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { acknowledgeRequiredWildcards, type RequiredWildcard } from './nag-finding';

/**
 * State names of the backup state machine. They are a contract: the local runner, its tests and
 * anyone reading an execution history refer to them, so they change only deliberately.
 */
export const BackupStateNames = {
  /** Map over `$.runs`: one iteration per source. */
  eachSource: 'Back up each source',
  /** ECS RunTask (.sync) of the worker: `backup <source> --type <type>`. */
  runWorker: 'Run backup worker',
  /** record-result Lambda with outcome `succeeded`. */
  recordSuccess: 'Record backup success',
  /** Iteration end: `{ source, type, ok: true }`. */
  sourceSucceeded: 'Source backed up',
  /** record-result Lambda with outcome `failed` (emits the BackupFailed metric). */
  recordFailure: 'Record backup failure',
  /** SNS notification to the operators. */
  notifyFailure: 'Notify backup failure',
  /** Iteration end: `{ source, type, ok: false, error }`. */
  sourceFailed: 'Source failed',
  /** Pass after the Map: does any iteration say ok=false? */
  checkResults: 'Check results',
  /** Choice on that answer. */
  anyFailed: 'Any source failed',
  /** Succeed: every source was backed up. */
  allSucceeded: 'All sources backed up',
  /** Fail with {@link BACKUPS_FAILED_ERROR}. */
  backupsFailed: 'Backups failed',
} as const;

/** Error name of a backup execution in which at least one source failed. */
export const BACKUPS_FAILED_ERROR = 'Tidemark.BackupsFailed';

/** The errors ECS RunTask raises for faults of the service itself (worth retrying with backoff). */
export const ECS_TRANSIENT_ERRORS = ['ECS.AmazonECSException', 'ECS.ServerException', 'ECS.ThrottlingException', 'ECS.SdkClientException'] as const;

export interface BackupStateMachineProps {
  /** Cluster the workers run in. */
  readonly cluster: ecs.ICluster;
  /** Fargate task definition of the worker. */
  readonly taskDefinition: ecs.TaskDefinition;
  /** The worker container in `taskDefinition`; its command is overridden per source. */
  readonly container: ecs.ContainerDefinition;
  /** Security groups of the worker task. */
  readonly securityGroups: ec2.ISecurityGroup[];
  /** Subnets of the worker task (private: the task never gets a public IP). */
  readonly subnets: ec2.SubnetSelection;
  /** The record-result Lambda (event contract in docs/aws-architecture.md). */
  readonly recordResult: lambda.IFunction;
  /** Topic that hears about every failed source. */
  readonly topic: sns.ITopic;
  /**
   * Sources backed up at the same time, at most.
   *
   * @default 4
   */
  readonly maxConcurrency?: number;
  /**
   * Longest one worker task may run before it is counted as failed.
   *
   * @default Duration.hours(6)
   */
  readonly taskTimeout?: Duration;
}

/**
 * The backup state machine: `{ "runs": [{ "source", "type" }] }` → one Fargate worker per run
 * (`backup <source> --type <type>`), each result recorded by the record-result Lambda, each failure
 * also sent to the topic. A failing source never stops the others; the execution fails at the end
 * (`Tidemark.BackupsFailed`) when any of them failed, so its history shows red.
 *
 * JSONPath only (no JSONata, Assign, Arguments or Distributed Map): the same definition runs
 * locally on aws-local-stepfunctions, which supports none of those.
 */
export class BackupStateMachine extends Construct {
  readonly stateMachine: sfn.StateMachine;
  /** Execution log group (level ALL, without payloads). */
  readonly logGroup: logs.ILogGroup;

  constructor(scope: Construct, id: string, props: BackupStateMachineProps) {
    super(scope, id);
    const maxConcurrency = props.maxConcurrency ?? 4;
    if (!Number.isInteger(maxConcurrency) || maxConcurrency < 1) {
      throw new Error(`BackupStateMachine ${this.node.path}: maxConcurrency must be an integer of at least 1, got ${maxConcurrency}`);
    }
    const taskTimeout = props.taskTimeout ?? Duration.hours(6);
    if (!Token.isUnresolved(taskTimeout.toSeconds()) && taskTimeout.toSeconds() < 60) {
      throw new Error(`BackupStateMachine ${this.node.path}: taskTimeout must be at least 1 minute, got ${taskTimeout.toHumanString()}`);
    }

    const definition = sfn.Chain.start(this.eachSource(props, maxConcurrency, taskTimeout))
      .next(
        new sfn.Pass(this, BackupStateNames.checkResults, {
          comment: 'ArrayContains over the projected ok flags: the documented way to spot a failed Map iteration in JSONPath',
          parameters: {
            'results.$': '$.results',
            'anyFailed.$': 'States.ArrayContains($.oks, false)',
          },
        }),
      )
      .next(
        new sfn.Choice(this, BackupStateNames.anyFailed)
          .when(
            sfn.Condition.booleanEquals('$.anyFailed', true),
            new sfn.Fail(this, BackupStateNames.backupsFailed, {
              error: BACKUPS_FAILED_ERROR,
              cause: `At least one source failed to back up; each was recorded and notified. The output of "${BackupStateNames.eachSource}" lists every source with ok and error.`,
            }),
          )
          .otherwise(new sfn.Succeed(this, BackupStateNames.allSucceeded)),
      );

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      // The vendedlogs prefix keeps CloudWatch Logs' resource policy (5,120 characters per
      // account) from filling up as state machines are added.
      logGroupName: `/aws/vendedlogs/states/${Names.uniqueResourceName(this, { maxLength: 200, separator: '-' })}`,
      retention: logs.RetentionDays.ONE_YEAR,
    });

    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      definitionBody: sfn.DefinitionBody.fromChainable(definition),
      stateMachineType: sfn.StateMachineType.STANDARD,
      comment: 'Tidemark backups: one Fargate worker per source, results recorded, failures notified',
      tracingEnabled: true,
      logs: {
        destination: this.logGroup,
        level: sfn.LogLevel.ALL,
        // Payloads (error causes included) stay out of the logs (DESIGN.md §6); the execution
        // history still shows them to whoever may read it.
        includeExecutionData: false,
      },
    });

    acknowledgeRequiredWildcards(this.stateMachine.role, REQUIRED_WILDCARDS);
  }

  /** Executions that failed (any source failed, or the machine itself did). */
  metricFailed(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.stateMachine.metricFailed(props);
  }

  /** Executions in which every source was backed up. */
  metricSucceeded(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.stateMachine.metricSucceeded(props);
  }

  private eachSource(props: BackupStateMachineProps, maxConcurrency: number, taskTimeout: Duration): sfn.Map {
    const names = BackupStateNames;

    const runWorker = new tasks.EcsRunTask(this, names.runWorker, {
      integrationPattern: sfn.IntegrationPattern.RUN_JOB,
      cluster: props.cluster,
      taskDefinition: props.taskDefinition,
      launchTarget: new tasks.EcsFargateLaunchTarget({ platformVersion: ecs.FargatePlatformVersion.LATEST }),
      subnets: props.subnets,
      securityGroups: props.securityGroups,
      assignPublicIp: false,
      containerOverrides: [
        {
          containerDefinition: props.container,
          // The worker's argv (docs/aws-architecture.md): backup <source> --type <type>.
          command: sfn.JsonPath.listAt(sfn.JsonPath.array('backup', sfn.JsonPath.stringAt('$.source'), '--type', sfn.JsonPath.stringAt('$.type'))),
        },
      ],
      taskTimeout: sfn.Timeout.duration(taskTimeout),
      // The DescribeTasks result is large and says nothing the record-result Lambda needs.
      resultPath: sfn.JsonPath.DISCARD,
    });
    // Faults of ECS itself (API errors, throttling, no Fargate capacity right now) clear up on
    // their own: retry them patiently, with jitter so sources that failed together do not retry
    // together. Client errors (bad parameters, access denied) are configuration and are not retried.
    runWorker.addRetry({
      errors: [...ECS_TRANSIENT_ERRORS],
      interval: Duration.seconds(30),
      backoffRate: 2,
      maxDelay: Duration.minutes(5),
      maxAttempts: 5,
      jitterStrategy: sfn.JitterType.FULL,
    });
    // The worker exited non-zero (or its task stopped before it ran: image pull, secret fetch).
    // A dropped connection or a database restarting is common and passes in minutes, so try once
    // more after a pause; a persistent failure (wrong password, disk full) must not loop, and the
    // next schedule is the real retry. States.TaskFailed does not match States.Timeout, which is
    // deliberately not retried: a worker that ran into the task timeout would most likely do so
    // again, holding the database for another full window.
    runWorker.addRetry({
      errors: [sfn.Errors.TASKS_FAILED],
      interval: Duration.minutes(3),
      maxAttempts: 1,
    });

    const sourceSucceeded = new sfn.Pass(this, names.sourceSucceeded, {
      parameters: { 'source.$': '$.source', 'type.$': '$.type', ok: true },
    });
    const sourceFailed = new sfn.Pass(this, names.sourceFailed, {
      parameters: { 'source.$': '$.source', 'type.$': '$.type', ok: false, 'error.$': '$.error.Error' },
    });

    const notifyFailure = new tasks.SnsPublish(this, names.notifyFailure, {
      topic: props.topic,
      // ≤ 100 characters for any valid source name (63) and type; SNS rejects longer subjects.
      subject: sfn.JsonPath.format('Tidemark: {} backup of {} failed', sfn.JsonPath.stringAt('$.type'), sfn.JsonPath.stringAt('$.source')),
      // Error and Cause come from Step Functions (ECS task description, Lambda error): no
      // passwords or keys are ever in them, since the worker receives those as ECS secrets.
      message: sfn.TaskInput.fromJsonPathAt(
        sfn.JsonPath.format(
          'Tidemark could not complete the {} backup of source {}. Error: {}. Cause: {}. Execution: {}. The other sources of this run were not affected. Fix the cause, then start the state machine again for this source or wait for its next schedule.',
          sfn.JsonPath.stringAt('$.type'),
          sfn.JsonPath.stringAt('$.source'),
          sfn.JsonPath.stringAt('$.error.Error'),
          sfn.JsonPath.stringAt('$.error.Cause'),
          sfn.JsonPath.executionId,
        ),
      ),
      resultPath: sfn.JsonPath.DISCARD,
    });
    notifyFailure.addRetry({
      errors: ['SNS.InternalErrorException', 'SNS.ThrottledException', 'SNS.SdkClientException'],
      interval: Duration.seconds(5),
      backoffRate: 2,
      maxAttempts: 4,
    });
    // The source has failed either way; a lost notification must not turn into a lost item.
    notifyFailure.addCatch(sourceFailed, { errors: [sfn.Errors.ALL], resultPath: '$.notifyError' });
    notifyFailure.next(sourceFailed);

    const recordFailure = new tasks.LambdaInvoke(this, names.recordFailure, {
      lambdaFunction: props.recordResult,
      payload: sfn.TaskInput.fromObject({
        source: sfn.JsonPath.stringAt('$.source'),
        type: sfn.JsonPath.stringAt('$.type'),
        outcome: 'failed',
        error: { Error: sfn.JsonPath.stringAt('$.error.Error'), Cause: sfn.JsonPath.stringAt('$.error.Cause') },
      }),
      resultPath: sfn.JsonPath.DISCARD,
      retryOnServiceExceptions: true,
    });
    // Notify even when the metric could not be recorded: the notification is the louder signal.
    recordFailure.addCatch(notifyFailure, { errors: [sfn.Errors.ALL], resultPath: '$.recordError' });
    recordFailure.next(notifyFailure);

    const recordSuccess = new tasks.LambdaInvoke(this, names.recordSuccess, {
      lambdaFunction: props.recordResult,
      payload: sfn.TaskInput.fromObject({
        source: sfn.JsonPath.stringAt('$.source'),
        type: sfn.JsonPath.stringAt('$.type'),
        outcome: 'succeeded',
      }),
      resultPath: sfn.JsonPath.DISCARD,
      retryOnServiceExceptions: true,
    });
    // The backup is stored, but its success metric is not: say so loudly without recording a
    // BackupFailed for a backup that did not fail.
    recordSuccess.addCatch(notifyFailure, { errors: [sfn.Errors.ALL], resultPath: '$.error' });
    recordSuccess.next(sourceSucceeded);

    runWorker.addCatch(recordFailure, { errors: [sfn.Errors.ALL], resultPath: '$.error' });
    runWorker.next(recordSuccess);

    return new sfn.Map(this, names.eachSource, {
      itemsPath: sfn.JsonPath.stringAt('$.runs'),
      maxConcurrency,
      // Only what an iteration needs: an operator-started execution may carry more.
      itemSelector: {
        source: sfn.JsonPath.stringAt('$$.Map.Item.Value.source'),
        type: sfn.JsonPath.stringAt('$$.Map.Item.Value.type'),
      },
      resultSelector: {
        results: sfn.JsonPath.entirePayload,
        oks: sfn.JsonPath.listAt('$[*].ok'),
      },
    }).itemProcessor(runWorker);
  }
}

/** Statements of the state machine's policy whose wildcard resources are required, and why. */
const REQUIRED_WILDCARDS: readonly RequiredWildcard[] = [
  {
    actions: ['ecs:RunTask'],
    reason: 'RunTask names the worker task definition by family, so it may run any revision of that one family (the latest ACTIVE one is used).',
  },
  {
    actions: ['ecs:StopTask', 'ecs:DescribeTasks'],
    reason: 'The .sync integration watches and stops the task it started; task ARNs exist only at run time.',
  },
  {
    actions: ['lambda:InvokeFunction'],
    reason: '<record-result ARN>:* covers the versions and aliases of that one function (added by LambdaInvoke).',
  },
  {
    actions: ['logs:CreateLogDelivery', 'logs:GetLogDelivery', 'logs:UpdateLogDelivery', 'logs:DeleteLogDelivery', 'logs:ListLogDeliveries', 'logs:PutResourcePolicy', 'logs:DescribeResourcePolicies', 'logs:DescribeLogGroups'],
    reason: 'CloudWatch Logs vended-log delivery APIs support no resource-level permissions (required for execution logging).',
  },
  {
    actions: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords', 'xray:GetSamplingRules', 'xray:GetSamplingTargets'],
    reason: 'X-Ray tracing APIs support no resource-level permissions (required for tracing).',
  },
];
