import { ECSClient, ListTasksCommand, StopTaskCommand } from '@aws-sdk/client-ecs';
import { DBInstanceNotFoundFault, DeleteDBInstanceCommand, DescribeDBInstancesCommand, InvalidDBInstanceStateFault, RDSClient } from '@aws-sdk/client-rds';
import { GetExecutionHistoryCommand, SFNClient, type HistoryEvent } from '@aws-sdk/client-sfn';
import { join } from 'node:path';
import { mockClient } from 'aws-sdk-client-mock';
import { handler } from '../../lambda/drill-teardown/index';
import type { ExecutionStatusChangeEvent } from '../../lib/core/aws/drill-execution';
import type { DrillTargetOutput } from '../../lib/core/commands/drill-target';
import { DRILL_RECORDED_STATE, DRILL_TARGET_STATE } from '../../lib/core/commands/drill-teardown';
import { drillReportKey, type DrillReport } from '../../lib/core/drill/report';
import { writeDrillReport } from '../../lib/core/drill/report-store';
import { FileStore } from '../../lib/core/repository/file-store';
import { useTempDir } from '../harness/tidemark';

/*
 * The drill-teardown Lambda against mocked Step Functions, ECS and RDS and a real (folder)
 * repository: a drill execution stopped mid-way has its tasks stopped and its RDS instance deleted,
 * and is recorded failed exactly once; a second delivery finds nothing left.
 */

const sfn = mockClient(SFNClient);
const ecs = mockClient(ECSClient);
const rds = mockClient(RDSClient);
const CLUSTER = 'arn:aws:ecs:eu-west-1:111111111111:cluster/workers';
const EXECUTION = 'arn:aws:states:eu-west-1:111111111111:execution:Drill:run-1';

const taskDrill: DrillTargetOutput = {
  source: 'app',
  kind: 'restore',
  id: '20261201T020000Z-aaaaaa',
  startedAt: '2026-12-01T02:00:00.000Z',
  target: 'latest',
  random: false,
  mode: 'task',
  workerCommand: ['drill', 'app', '--id', '20261201T020000Z-aaaaaa'],
  cleanupCommand: ['drill-cleanup', 'app', '--id', '20261201T020000Z-aaaaaa'],
};
const rdsDrill: DrillTargetOutput = {
  ...taskDrill,
  source: 'orders',
  id: '20261201T030000Z-bbbbbb',
  mode: 'rds',
  workerCommand: [],
  rds: { restore: 'latest', sourceInstance: 'orders', instance: 'tidemark-drill-20261201t030000z-bbbbbb', securityGroupIds: [] },
};

/** The history of an execution that got as far as `states` after choosing `drill`, then was stopped. */
function history(drill: DrillTargetOutput | null, ...states: string[]): HistoryEvent[] {
  let id = 0;
  const at = new Date('2026-12-01T02:00:00Z');
  const events: HistoryEvent[] = [{ id: ++id, timestamp: at, type: 'ExecutionStarted' }];
  if (drill) {
    events.push({
      id: ++id,
      timestamp: at,
      type: 'TaskStateExited',
      stateExitedEventDetails: { name: DRILL_TARGET_STATE, output: JSON.stringify({ source: drill.source, kind: drill.kind, drill, error: {}, cleanupError: {} }) },
    });
  }
  for (const name of states) events.push({ id: ++id, timestamp: at, type: 'ChoiceStateEntered', stateEnteredEventDetails: { name } });
  events.push({ id: ++id, timestamp: at, type: 'ExecutionAborted', executionAbortedEventDetails: { error: 'States.Aborted', cause: 'stopped by the operator' } });
  return events;
}

function event(status: string, source = 'app'): ExecutionStatusChangeEvent {
  return {
    source: 'aws.states',
    'detail-type': 'Step Functions Execution Status Change',
    detail: { executionArn: EXECUTION, status, input: JSON.stringify({ source, kind: 'restore' }) },
  };
}

const rdsInstance = (status: string, tag: string | undefined = rdsDrill.id) => ({
  DBInstances: [{ DBInstanceIdentifier: rdsDrill.rds!.instance, DBInstanceStatus: status, TagList: tag ? [{ Key: 'tidemark:drill', Value: tag }] : [] }],
});

describe('drill-teardown (Lambda)', () => {
  const tmp = useTempDir('tidemark-drill-teardown-');
  let store: FileStore;
  let metrics: string[];
  const env = { ...process.env };

  let n = 0;

  beforeEach(() => {
    sfn.reset();
    ecs.reset();
    rds.reset();
    // A repository per test: reports are written once, and each test starts without any.
    const repo = join(tmp.path, String(++n));
    store = new FileStore(repo);
    process.env.TIDEMARK_REPOSITORY_URL = `file://${repo}`;
    process.env.TIDEMARK_DRILL_CLUSTER = CLUSTER;
    process.env.TIDEMARK_DRILL_SOURCES = JSON.stringify({ app: { engine: 'postgres', rpoSeconds: 3600 }, orders: { engine: 'postgres', rds: { instance: 'orders' } } });
    metrics = [];
    jest.spyOn(console, 'log').mockImplementation((line: string) => void metrics.push(line));
    jest.spyOn(console, 'error').mockImplementation(() => undefined);
  });
  afterEach(() => {
    jest.restoreAllMocks();
    process.env = { ...env };
  });

  const report = async (drill: DrillTargetOutput) => JSON.parse((await store.getBytes(drillReportKey(drill.source, drill.id))).toString('utf8')) as DrillReport;

  test('a self-managed drill stopped mid-restore: its task (startedBy = drill id) is stopped and a failed report says it was stopped', async () => {
    sfn.on(GetExecutionHistoryCommand).resolves({ events: history(taskDrill) });
    ecs.on(ListTasksCommand, { cluster: CLUSTER, startedBy: taskDrill.id }).resolves({ taskArns: ['arn:aws:ecs:eu-west-1:111111111111:task/workers/t1'] });
    ecs.on(StopTaskCommand).resolves({});

    const result = await handler(event('ABORTED'));

    expect(result).toMatchObject({ status: 'ABORTED', drillId: taskDrill.id, stoppedTasks: 1, recorded: 'now', outcome: { ok: false } });
    expect(ecs.commandCalls(StopTaskCommand).map((c) => c.args[0].input)).toEqual([{ cluster: CLUSTER, task: 'arn:aws:ecs:eu-west-1:111111111111:task/workers/t1', reason: expect.stringContaining(taskDrill.id) }]);
    expect(rds.calls()).toHaveLength(0);
    expect(await report(taskDrill)).toMatchObject({ ok: false, cleanedUp: true, error: expect.stringMatching(/^States\.Aborted: the drill execution was stopped.*stopped by the operator/) });
    expect(metrics.map((l) => JSON.parse(l) as Record<string, unknown>)).toEqual([expect.objectContaining({ Source: 'app', DrillFailed: 1 })]);
  });

  test('an RDS drill stopped while waiting: the tagged instance is deleted without a final snapshot; a second delivery finds nothing and writes nothing new', async () => {
    sfn.on(GetExecutionHistoryCommand).resolves({ events: history(rdsDrill) });
    ecs.on(ListTasksCommand).resolves({ taskArns: [] });
    rds.on(DescribeDBInstancesCommand).resolvesOnce(rdsInstance('backing-up')).rejects(new DBInstanceNotFoundFault({ message: 'gone', $metadata: {} }));
    rds.on(DeleteDBInstanceCommand).resolves({});

    const first = await handler(event('ABORTED', 'orders'));
    expect(first).toMatchObject({ drillId: rdsDrill.id, instance: 'deleted', stoppedTasks: 0, recorded: 'now' });
    expect(rds.commandCalls(DeleteDBInstanceCommand).map((c) => c.args[0].input)).toEqual([{ DBInstanceIdentifier: rdsDrill.rds!.instance, SkipFinalSnapshot: true, DeleteAutomatedBackups: true }]);
    const written = await report(rdsDrill);
    expect(written).toMatchObject({ ok: false, method: 'rds-point-in-time', cleanedUp: true });

    const second = await handler(event('ABORTED', 'orders'));
    expect(second).toMatchObject({ instance: 'absent', stoppedTasks: 0 });
    expect(rds.commandCalls(DeleteDBInstanceCommand)).toHaveLength(1);
    expect(await report(rdsDrill)).toEqual(written); // never overwritten
  });

  test('an instance still being created: the delete is asked again until RDS accepts it', async () => {
    const timedOut = history(rdsDrill).map((e) => (e.type === 'ExecutionAborted' ? { ...e, type: 'ExecutionTimedOut', executionAbortedEventDetails: undefined, executionTimedOutEventDetails: { error: 'States.Timeout' } } : e));
    sfn.on(GetExecutionHistoryCommand).resolves({ events: timedOut as HistoryEvent[] });
    ecs.on(ListTasksCommand).resolves({ taskArns: [] });
    rds.on(DescribeDBInstancesCommand).resolves(rdsInstance('creating'));
    rds.on(DeleteDBInstanceCommand)
      .rejectsOnce(new InvalidDBInstanceStateFault({ message: 'Instance is not in available state', $metadata: {} }))
      .resolves({});
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate'] });
    try {
      const pending = handler(event('TIMED_OUT', 'orders'), { ...context(), getRemainingTimeInMillis: () => 900_000 });
      await jest.advanceTimersByTimeAsync(31_000);
      expect(await pending).toMatchObject({ status: 'TIMED_OUT', instance: 'deleted' });
    } finally {
      jest.useRealTimers();
    }
    expect(rds.commandCalls(DeleteDBInstanceCommand)).toHaveLength(2);
    expect((await report(rdsDrill)).error).toMatch(/^States\.Timeout/);
  });

  test('fails when an instance of the drill name does not carry the drill tag: left alone, the drill recorded with the teardown failure', async () => {
    sfn.on(GetExecutionHistoryCommand).resolves({ events: history(rdsDrill) });
    ecs.on(ListTasksCommand).resolves({ taskArns: [] });
    rds.on(DescribeDBInstancesCommand).resolves(rdsInstance('available', 'someone-else'));

    await expect(handler(event('ABORTED', 'orders'))).rejects.toThrow(/carries tidemark:drill=someone-else.*left alone/);
    expect(rds.commandCalls(DeleteDBInstanceCommand)).toHaveLength(0);
    expect(await report(rdsDrill)).toMatchObject({ ok: false, cleanedUp: false });
  });

  test('a drill the machine already recorded (it failed normally): teardown is checked again, nothing is recorded twice', async () => {
    sfn.on(GetExecutionHistoryCommand).resolves({ events: history(taskDrill, DRILL_RECORDED_STATE) });
    ecs.on(ListTasksCommand).resolves({ taskArns: [] });
    await writeDrillReport(store, { format: 1, id: taskDrill.id, source: 'app', engine: 'postgres', method: 'logical', kind: 'restore', target: { kind: 'latest' }, startedAt: taskDrill.startedAt, finishedAt: taskDrill.startedAt, ok: false, checks: [], cleanedUp: true });

    expect(await handler(event('FAILED'))).toMatchObject({ recorded: 'before', stoppedTasks: 0 });
    expect(ecs.commandCalls(ListTasksCommand)).toHaveLength(1);
    expect(metrics).toEqual([]);
  });

  test('stopped before a target was chosen: nothing to tear down, the failure is still counted; SUCCEEDED needs nothing', async () => {
    sfn.on(GetExecutionHistoryCommand).resolves({ events: history(null) });
    expect(await handler(event('ABORTED'))).toMatchObject({ source: 'app', stoppedTasks: 0, recorded: 'now', outcome: { ok: false, reason: expect.stringContaining('States.Aborted') } });
    expect(ecs.calls()).toHaveLength(0);
    expect(rds.calls()).toHaveLength(0);

    sfn.resetHistory();
    expect(await handler(event('SUCCEEDED'))).toEqual({ skipped: expect.stringContaining('SUCCEEDED') });
    expect(sfn.calls()).toHaveLength(0);
  });

  test('the history is read to its end (paginated)', async () => {
    const [start, target, ...rest] = history(taskDrill);
    sfn.on(GetExecutionHistoryCommand).resolvesOnce({ events: [start], nextToken: 't1' }).resolves({ events: [target, ...rest] });
    ecs.on(ListTasksCommand).resolves({ taskArns: [] });
    expect(await handler(event('ABORTED'))).toMatchObject({ drillId: taskDrill.id });
    expect(sfn.commandCalls(GetExecutionHistoryCommand).map((c) => c.args[0].input.nextToken)).toEqual([undefined, 't1']);
  });
});

function context() {
  return { awsRequestId: 'r', functionName: 'f', functionVersion: '1', invokedFunctionArn: 'arn', memoryLimitInMB: '256' };
}
