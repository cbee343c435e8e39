import { Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { ScheduledRun } from '../../lib/core/config/deployment';
import { BackupSchedules } from '../../lib/infra/backup-schedules';
import { BACKUPS_FAILED_ERROR, BackupStateMachine, BackupStateNames as S } from '../../lib/infra/backup-state-machine';
import { fixture } from '../harness/backup-state-machine-stack';

/* The backup state machine and its schedules, rendered from the small stack of the harness. */

const RUNS: ScheduledRun[] = [
  { id: 'logical-1a2b3c4d', type: 'logical', cron: '0 3 * * *', expression: 'cron(0 3 * * ? *)', timeZone: 'Europe/Berlin', sources: ['app', 'orders'] },
  { id: 'full-5e6f7a8b', type: 'full', cron: '30 1 * * 0', expression: 'cron(30 1 ? * 1 *)', timeZone: 'UTC', sources: ['reports'] },
];

type State = Record<string, unknown> & { Type: string };
interface Definition {
  StartAt: string;
  States: Record<string, State>;
}

/** The DefinitionString with every CloudFormation reference replaced by a marker (they sit inside JSON strings). */
function renderedDefinition(template: Template): Definition {
  const machines = Object.values(template.findResources('AWS::StepFunctions::StateMachine'));
  expect(machines).toHaveLength(1);
  const definitionString = machines[0].Properties.DefinitionString as { 'Fn::Join': [string, unknown[]] };
  const [, parts] = definitionString['Fn::Join'];
  return JSON.parse(parts.map((p) => (typeof p === 'string' ? p : '<ref>')).join('')) as Definition;
}

/** Every key anywhere in a JSON value. */
function keysOf(value: unknown, into = new Set<string>()): Set<string> {
  if (Array.isArray(value)) value.forEach((v) => keysOf(v, into));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      into.add(k);
      keysOf(v, into);
    }
  }
  return into;
}

describe('BackupStateMachine', () => {
  let stack: Stack;
  let template: Template;
  let definition: Definition;
  let map: State;
  let item: Record<string, State>;

  beforeAll(() => {
    // GIVEN the state machine and the schedules in a stack
    const f = fixture();
    stack = f.stack;
    const backup = new BackupStateMachine(stack, 'Backup', f.machineProps);
    new BackupSchedules(stack, 'Schedules', { stateMachine: backup.stateMachine, runs: RUNS });
    // WHEN synthesized
    template = Template.fromStack(stack);
    definition = renderedDefinition(template);
    map = definition.States[S.eachSource];
    item = (map.ItemProcessor as Definition).States;
  });

  test('maps over $.runs with the default concurrency, passing each iteration only source and type', () => {
    expect(definition.StartAt).toBe(S.eachSource);
    expect(map).toMatchObject({
      Type: 'Map',
      ItemsPath: '$.runs',
      MaxConcurrency: 4,
      ItemSelector: { 'source.$': '$$.Map.Item.Value.source', 'type.$': '$$.Map.Item.Value.type' },
      ResultSelector: { 'results.$': '$', 'oks.$': '$[*].ok' },
      ItemProcessor: { ProcessorConfig: { Mode: 'INLINE' }, StartAt: S.runWorker },
      Next: S.checkResults,
    });
  });

  test('runs the worker on Fargate (.sync, no public IP) with the command backup <source> --type <type>', () => {
    const run = item[S.runWorker];
    expect(run.Resource).toBe('arn:<ref>:states:::ecs:runTask.sync');
    expect(run).toMatchObject({
      TimeoutSeconds: 6 * 3600,
      ResultPath: null,
      Parameters: {
        LaunchType: 'FARGATE',
        Cluster: '<ref>',
        Overrides: { ContainerOverrides: [{ Name: 'worker', 'Command.$': "States.Array('backup', $.source, '--type', $.type)" }] },
        NetworkConfiguration: { AwsvpcConfiguration: { Subnets: ['<ref>', '<ref>'], SecurityGroups: ['<ref>'] } },
      },
      Next: S.recordSuccess,
    });
    expect(JSON.stringify(run.Parameters)).not.toContain('ENABLED');
  });

  test('retries ECS faults with backoff, a failed worker once after minutes, and never a timeout', () => {
    const run = item[S.runWorker];
    expect(run.Retry).toEqual([
      {
        ErrorEquals: ['ECS.AmazonECSException', 'ECS.ServerException', 'ECS.ThrottlingException', 'ECS.SdkClientException'],
        IntervalSeconds: 30,
        BackoffRate: 2,
        MaxDelaySeconds: 300,
        MaxAttempts: 5,
        JitterStrategy: 'FULL',
      },
      { ErrorEquals: ['States.TaskFailed'], IntervalSeconds: 180, MaxAttempts: 1 },
    ]);
    expect(JSON.stringify(run.Retry)).not.toContain('States.Timeout');
    expect(JSON.stringify(run.Retry)).not.toContain('States.ALL');
    expect(run.Catch).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: S.recordFailure }]);
  });

  test('records a success with the record-result Lambda, retrying Lambda service errors', () => {
    const record = item[S.recordSuccess];
    expect(record).toMatchObject({
      Resource: 'arn:<ref>:states:::lambda:invoke',
      Parameters: { FunctionName: '<ref>', Payload: { 'source.$': '$.source', 'type.$': '$.type', outcome: 'succeeded' } },
      ResultPath: null,
      Retry: [expect.objectContaining({ ErrorEquals: expect.arrayContaining(['Lambda.ServiceException', 'Lambda.SdkClientException']) })],
      Next: S.sourceSucceeded,
    });
    expect(item[S.sourceSucceeded]).toMatchObject({ Type: 'Pass', Parameters: { 'source.$': '$.source', 'type.$': '$.type', ok: true }, End: true });
  });

  test('on failure records the error, notifies the topic and ends the item with ok=false', () => {
    expect(item[S.recordFailure]).toMatchObject({
      Resource: 'arn:<ref>:states:::lambda:invoke',
      Parameters: {
        FunctionName: '<ref>',
        Payload: { 'source.$': '$.source', 'type.$': '$.type', outcome: 'failed', error: { 'Error.$': '$.error.Error', 'Cause.$': '$.error.Cause' } },
      },
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.recordError', Next: S.notifyFailure }],
      Next: S.notifyFailure,
    });
    const notify = item[S.notifyFailure];
    expect(notify).toMatchObject({
      Resource: 'arn:<ref>:states:::sns:publish',
      Parameters: {
        TopicArn: '<ref>',
        'Subject.$': "States.Format('Tidemark: {} backup of {} failed', $.type, $.source)",
        'Message.$': expect.stringContaining('$.error.Error, $.error.Cause, $$.Execution.Id'),
      },
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.notifyError', Next: S.sourceFailed }],
      Next: S.sourceFailed,
    });
    expect(item[S.sourceFailed]).toMatchObject({ Type: 'Pass', Parameters: { ok: false, 'error.$': '$.error.Error' }, End: true });
  });

  test('fails the execution as Tidemark.BackupsFailed after the Map when any item has ok=false', () => {
    expect(definition.States[S.checkResults]).toMatchObject({
      Type: 'Pass',
      Parameters: { 'results.$': '$.results', 'anyFailed.$': 'States.ArrayContains($.oks, false)' },
      Next: S.anyFailed,
    });
    expect(definition.States[S.anyFailed]).toMatchObject({
      Type: 'Choice',
      Choices: [{ Variable: '$.anyFailed', BooleanEquals: true, Next: S.backupsFailed }],
      Default: S.allSucceeded,
    });
    expect(definition.States[S.backupsFailed]).toMatchObject({ Type: 'Fail', Error: BACKUPS_FAILED_ERROR });
    expect(definition.States[S.allSucceeded]).toMatchObject({ Type: 'Succeed' });
  });

  test('every state name is one of the exported constants', () => {
    const names = [...Object.keys(definition.States), ...Object.keys(item)].sort();
    expect(names).toEqual(Object.values(S).sort());
  });

  test('uses JSONPath only: no JSONata, Arguments, Assign or Distributed Map', () => {
    const keys = keysOf(definition);
    for (const k of ['QueryLanguage', 'Arguments', 'Assign', 'Output', 'ItemReader', 'ResultWriter', 'ItemBatcher']) expect(keys).not.toContain(k);
    const text = JSON.stringify(definition);
    expect(text).not.toContain('JSONata');
    expect(text).not.toContain('{%');
    expect(text).not.toContain('DISTRIBUTED');
  });

  test('logs every event without execution data and traces with X-Ray', () => {
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineType: 'STANDARD',
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: {
        Level: 'ALL',
        IncludeExecutionData: false,
        Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^BackupLogs'), 'Arn'] } } }],
      },
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { LogGroupName: Match.stringLikeRegexp('^/aws/vendedlogs/states/'), RetentionInDays: 365 });
  });

  test('creates one schedule per ScheduledRun in its time zone, at the stated time, with all its sources', () => {
    template.resourceCountIs('AWS::Scheduler::Schedule', 2);
    template.resourceCountIs('AWS::Scheduler::ScheduleGroup', 1);
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(0 3 * * ? *)',
      ScheduleExpressionTimezone: 'Europe/Berlin',
      FlexibleTimeWindow: { Mode: 'OFF' },
      State: 'ENABLED',
      GroupName: Match.stringLikeRegexp('-Schedules-Group-'),
      Target: {
        Arn: { Ref: Match.stringLikeRegexp('^BackupStateMachine') },
        Input: JSON.stringify({ runs: [{ source: 'app', type: 'logical' }, { source: 'orders', type: 'logical' }] }),
        RetryPolicy: { MaximumEventAgeInSeconds: 3600, MaximumRetryAttempts: 20 },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^SchedulesDeadLetterQueue'), 'Arn'] } },
      },
    });
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(30 1 ? * 1 *)',
      ScheduleExpressionTimezone: 'UTC',
      Target: { Input: JSON.stringify({ runs: [{ source: 'reports', type: 'full' }] }) },
    });
  });

  test('the schedules may start the state machine and reach the dead-letter queue, nothing more', () => {
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Action: 'states:StartExecution', Resource: { Ref: Match.stringLikeRegexp('^BackupStateMachine') } }),
          Match.objectLike({ Action: 'sqs:SendMessage', Resource: { 'Fn::GetAtt': [Match.stringLikeRegexp('^SchedulesDeadLetterQueue'), 'Arn'] } }),
        ]),
      },
    });
  });

  test('the dead-letter queue is encrypted and refuses plain HTTP', () => {
    template.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true, MessageRetentionPeriod: 14 * 24 * 3600 });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]),
      },
    });
  });

  test('cdk-nag AwsSolutions reports nothing for the stack', () => {
    const report = new AwsSolutionsChecks().validateScope(stack);
    const findings = report.violations.map((v) => `${v.ruleName} at ${v.violatingResources.map((r) => r.resourceLogicalId ?? r.constructPath).join(', ')}`);
    expect(findings).toEqual([]);
  });
});

describe('BackupStateMachine props', () => {
  test('maxConcurrency and taskTimeout reach the definition', () => {
    const f = fixture();
    new BackupStateMachine(f.stack, 'Backup', { ...f.machineProps, maxConcurrency: 2, taskTimeout: Duration.hours(2) });
    const definition = renderedDefinition(Template.fromStack(f.stack));
    const map = definition.States[S.eachSource];
    expect(map.MaxConcurrency).toBe(2);
    expect((map.ItemProcessor as Definition).States[S.runWorker].TimeoutSeconds).toBe(7200);
  });

  test('fails when maxConcurrency is not a positive integer', () => {
    const f = fixture();
    expect(() => new BackupStateMachine(f.stack, 'Backup', { ...f.machineProps, maxConcurrency: 0 })).toThrow(/maxConcurrency must be an integer of at least 1, got 0/);
  });

  test('fails when taskTimeout is under a minute', () => {
    const f = fixture();
    expect(() => new BackupStateMachine(f.stack, 'Backup', { ...f.machineProps, taskTimeout: Duration.seconds(30) })).toThrow(/taskTimeout must be at least 1 minute, got 30 seconds/);
  });
});

describe('BackupSchedules', () => {
  function machine(): BackupStateMachine {
    const f = fixture();
    return new BackupStateMachine(f.stack, 'Backup', f.machineProps);
  }

  test('fails when a run has no sources', () => {
    const backup = machine();
    expect(() => new BackupSchedules(Stack.of(backup), 'Schedules', { stateMachine: backup.stateMachine, runs: [{ ...RUNS[0], sources: [] }] })).toThrow(
      /schedule logical-1a2b3c4d has no sources/,
    );
  });

  test('fails when two runs share an id', () => {
    const backup = machine();
    expect(() => new BackupSchedules(Stack.of(backup), 'Schedules', { stateMachine: backup.stateMachine, runs: [RUNS[0], RUNS[0]] })).toThrow(
      /two schedules have the id logical-1a2b3c4d/,
    );
  });
});
