import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { SourceDeployment } from '../../lib/core/config/deployment';
import { BackupObservability, type BackupObservabilityProps } from '../../lib/infra/backup-observability';

const ENV = { account: '111111111111', region: 'eu-west-1' };
const CONTEXT = {
  'aws:cdk:bundling-stacks': [],
  'availability-zones:account=111111111111:region=eu-west-1': ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'],
};

const SOURCES: SourceDeployment[] = [
  { name: 'app', engine: 'postgres', host: '10.0.1.5', port: 5432, rpoSeconds: 97_200 },
  { name: 'orders', engine: 'mysql', host: '10.0.1.6', port: 3306, rpoSeconds: 300, stream: { flushSeconds: 60 } },
];
const STREAMERS = new Map([['orders', { serviceName: 'tidemark-stream-orders', clusterName: 'tidemark' }]]);

function synth(props: Partial<BackupObservabilityProps> = {}) {
  const app = new App({ builtinCloudFormationValidation: false, context: CONTEXT });
  const stack = new Stack(app, 'Observability', { env: ENV });
  const stateMachine = sfn.StateMachine.fromStateMachineArn(stack, 'Backup', 'arn:aws:states:eu-west-1:111111111111:stateMachine:tidemark-backup');
  const observability = new BackupObservability(stack, 'BackupObservability', {
    sources: SOURCES,
    streamers: STREAMERS,
    alarmEmail: 'oncall@example.com',
    stateMachine,
    ...props,
  });
  return { stack, observability, template: Template.fromStack(stack) };
}

describe('BackupObservability', () => {
  let stack: Stack;
  let observability: BackupObservability;
  let template: Template;
  beforeAll(() => {
    ({ stack, observability, template } = synth());
  });
  const alarmsFor = (metricName: string) =>
    Object.values(template.findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: metricName } })).map((r) => r.Properties);
  const topicRef = () => ({ Ref: stack.getLogicalId(observability.topic.node.defaultChild as never) });

  test('one RPO alarm per source: threshold = rpoSeconds, 3 of 3 minutes, missing data breaching', () => {
    const alarms = alarmsFor('SecondsSinceNewestRestorablePoint');
    expect(alarms).toHaveLength(2);
    for (const source of SOURCES) {
      expect(alarms).toContainEqual(
        expect.objectContaining({
          Namespace: 'Tidemark',
          Dimensions: [{ Name: 'Source', Value: source.name }],
          Statistic: 'Maximum',
          Period: 60,
          Threshold: source.rpoSeconds,
          ComparisonOperator: 'GreaterThanThreshold',
          EvaluationPeriods: 3,
          DatapointsToAlarm: 3,
          TreatMissingData: 'breaching',
        }),
      );
    }
  });

  test('backup and drill failures alarm on one event; silence is not a failure', () => {
    for (const metric of ['BackupFailed', 'DrillFailed']) {
      const alarms = alarmsFor(metric);
      expect(alarms.map((a) => a.Dimensions[0].Value).sort()).toEqual(['app', 'orders']);
      for (const alarm of alarms) {
        expect(alarm).toMatchObject({
          Namespace: 'Tidemark',
          Statistic: 'Sum',
          Period: 300,
          Threshold: 1,
          ComparisonOperator: 'GreaterThanOrEqualToThreshold',
          TreatMissingData: 'notBreaching',
        });
      }
    }
  });

  test('a streamed source alarms when its streamer has no running task, or no data', () => {
    expect(alarmsFor('RunningTaskCount')).toEqual([
      expect.objectContaining({
        Namespace: 'ECS/ContainerInsights',
        Dimensions: expect.arrayContaining([
          { Name: 'ClusterName', Value: 'tidemark' },
          { Name: 'ServiceName', Value: 'tidemark-stream-orders' },
        ]),
        Statistic: 'Minimum',
        Threshold: 1,
        ComparisonOperator: 'LessThanThreshold',
        TreatMissingData: 'breaching',
      }),
    ]);
  });

  test('failed state machine executions alarm', () => {
    expect(alarmsFor('ExecutionsFailed')).toEqual([
      expect.objectContaining({
        Namespace: 'AWS/States',
        Dimensions: [{ Name: 'StateMachineArn', Value: 'arn:aws:states:eu-west-1:111111111111:stateMachine:tidemark-backup' }],
        Statistic: 'Sum',
        TreatMissingData: 'notBreaching',
      }),
    ]);
  });

  test('every alarm notifies the topic on ALARM and on OK', () => {
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm'));
    expect(alarms).toHaveLength(2 * 3 + 1 + 1);
    expect(observability.alarms.size).toBe(alarms.length);
    for (const alarm of alarms) {
      expect(alarm.Properties.AlarmActions).toEqual([topicRef()]);
      expect(alarm.Properties.OKActions).toEqual([topicRef()]);
    }
    expect([...observability.alarms.keys()].sort()).toEqual([
      'ExecutionsFailed',
      'app/BackupFailed',
      'app/DrillFailed',
      'app/RpoBreached',
      'orders/BackupFailed',
      'orders/DrillFailed',
      'orders/RpoBreached',
      'orders/StreamerDown',
    ]);
  });

  test('the topic is encrypted with a rotated customer key CloudWatch may use, and refuses plain HTTP', () => {
    const keyId = stack.getLogicalId(observability.topicKey.node.defaultChild as never);
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: { 'Fn::GetAtt': [keyId, 'Arn'] } });
    template.hasResourceProperties('AWS::KMS::Key', {
      EnableKeyRotation: true,
      KeyPolicy: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Allow',
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
          }),
        ]),
      },
    });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Action: 'sns:Publish', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          Match.objectLike({
            Effect: 'Allow',
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: 'sns:Publish',
            Condition: Match.objectLike({ StringEquals: { 'aws:SourceAccount': '111111111111' } }),
          }),
        ]),
      },
    });
    template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'oncall@example.com', TopicArn: topicRef() });
  });

  test('a dashboard with each source’s RPO line and threshold, sizes, failures and executions', () => {
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    const body = JSON.stringify(template.findResources('AWS::CloudWatch::Dashboard'));
    for (const source of SOURCES) {
      expect(body).toContain(`${source.name}: seconds since newest restorable point`);
      expect(body).toContain(`\\"value\\":${source.rpoSeconds},\\"label\\":\\"RPO ${source.rpoSeconds} s\\"`);
      expect(body).toContain(`${source.name}: stored bytes per backup`);
      expect(body).toContain(`${source.name}: backups and drills`);
    }
    expect(body).toContain('WAL/binlog streamers: running tasks');
    expect(body).toContain('Backup state machine executions');
    expect(body).toContain('ExecutionsFailed');
  });

  test('metric methods give the contract metrics', () => {
    const metric = observability.metricSecondsSinceNewestRestorablePoint('app');
    expect(metric.toMetricConfig().metricStat).toMatchObject({
      namespace: 'Tidemark',
      metricName: 'SecondsSinceNewestRestorablePoint',
      dimensions: [{ name: 'Source', value: 'app' }],
      statistic: 'Maximum',
    });
    expect(observability.metricBackupStoredBytes('orders').metricName).toBe('BackupStoredBytes');
    expect(observability.metricBackupSucceeded('orders').metricName).toBe('BackupSucceeded');
  });

  test('cdk-nag AwsSolutions: no findings', () => {
    const report = new AwsSolutionsChecks().validateScope(observability);
    expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
  });

  test('without optional props: no subscription, no streamer or execution alarms; a streamed source without a streamer is a warning', () => {
    const { stack: bare, template: t, observability: o } = synth({ streamers: undefined, alarmEmail: undefined, stateMachine: undefined, namespace: 'TidemarkStaging' });
    t.resourceCountIs('AWS::SNS::Subscription', 0);
    expect([...o.alarms.keys()].filter((k) => /StreamerDown|ExecutionsFailed/.test(k))).toEqual([]);
    t.allResourcesProperties('AWS::CloudWatch::Alarm', { Namespace: 'TidemarkStaging' });
    Annotations.fromStack(bare).hasWarning('*', Match.stringLikeRegexp("source 'orders' streams WAL/binlog but no streamer"));
  });

  test('fails when a streamer names an unknown source', () => {
    expect(() => synth({ streamers: new Map([['billing', { serviceName: 's', clusterName: 'c' }]]) })).toThrow(/'billing', which is not one of the sources/);
  });

  test('fails when the alarm email is not an address', () => {
    expect(() => synth({ alarmEmail: 'oncall' })).toThrow(/'oncall' is not an email address/);
  });

  test('fails when an RPO is not positive', () => {
    expect(() => synth({ sources: [{ ...SOURCES[0], rpoSeconds: 0 }] })).toThrow(/rpoSeconds 0/);
  });

  test('fails when sources is empty', () => {
    expect(() => synth({ sources: [], streamers: undefined })).toThrow(/sources is empty/);
  });
});
