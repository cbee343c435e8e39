import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import type * as ecs from 'aws-cdk-lib/aws-ecs';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { drillHandlerFunction, type DrillVault } from './drill-functions';
import { denyDeletingUntaggedInstances, DRILL_INSTANCE_PREFIX, drillInstancesArn } from './drill-state-machine';
import { acknowledgeRequiredWildcards, type RequiredWildcard } from './nag-finding';
import { deadLetterQueue } from './dead-letter-queue';

export interface DrillTeardownProps {
  /** The drill state machine whose ended executions are torn down. */
  readonly stateMachine: sfn.IStateMachine;
  /** The cluster the drill tasks run in. */
  readonly cluster: ecs.ICluster;
  /** The vault: a drill the machine did not record is recorded failed. */
  readonly vault: DrillVault;
  /** What the drill functions know (DrillFunctions.environment): repository, sources, namespace. */
  readonly environment: Readonly<Record<string, string>>;
  /** @default logs.RetentionDays.THREE_MONTHS */
  readonly logRetention?: logs.RetentionDays;
}

/** Statuses after which the machine's own teardown may not have run (FAILED: a States.Runtime error no Catch sees). */
export const TEARDOWN_STATUSES = ['ABORTED', 'TIMED_OUT', 'FAILED'] as const;

/**
 * Teardown for drill executions that end without reaching their own: a StopExecution or an
 * execution timeout skips every Catch, so the drill state machine cannot clean up after itself
 * then. An EventBridge rule on the machine's "Execution Status Change" (ABORTED, TIMED_OUT, and
 * FAILED as a safety net) invokes the drill-teardown Lambda, which reads the execution's drill
 * target from its history, stops the ECS tasks started by that drill (startedBy = drill id),
 * deletes its RDS instance (name prefix and drill tag, no final snapshot) and records the drill
 * failed when the machine had not. A drill that ended normally costs one invocation finding nothing.
 */
export class DrillTeardown extends Construct {
  readonly function: NodejsFunction;
  readonly rule: events.Rule;
  /** Events the rule could not deliver, and invocations that still failed after Lambda's retries. */
  readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: DrillTeardownProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.function = drillHandlerFunction(this, {
      id: 'Function',
      name: 'drill-teardown',
      description: 'Tidemark: tears down a drill execution that was stopped or timed out (ECS tasks, RDS instance) and records it',
      environment: { ...props.environment, TIDEMARK_DRILL_CLUSTER: props.cluster.clusterArn },
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      grant: (role) => props.vault.grantWrite(role),
      vault: props.vault,
      // An RDS restore in flight refuses the delete until the instance exists: the function waits.
      timeout: Duration.minutes(15),
    });
    const role = this.function.role!;

    props.stateMachine.grantExecution(role, 'states:GetExecutionHistory');
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ListDrillTasks',
        actions: ['ecs:ListTasks'],
        resources: ['*'],
        conditions: { ArnEquals: { 'ecs:cluster': props.cluster.clusterArn } },
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'StopDrillTasks',
        actions: ['ecs:StopTask'],
        resources: [stack.formatArn({ service: 'ecs', resource: 'task', resourceName: `${props.cluster.clusterName}/*`, arnFormat: ArnFormat.SLASH_RESOURCE_NAME })],
        conditions: { ArnEquals: { 'ecs:cluster': props.cluster.clusterArn } },
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ sid: 'DeleteDrillInstances', actions: ['rds:DescribeDBInstances', 'rds:DeleteDBInstance'], resources: [drillInstancesArn(stack)] }),
    );
    role.addToPrincipalPolicy(denyDeletingUntaggedInstances());
    acknowledgeRequiredWildcards(role, REQUIRED_WILDCARDS);

    this.deadLetterQueue = deadLetterQueue(this, 'the drill teardown (rule target and Lambda on-failure destination)');
    this.function.configureAsyncInvoke({ retryAttempts: 2, maxEventAge: Duration.hours(6), onFailure: new destinations.SqsDestination(this.deadLetterQueue) });

    this.rule = new events.Rule(this, 'ExecutionEnded', {
      description: 'Tidemark: a drill execution stopped, timed out or failed outside its Catch paths; tear down what it provisioned',
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: { stateMachineArn: [props.stateMachine.stateMachineArn], status: [...TEARDOWN_STATUSES] },
      },
      targets: [new targets.LambdaFunction(this.function, { deadLetterQueue: this.deadLetterQueue, maxEventAge: Duration.hours(6), retryAttempts: 20 })],
    });
  }
}

const REQUIRED_WILDCARDS: readonly RequiredWildcard[] = [
  { actions: ['states:GetExecutionHistory'], reason: 'Executions of the drill state machine are named at run time (<state machine>:*).' },
  { actions: ['ecs:ListTasks'], reason: 'ListTasks supports no resource-level permission; the ecs:cluster condition limits it to the workers cluster.' },
  { actions: ['ecs:StopTask'], reason: 'Task ARNs exist only at run time; the resource is the workers cluster\'s tasks and the ecs:cluster condition holds it there.' },
  {
    actions: ['rds:DescribeDBInstances', 'rds:DeleteDBInstance'],
    reason: `Throwaway drill instances are named at run time; the wildcard is only the suffix after the reserved ${DRILL_INSTANCE_PREFIX} prefix, and a deny refuses any instance without the drill tag.`,
  },
];
