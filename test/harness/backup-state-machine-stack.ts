import { App, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import type { BackupStateMachineProps } from '../../lib/infra/backup-state-machine';

/*
 * A small stack around the backup state machine: a VPC, a cluster, a Fargate task definition with a
 * `worker` container, an inline record-result Lambda and a topic. test/infra renders it; test/e2e
 * runs its definition locally (same ids, so the same logical ids).
 */

export const ENV = { account: '111111111111', region: 'eu-west-1' };
export const AZ_CONTEXT = { 'availability-zones:account=111111111111:region=eu-west-1': ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'] };

export interface Fixture {
  stack: Stack;
  machineProps: BackupStateMachineProps;
}

/** The stack around the constructs under test, clean under cdk-nag AwsSolutions. */
export function fixture(): Fixture {
  // CloudFormation validation runs where the whole stack is synthesized (test/infra/stack.test.ts).
  const app = new App({ context: AZ_CONTEXT, builtinCloudFormationValidation: false });
  const stack = new Stack(app, 'BackupStateMachineTest', { env: ENV });
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1, flowLogs: { all: { trafficType: ec2.FlowLogTrafficType.ALL } } });
  const cluster = new ecs.Cluster(stack, 'Cluster', { vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED });
  const taskDefinition = new ecs.FargateTaskDefinition(stack, 'WorkerTask', { cpu: 1024, memoryLimitMiB: 2048 });
  const container = taskDefinition.addContainer('worker', {
    image: ecs.ContainerImage.fromRegistry('public.ecr.aws/docker/library/node:22-slim'),
    logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'worker' }),
  });
  const securityGroup = new ec2.SecurityGroup(stack, 'WorkerSecurityGroup', { vpc, description: 'Backup workers' });
  const recordResult = new lambda.Function(stack, 'RecordResult', {
    runtime: lambda.Runtime.NODEJS_22_X,
    handler: 'index.handler',
    code: lambda.Code.fromInline('exports.handler = async (e) => ({ source: e.source, type: e.type, ok: e.outcome === "succeeded" });'),
  });
  // Test fixture only: the real record-result function (BackupFunctions) has its own role and runtime policy.
  Validations.of(recordResult).acknowledge(
    { id: 'AwsSolutions-L1', reason: 'Test fixture: an inline stand-in for record-result, pinned to the Node version of the real one.' },
    {
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      reason: 'Test fixture: the stand-in Lambda keeps the default logging role.',
    },
  );
  const topic = new sns.Topic(stack, 'Alerts', { enforceSSL: true });
  return {
    stack,
    machineProps: { cluster, taskDefinition, container, securityGroups: [securityGroup], subnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }, recordResult, topic },
  };
}

