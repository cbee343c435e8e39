import { ArnFormat, Duration, Names, Stack, Token, Validations } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { ECS_TRANSIENT_ERRORS } from './backup-state-machine';
import { acknowledgeRequiredWildcards, type RequiredWildcard } from './nag-finding';

/**
 * State names of the drill state machine: a contract like BackupStateNames (the local runner, the
 * tests and whoever reads an execution history refer to them).
 */
export const DrillStateNames = {
  /** drill-target Lambda: drill id, target, start time, path, worker argv → `$.drill`. */
  chooseTarget: 'Choose drill target',
  /** Pass: the target was refused (outside the window, no backup): record it as a failed drill. */
  targetRefused: 'Drill target refused',
  /** Choice on `$.drill.mode`: verify, task (self-managed), rds. */
  whichDrill: 'Which drill',
  /** ECS RunTask (.sync): `verify <source>`. */
  runVerify: 'Run verify worker',
  /** ECS RunTask (.sync): `drill <source> --id … --target … --kind … --started-at …`. */
  runDrill: 'Run drill worker',
  /** ECS RunTask (.sync): `drill-cleanup <source> --id …`; every self-managed path ends here. */
  cleanUp: 'Clean up drill task',
  /** Choice on `$.drill.rds.restore`. */
  howToRestore: 'How to restore RDS',
  restoreLatest: 'Restore RDS to latest point',
  restorePointInTime: 'Restore RDS to point in time',
  restoreSnapshot: 'Restore RDS from snapshot',
  /** Pass: the wait counter starts at 0. */
  startWaiting: 'Start waiting for RDS',
  waitForInstance: 'Wait for RDS instance',
  describeInstance: 'Describe RDS instance',
  instanceReady: 'RDS instance available',
  /** Pass: one more wait, counted, so the loop always ends. */
  countWait: 'Count RDS wait',
  /** Pass: `$.error` says the instance never became available (failed state or too long). */
  instanceNotReady: 'RDS instance not available',
  /** Pass: `$.endpoint` = address:port. */
  instanceEndpoint: 'RDS instance endpoint',
  /** ECS RunTask (.sync): `drill-check <source> --id … --endpoint host:port …`. */
  runChecks: 'Run drill checks',
  /** DeleteDBInstance without a final snapshot; every RDS path ends here. */
  deleteInstance: 'Delete RDS instance',
  /** drill-record Lambda → `$.outcome`. */
  record: 'Record drill',
  /** Choice on `$.outcome.ok`. */
  passed: 'Drill passed',
  notifyFailure: 'Notify drill failure',
  succeeded: 'Drill succeeded',
  /** Fail with {@link DRILL_FAILED_ERROR}. */
  failed: 'Drill failed',
} as const;

/** Error name of a drill execution that failed (checks, restore, teardown or recording). */
export const DRILL_FAILED_ERROR = 'Tidemark.DrillFailed';
/** Error of the RDS wait loop giving up (or the instance going to a failed state). */
export const RDS_NOT_AVAILABLE_ERROR = 'Tidemark.RdsInstanceNotAvailable';

/** Instances the drill creates are named with this prefix; the role may delete no other. */
export const DRILL_INSTANCE_PREFIX = 'tidemark-drill-';
/** Tag every drill instance carries (value: the drill id). */
export const DRILL_INSTANCE_TAG = 'tidemark:drill';
/** The EBS scratch volume of large drills: its name in the task definition and where it is mounted. */
export const SCRATCH_VOLUME_NAME = 'drill-scratch';
export const SCRATCH_MOUNT_PATH = '/var/lib/tidemark';

/** RDS statuses from which an instance will not become available by itself. */
const RDS_FAILED_STATUSES = ['failed', 'incompatible-restore', 'incompatible-parameters', 'incompatible-network', 'storage-full', 'inaccessible-encryption-credentials', 'deleting'];
/** Errors of the RDS API worth retrying (Step Functions names them Rds.<Java SDK v2 exception>). */
const RDS_TRANSIENT_ERRORS = ['Rds.RdsException', 'Rds.SdkClientException', 'Rds.ThrottlingException'];

export interface DrillStateMachineProps {
  readonly cluster: ecs.ICluster;
  /** The worker task definition: drills, checks and teardown run the worker image. */
  readonly taskDefinition: ecs.TaskDefinition;
  readonly container: ecs.ContainerDefinition;
  readonly securityGroups: ec2.ISecurityGroup[];
  readonly subnets: ec2.SubnetSelection;
  /** The drill-target Lambda (DrillFunctions.chooseTarget). */
  readonly chooseTarget: lambda.IFunction;
  /** The drill-record Lambda (DrillFunctions.record). */
  readonly record: lambda.IFunction;
  /** Topic that hears about every failed drill. */
  readonly topic: sns.ITopic;
  /**
   * Identifiers of the RDS instances drilled by restoring them (RDS sources).
   * @default - none: no RDS permissions are granted
   */
  readonly rdsInstances?: readonly string[];
  /**
   * Longest a drill task (restore + checks) may run; a task past it is stopped and torn down.
   * @default Duration.hours(6)
   */
  readonly taskTimeout?: Duration;
  /**
   * Disk for restores larger than the worker's ephemeral storage (Fargate: at most 200 GiB): an
   * ECS-managed EBS volume of this size is attached to every self-managed drill task at RunTask and
   * mounted where the drill keeps its scratch (TIDEMARK_SPOOL). ECS deletes it with the task.
   * @default - none: drills restore into the task's ephemeral storage
   */
  readonly scratchVolumeGiB?: number;
  /** Pause between two looks at a restoring RDS instance. @default Duration.minutes(1) */
  readonly rdsPollInterval?: Duration;
  /** Looks at a restoring RDS instance before the drill gives up (and deletes it). @default 180 */
  readonly rdsMaxPolls?: number;
}

/**
 * The drill state machine: `{ source, kind: verify|restore|full|manual, at?: latest|random|ISO }`.
 * It chooses the point, restores it into a throwaway instance (a Fargate worker's own storage for
 * self-managed sources, a new RDS instance for RDS sources), runs the checks, records the report
 * and its metrics, notifies on failure — and ALWAYS tears down: every state after provisioning
 * catches every error into the teardown state, which runs on success too.
 *
 * No execution timeout on purpose: a state machine that times out stops where it is, skipping the
 * teardown. Each task has its own timeout instead (States.Timeout is caught like any error), and
 * the RDS wait loop is counted.
 *
 * JSONPath only, like the backup machine, so the same definition runs on aws-local-stepfunctions.
 */
export class DrillStateMachine extends Construct {
  readonly stateMachine: sfn.StateMachine;
  readonly logGroup: logs.ILogGroup;
  /** The ECS infrastructure role that creates the drill's EBS volume, when there is one. */
  readonly scratchVolumeRole?: iam.Role;
  private readonly scratchVolume?: { sizeGiB: number; role: iam.Role };

  constructor(scope: Construct, id: string, props: DrillStateMachineProps) {
    super(scope, id);
    const taskTimeout = props.taskTimeout ?? Duration.hours(6);
    if (!Token.isUnresolved(taskTimeout.toSeconds()) && taskTimeout.toSeconds() < 60) {
      throw new Error(`DrillStateMachine ${this.node.path}: taskTimeout must be at least 1 minute, got ${taskTimeout.toHumanString()}`);
    }
    const maxPolls = props.rdsMaxPolls ?? 180;
    if (!Number.isInteger(maxPolls) || maxPolls < 1) throw new Error(`DrillStateMachine ${this.node.path}: rdsMaxPolls must be a positive integer, got ${maxPolls}`);
    for (const instance of props.rdsInstances ?? []) {
      if (instance.startsWith(DRILL_INSTANCE_PREFIX)) {
        throw new Error(`DrillStateMachine ${this.node.path}: RDS source instance '${instance}' starts with ${DRILL_INSTANCE_PREFIX}, the prefix reserved for throwaway drill instances`);
      }
    }

    if (props.scratchVolumeGiB !== undefined && (!Number.isInteger(props.scratchVolumeGiB) || props.scratchVolumeGiB < 1 || props.scratchVolumeGiB > 16384)) {
      throw new Error(`DrillStateMachine ${this.node.path}: scratchVolumeGiB must be a whole number of GiB from 1 to 16384 (an EBS gp3 volume), got ${props.scratchVolumeGiB}`);
    }
    this.scratchVolume = props.scratchVolumeGiB === undefined ? undefined : this.addScratchVolume(props, props.scratchVolumeGiB);
    const definition = this.definition(props, taskTimeout, maxPolls);
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `/aws/vendedlogs/states/${Names.uniqueResourceName(this, { maxLength: 200, separator: '-' })}`,
      retention: logs.RetentionDays.ONE_YEAR,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      definitionBody: sfn.DefinitionBody.fromChainable(definition),
      stateMachineType: sfn.StateMachineType.STANDARD,
      comment: 'Tidemark restore drills: choose a point, restore into a throwaway instance, check, record, always tear down',
      tracingEnabled: true,
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
    });
    this.grantRds(props.rdsInstances ?? []);
    if (this.scratchVolume) {
      (this as { scratchVolumeRole?: iam.Role }).scratchVolumeRole = this.scratchVolume.role;
      this.scratchVolume.role.grantPassRole(this.stateMachine.role);
    }
    acknowledgeRequiredWildcards(this.stateMachine.role, REQUIRED_WILDCARDS);
  }

  private definition(props: DrillStateMachineProps, taskTimeout: Duration, maxPolls: number): sfn.IChainable {
    const S = DrillStateNames;

    // --- the end: record, verdict, notification -------------------------------------------------
    const failed = new sfn.Fail(this, S.failed, {
      error: DRILL_FAILED_ERROR,
      cause: `The drill failed; the output of "${S.record}" (and the report under <source>/drills/) says why.`,
    });
    const notify = new tasks.SnsPublish(this, S.notifyFailure, {
      topic: props.topic,
      subject: sfn.JsonPath.format('Tidemark: {} drill of {} failed', sfn.JsonPath.stringAt('$.kind'), sfn.JsonPath.stringAt('$.source')),
      message: sfn.TaskInput.fromJsonPathAt(
        sfn.JsonPath.format(
          'The {} drill of source {} failed: its backups may not restore as promised. Outcome: {}. Execution: {}. The report is under <source>/drills/ in the repository; run `tidemark drill {}` to try it yourself.',
          sfn.JsonPath.stringAt('$.kind'),
          sfn.JsonPath.stringAt('$.source'),
          sfn.JsonPath.jsonToString(sfn.JsonPath.objectAt('$.outcome')),
          sfn.JsonPath.executionId,
          sfn.JsonPath.stringAt('$.source'),
        ),
      ),
      resultPath: sfn.JsonPath.DISCARD,
    });
    notify.addRetry({ errors: ['SNS.InternalErrorException', 'SNS.ThrottledException', 'SNS.SdkClientException'], interval: Duration.seconds(5), backoffRate: 2, maxAttempts: 4 });
    // The drill failed either way; a lost notification must not hide that the execution failed.
    notify.addCatch(failed, { errors: [sfn.Errors.ALL], resultPath: '$.notifyError' });
    notify.next(failed);

    const record = new tasks.LambdaInvoke(this, S.record, {
      lambdaFunction: props.record,
      payload: sfn.TaskInput.fromObject({
        source: sfn.JsonPath.stringAt('$.source'),
        kind: sfn.JsonPath.stringAt('$.kind'),
        drill: sfn.JsonPath.objectAt('$.drill'),
        error: sfn.JsonPath.objectAt('$.error'),
        cleanupError: sfn.JsonPath.objectAt('$.cleanupError'),
      }),
      payloadResponseOnly: true,
      resultPath: '$.outcome',
      retryOnServiceExceptions: true,
    });
    // Recording failed (repository unreachable): the drill's outcome is unknown, which is a failure.
    record.addCatch(notify, { errors: [sfn.Errors.ALL], resultPath: '$.outcome' });
    record.next(
      new sfn.Choice(this, S.passed)
        .when(sfn.Condition.booleanEquals('$.outcome.ok', true), new sfn.Succeed(this, S.succeeded))
        .otherwise(notify),
    );

    // --- teardown ----------------------------------------------------------------------------------
    const cleanUp = this.runWorker(props, S.cleanUp, sfn.JsonPath.listAt('$.drill.cleanupCommand'), Duration.minutes(30));
    cleanUp.addRetry({ errors: [...ECS_TRANSIENT_ERRORS], interval: Duration.seconds(30), backoffRate: 2, maxDelay: Duration.minutes(5), maxAttempts: 5, jitterStrategy: sfn.JitterType.FULL });
    // Teardown is idempotent: try again before reporting a leak.
    cleanUp.addRetry({ errors: [sfn.Errors.TASKS_FAILED, sfn.Errors.TIMEOUT], interval: Duration.minutes(1), maxAttempts: 2 });
    cleanUp.addCatch(record, { errors: [sfn.Errors.ALL], resultPath: '$.cleanupError' });
    cleanUp.next(record);

    const deleteInstance = new tasks.CallAwsService(this, S.deleteInstance, {
      service: 'rds',
      action: 'deleteDBInstance',
      iamAction: 'rds:DeleteDBInstance',
      // Granted in grantRds() with the name prefix and the tag condition.
      iamResources: [this.drillInstanceArn()],
      parameters: {
        DbInstanceIdentifier: sfn.JsonPath.stringAt('$.drill.rds.instance'),
        SkipFinalSnapshot: true,
        DeleteAutomatedBackups: true,
      },
      resultPath: sfn.JsonPath.DISCARD,
    });
    deleteInstance.addRetry({ errors: RDS_TRANSIENT_ERRORS, interval: Duration.seconds(30), backoffRate: 2, maxAttempts: 6 });
    // Still being created or modified: RDS refuses the delete until that ends; keep asking.
    deleteInstance.addRetry({ errors: ['Rds.InvalidDbInstanceStateException'], interval: Duration.minutes(2), backoffRate: 1.5, maxDelay: Duration.minutes(10), maxAttempts: 20 });
    // The restore never created it: nothing to delete, nothing leaked.
    deleteInstance.addCatch(record, { errors: ['Rds.DbInstanceNotFoundException'], resultPath: '$.deleteResult' });
    deleteInstance.addCatch(record, { errors: [sfn.Errors.ALL], resultPath: '$.cleanupError' });
    deleteInstance.next(record);

    // --- verify ------------------------------------------------------------------------------------
    const runVerify = this.runWorker(props, S.runVerify, sfn.JsonPath.listAt('$.drill.workerCommand'), taskTimeout);
    runVerify.addRetry({ errors: [...ECS_TRANSIENT_ERRORS], interval: Duration.seconds(30), backoffRate: 2, maxDelay: Duration.minutes(5), maxAttempts: 5, jitterStrategy: sfn.JitterType.FULL });
    runVerify.addCatch(record, { errors: [sfn.Errors.ALL], resultPath: '$.error' });
    runVerify.next(record);

    // --- self-managed: one task restores into its own storage, checks and reports ------------------
    const runDrill = this.runWorker(props, S.runDrill, sfn.JsonPath.listAt('$.drill.workerCommand'), taskTimeout, this.scratchVolume);
    runDrill.addRetry({ errors: [...ECS_TRANSIENT_ERRORS], interval: Duration.seconds(30), backoffRate: 2, maxDelay: Duration.minutes(5), maxAttempts: 5, jitterStrategy: sfn.JitterType.FULL });
    // No retry of a failed drill: a drill that fails is the finding; RTO must not hide a retry.
    runDrill.addCatch(cleanUp, { errors: [sfn.Errors.ALL], resultPath: '$.error' });
    runDrill.next(cleanUp);

    // --- RDS: restore a new instance, wait, check from a task, delete ------------------------------
    const runChecks = this.runWorker(
      props,
      S.runChecks,
      sfn.JsonPath.listAt(
        sfn.JsonPath.array(
          'drill-check',
          sfn.JsonPath.stringAt('$.source'),
          '--id',
          sfn.JsonPath.stringAt('$.drill.id'),
          '--endpoint',
          sfn.JsonPath.stringAt('$.endpoint.value'),
          '--target',
          sfn.JsonPath.stringAt('$.drill.target'),
          '--kind',
          sfn.JsonPath.stringAt('$.drill.kind'),
          '--started-at',
          sfn.JsonPath.stringAt('$.drill.startedAt'),
        ),
      ),
      taskTimeout,
    );
    runChecks.addRetry({ errors: [...ECS_TRANSIENT_ERRORS], interval: Duration.seconds(30), backoffRate: 2, maxDelay: Duration.minutes(5), maxAttempts: 5, jitterStrategy: sfn.JitterType.FULL });
    runChecks.addCatch(deleteInstance, { errors: [sfn.Errors.ALL], resultPath: '$.error' });
    runChecks.next(deleteInstance);

    const endpoint = new sfn.Pass(this, S.instanceEndpoint, {
      parameters: { 'value.$': "States.Format('{}:{}', $.instance.Endpoint.Address, $.instance.Endpoint.Port)" },
      resultPath: '$.endpoint',
    });
    const notReady = new sfn.Pass(this, S.instanceNotReady, {
      parameters: {
        Error: RDS_NOT_AVAILABLE_ERROR,
        'Cause.$': "States.Format('RDS instance {} is {} after {} looks; giving up and deleting it', $.drill.rds.instance, $.instance.DbInstanceStatus, $.wait.count)",
      },
      resultPath: '$.error',
    });
    notReady.next(deleteInstance);

    const wait = new sfn.Wait(this, S.waitForInstance, { time: sfn.WaitTime.duration(props.rdsPollInterval ?? Duration.minutes(1)) });
    const describe = new tasks.CallAwsService(this, S.describeInstance, {
      service: 'rds',
      action: 'describeDBInstances',
      iamAction: 'rds:DescribeDBInstances',
      iamResources: [this.drillInstanceArn()],
      parameters: { DbInstanceIdentifier: sfn.JsonPath.stringAt('$.drill.rds.instance') },
      resultSelector: { 'instance.$': '$.DbInstances[0]' },
      resultPath: '$.described',
    });
    describe.addRetry({ errors: RDS_TRANSIENT_ERRORS, interval: Duration.seconds(10), backoffRate: 2, maxAttempts: 5 });
    describe.addCatch(deleteInstance, { errors: [sfn.Errors.ALL], resultPath: '$.error' });
    const lift = new sfn.Pass(this, `${S.describeInstance} result`, { inputPath: '$.described.instance', resultPath: '$.instance' });
    const countWait = new sfn.Pass(this, S.countWait, {
      parameters: { 'count.$': 'States.MathAdd($.wait.count, 1)' },
      resultPath: '$.wait',
    });
    const ready = new sfn.Choice(this, S.instanceReady)
      .when(sfn.Condition.stringEquals('$.instance.DbInstanceStatus', 'available'), endpoint)
      .when(sfn.Condition.or(...RDS_FAILED_STATUSES.map((s) => sfn.Condition.stringEquals('$.instance.DbInstanceStatus', s))), notReady)
      .when(sfn.Condition.numberGreaterThanEquals('$.wait.count', maxPolls), notReady)
      .otherwise(countWait);
    countWait.next(wait);
    wait.next(describe);
    describe.next(lift);
    lift.next(ready);
    endpoint.next(runChecks);
    const startWaiting = new sfn.Pass(this, S.startWaiting, { result: sfn.Result.fromObject({ count: 0 }), resultPath: '$.wait' });
    startWaiting.next(wait);

    const restoreTags = [
      { Key: DRILL_INSTANCE_TAG, Value: sfn.JsonPath.stringAt('$.drill.id') },
      { Key: 'tidemark:source', Value: sfn.JsonPath.stringAt('$.source') },
    ];
    const restoreCommon = {
      TargetDbInstanceIdentifier: sfn.JsonPath.stringAt('$.drill.rds.instance'),
      VpcSecurityGroupIds: sfn.JsonPath.listAt('$.drill.rds.securityGroupIds'),
      PubliclyAccessible: false,
      MultiAZ: false,
      DeletionProtection: false,
      Tags: restoreTags,
    };
    const restores = [
      this.restore(S.restoreLatest, 'restoreDBInstanceToPointInTime', {
        SourceDbInstanceIdentifier: sfn.JsonPath.stringAt('$.drill.rds.sourceInstance'),
        UseLatestRestorableTime: true,
        ...restoreCommon,
      }),
      this.restore(S.restorePointInTime, 'restoreDBInstanceToPointInTime', {
        SourceDbInstanceIdentifier: sfn.JsonPath.stringAt('$.drill.rds.sourceInstance'),
        RestoreTime: sfn.JsonPath.stringAt('$.drill.rds.restoreTime'),
        ...restoreCommon,
      }),
      this.restore(S.restoreSnapshot, 'restoreDBInstanceFromDBSnapshot', {
        DbSnapshotIdentifier: sfn.JsonPath.stringAt('$.drill.rds.snapshot'),
        DbInstanceIdentifier: sfn.JsonPath.stringAt('$.drill.rds.instance'),
        VpcSecurityGroupIds: sfn.JsonPath.listAt('$.drill.rds.securityGroupIds'),
        PubliclyAccessible: false,
        MultiAZ: false,
        DeletionProtection: false,
        Tags: restoreTags,
      }),
    ];
    for (const restore of restores) {
      restore.addRetry({ errors: RDS_TRANSIENT_ERRORS, interval: Duration.seconds(30), backoffRate: 2, maxAttempts: 5 });
      // The instance may exist even when the call reported an error: delete (or find nothing).
      restore.addCatch(deleteInstance, { errors: [sfn.Errors.ALL], resultPath: '$.error' });
      restore.next(startWaiting);
    }
    const howToRestore = new sfn.Choice(this, S.howToRestore)
      .when(sfn.Condition.stringEquals('$.drill.rds.restore', 'latest'), restores[0])
      .when(sfn.Condition.stringEquals('$.drill.rds.restore', 'point-in-time'), restores[1])
      .when(sfn.Condition.stringEquals('$.drill.rds.restore', 'snapshot'), restores[2])
      .otherwise(
        new sfn.Pass(this, 'Unknown RDS restore', {
          result: sfn.Result.fromObject({ Error: 'Tidemark.UnknownRestore', Cause: 'drill-target returned an RDS restore this state machine does not know' }),
          resultPath: '$.error',
        }).next(record),
      );

    // --- the start ----------------------------------------------------------------------------------
    const which = new sfn.Choice(this, S.whichDrill)
      .when(sfn.Condition.stringEquals('$.drill.mode', 'verify'), runVerify)
      .when(sfn.Condition.stringEquals('$.drill.mode', 'task'), runDrill)
      .when(sfn.Condition.stringEquals('$.drill.mode', 'rds'), howToRestore)
      .otherwise(
        new sfn.Pass(this, 'Unknown drill mode', {
          result: sfn.Result.fromObject({ Error: 'Tidemark.UnknownDrillMode', Cause: 'drill-target returned a mode this state machine does not know' }),
          resultPath: '$.error',
        }).next(record),
      );

    const chooseTarget = new tasks.LambdaInvoke(this, S.chooseTarget, {
      lambdaFunction: props.chooseTarget,
      payload: sfn.TaskInput.fromJsonPathAt('$'),
      // Only what the rest needs; `error` and `cleanupError` start empty (CDK drops nulls) so every
      // later state, and the record step, can refer to them whether or not something failed. The
      // result replaces the input (no ResultPath: aws-local-stepfunctions mistakes "$" for a key).
      resultSelector: {
        'source.$': '$.Payload.source',
        'kind.$': '$.Payload.kind',
        'drill.$': '$.Payload',
        error: {},
        cleanupError: {},
      },
      retryOnServiceExceptions: true,
    });
    const refused = new sfn.Pass(this, S.targetRefused, {
      parameters: { 'source.$': '$.source', 'kind.$': '$.kind', drill: { refused: true }, 'error.$': '$.error', cleanupError: {} },
    });
    refused.next(record);
    chooseTarget.addCatch(refused, { errors: [sfn.Errors.ALL], resultPath: '$.error' });
    return chooseTarget.next(which);
  }

  private runWorker(props: DrillStateMachineProps, name: string, command: string[], timeout: Duration, volume?: { sizeGiB: number; role: iam.Role }): tasks.EcsRunTask {
    return new DrillRunTask(this, name, {
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
          command,
          ...(volume ? { environment: [{ name: 'TIDEMARK_SPOOL', value: SCRATCH_MOUNT_PATH }] } : {}),
        },
      ],
      taskTimeout: sfn.Timeout.duration(timeout),
      resultPath: sfn.JsonPath.DISCARD,
      ...(volume
        ? {
            volumeConfigurations: [
              {
                Name: SCRATCH_VOLUME_NAME,
                ManagedEBSVolume: {
                  RoleArn: volume.role.roleArn,
                  SizeInGiB: volume.sizeGiB,
                  VolumeType: 'gp3',
                  FilesystemType: 'ext4',
                  Encrypted: true,
                  TagSpecifications: [{ ResourceType: 'volume', PropagateTags: 'TASK_DEFINITION', Tags: [{ Key: DRILL_INSTANCE_TAG, Value: 'scratch' }] }],
                },
              },
            ],
          }
        : {}),
    });
  }

  /**
   * The task definition gets a volume configured at launch and the worker container a mount point
   * on it; ECS creates the EBS volume through an infrastructure role of its own.
   */
  private addScratchVolume(props: DrillStateMachineProps, sizeGiB: number): { sizeGiB: number; role: iam.Role } {
    props.taskDefinition.addVolume({ name: SCRATCH_VOLUME_NAME, configuredAtLaunch: true });
    props.container.addMountPoints({ containerPath: SCRATCH_MOUNT_PATH, sourceVolume: SCRATCH_VOLUME_NAME, readOnly: false });
    const role = new iam.Role(this, 'ScratchVolumeRole', {
      assumedBy: new iam.ServicePrincipal('ecs.amazonaws.com'),
      description: 'Tidemark: ECS creates and deletes the EBS scratch volume of large restore drills',
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AmazonECSInfrastructureRolePolicyForVolumes')],
    });
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonECSInfrastructureRolePolicyForVolumes]',
      reason: 'The AWS-managed policy ECS documents for managed EBS volumes; it is scoped by ECS to the volumes it creates for tasks.',
    });
    return { sizeGiB, role };
  }

  private restore(name: string, action: string, parameters: Record<string, unknown>): tasks.CallAwsService {
    return new tasks.CallAwsService(this, name, {
      service: 'rds',
      action,
      iamAction: `rds:${action.charAt(0).toUpperCase()}${action.slice(1)}`,
      // Granted in grantRds(): the sources it may restore from and the throwaway names it may create.
      iamResources: [this.drillInstanceArn()],
      parameters,
      resultPath: sfn.JsonPath.DISCARD,
    });
  }

  private drillInstanceArn(): string {
    return drillInstancesArn(Stack.of(this));
  }

  /**
   * What the RDS path needs beyond the per-task grants: restore from the source instances (and
   * their snapshots) into the prefix, tagging the new instance, and deleting only instances that
   * both carry the prefix and the drill tag.
   */
  private grantRds(instances: readonly string[]): void {
    if (instances.length === 0) return;
    const stack = Stack.of(this);
    const arn = (resource: string, name: string) => stack.formatArn({ service: 'rds', resource, resourceName: name, arnFormat: ArnFormat.COLON_RESOURCE_NAME });
    const role = this.stateMachine.role;
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'RestoreDrillInstances',
        actions: ['rds:RestoreDBInstanceToPointInTime', 'rds:RestoreDBInstanceFromDBSnapshot'],
        resources: [
          ...instances.map((i) => arn('db', i)),
          arn('snapshot', 'tidemark-*'),
          this.drillInstanceArn(),
          arn('subgrp', '*'),
          arn('og', '*'),
          arn('pg', '*'),
        ],
      }),
    );
    role.addToPrincipalPolicy(new iam.PolicyStatement({ sid: 'TagDrillInstances', actions: ['rds:AddTagsToResource'], resources: [this.drillInstanceArn()] }));
    role.addToPrincipalPolicy(denyDeletingUntaggedInstances());
  }
}

/** Every throwaway drill instance of `stack`: the reserved name prefix, any suffix. */
export function drillInstancesArn(stack: Stack): string {
  return stack.formatArn({ service: 'rds', resource: 'db', resourceName: `${DRILL_INSTANCE_PREFIX}*`, arnFormat: ArnFormat.COLON_RESOURCE_NAME });
}

/** Whoever may delete drill instances deletes nothing without the drill tag, whatever its name. */
export function denyDeletingUntaggedInstances(): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: 'DeleteOnlyDrillInstances',
    effect: iam.Effect.DENY,
    actions: ['rds:DeleteDBInstance'],
    resources: ['*'],
    conditions: { Null: { [`rds:db-tag/${DRILL_INSTANCE_TAG}`]: 'true' } },
  });
}

const REQUIRED_WILDCARDS: readonly RequiredWildcard[] = [
  { actions: ['ecs:RunTask'], reason: 'RunTask names the worker task definition by family, so it may run any revision of that one family.' },
  { actions: ['ecs:StopTask', 'ecs:DescribeTasks'], reason: 'The .sync integration watches and stops the task it started; task ARNs exist only at run time.' },
  { actions: ['lambda:InvokeFunction'], reason: '<function ARN>:* covers the versions and aliases of the drill functions (added by LambdaInvoke).' },
  {
    actions: ['rds:DeleteDBInstance', 'rds:DescribeDBInstances', 'rds:RestoreDBInstanceToPointInTime', 'rds:RestoreDBInstanceFromDBSnapshot', 'rds:AddTagsToResource'],
    reason: `Throwaway drill instances are named at run time; the wildcard is only the suffix after the reserved ${DRILL_INSTANCE_PREFIX} prefix (source instances and tidemark- snapshots are named; subnet, option and parameter groups are whatever the source uses).`,
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

interface DrillRunTaskProps extends tasks.EcsRunTaskProps {
  /** RunTask `VolumeConfigurations` (ECS-managed EBS); EcsRunTask has no prop for them. */
  readonly volumeConfigurations?: Record<string, unknown>[];
}

/** EcsRunTask plus `VolumeConfigurations` and `StartedBy` (the drill id) in the rendered Parameters. */
class DrillRunTask extends tasks.EcsRunTask {
  private readonly volumeConfigurations?: Record<string, unknown>[];

  constructor(scope: Construct, id: string, props: DrillRunTaskProps) {
    const { volumeConfigurations, ...rest } = props;
    super(scope, id, rest);
    this.volumeConfigurations = volumeConfigurations;
  }

  protected override _renderTask(topLevelQueryLanguage?: sfn.QueryLanguage): unknown {
    const rendered = super._renderTask(topLevelQueryLanguage) as { Parameters?: Record<string, unknown> };
    if (this.volumeConfigurations && rendered.Parameters) rendered.Parameters.VolumeConfigurations = this.volumeConfigurations;
    // The drill id names the task, so teardown finds it when the execution itself is stopped (DrillTeardown).
    if (rendered.Parameters) rendered.Parameters['StartedBy.$'] = '$.drill.id';
    return rendered;
  }
}
