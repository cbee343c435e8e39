import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { BACKUPS_FAILED_ERROR, BackupStateMachine, BackupStateNames as S } from '../../lib/infra/backup-state-machine';
import { fixture } from '../harness/backup-state-machine-stack';
import {
  LocalTaskError,
  runStateMachine,
  type LocalResolvers,
  type RunTaskRequest,
  type SnsPublishRequest,
} from '../../lib/local/state-machine-runner';
import { workerProcessResolver } from '../../lib/local/worker-process';
import { stateMachineDefinition } from '../../lib/local/template-definition';

/*
 * The backup state machine as synthesized for AWS, run locally: the definition comes out of the
 * template, ECS RunTask is a resolver (a stub, then a real child process), record-result and SNS
 * are recorded. No database here; a later suite wires the real worker.
 */

/** The stack test/infra/backup-state-machine.test.ts renders, with the state machine in it. */
function backupTestStack(): Stack {
  const { stack, machineProps } = fixture();
  new BackupStateMachine(stack, 'Backup', machineProps);
  return stack;
}

interface RecordedEvent {
  source: string;
  type: string;
  outcome: 'succeeded' | 'failed';
  error?: { Error: string; Cause: string };
}

/** Resolvers that record every call; `ecs` decides how each RunTask ends. */
function recordingResolvers(ecs: NonNullable<LocalResolvers['ecsRunTask']>) {
  const calls = { ecs: [] as string[][], lambda: [] as { functionId: string; event: RecordedEvent }[], sns: [] as SnsPublishRequest[] };
  const resolvers: LocalResolvers = {
    ecsRunTask: (request: RunTaskRequest) => {
      calls.ecs.push(request.command);
      return ecs(request);
    },
    lambda: (functionId, payload) => {
      const event = payload as RecordedEvent;
      calls.lambda.push({ functionId, event });
      return { source: event.source, type: event.type, ok: event.outcome === 'succeeded' };
    },
    snsPublish: (request) => {
      calls.sns.push(request);
    },
  };
  return { calls, resolvers };
}

const RUNS = { runs: [{ source: 'app', type: 'logical' }, { source: 'orders', type: 'logical' }] };

describe('backup state machine, run locally', () => {
  let definition: object;

  beforeAll(() => {
    definition = stateMachineDefinition(Template.fromStack(backupTestStack()).toJSON());
  });

  test('(a) both workers succeed: each source recorded as succeeded, nothing published', async () => {
    // GIVEN an ECS resolver whose tasks all exit 0
    const { calls, resolvers } = recordingResolvers(() => undefined);
    // WHEN two sources run
    const result = await runStateMachine(definition, RUNS, resolvers);
    // THEN
    expect(result.status).toBe('SUCCEEDED');
    expect(result.output).toEqual({
      results: [
        { source: 'app', type: 'logical', ok: true },
        { source: 'orders', type: 'logical', ok: true },
      ],
      anyFailed: false,
    });
    expect(calls.ecs.sort()).toEqual([
      ['backup', 'app', '--type', 'logical'],
      ['backup', 'orders', '--type', 'logical'],
    ]);
    expect(calls.lambda.map((c) => c.event).sort((a, b) => a.source.localeCompare(b.source))).toEqual([
      { source: 'app', type: 'logical', outcome: 'succeeded' },
      { source: 'orders', type: 'logical', outcome: 'succeeded' },
    ]);
    // The function is named by its logical id, so a resolver can map it to its handler.
    expect(calls.lambda.every((c) => c.functionId.startsWith('RecordResult'))).toBe(true);
    expect(calls.sns).toEqual([]);
    expect(result.events).not.toContain(S.notifyFailure);
    expect(result.events.filter((e) => e === S.sourceSucceeded)).toHaveLength(2);
    expect(result.events.slice(-3)).toEqual([S.checkResults, S.anyFailed, S.allSucceeded]);
  });

  test('(b) one worker fails: it is retried once, recorded as failed and notified; the other still succeeds; the execution fails', async () => {
    // GIVEN the orders worker exits 3 every time
    const { calls, resolvers } = recordingResolvers((request) => {
      if (request.command[1] === 'orders') throw new LocalTaskError('States.TaskFailed', { exitCode: 3, lastLine: 'orders: database unreachable' });
      return undefined;
    });
    // WHEN both run
    const result = await runStateMachine(definition, RUNS, resolvers);
    // THEN
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe(BACKUPS_FAILED_ERROR);
    expect(calls.ecs.filter((c) => c[1] === 'orders')).toHaveLength(2); // States.TaskFailed: one retry
    expect(calls.ecs.filter((c) => c[1] === 'app')).toHaveLength(1);
    const bySource = Object.fromEntries(calls.lambda.map((c) => [c.event.source, c.event]));
    expect(bySource.app).toEqual({ source: 'app', type: 'logical', outcome: 'succeeded' });
    expect(bySource.orders).toEqual({
      source: 'orders',
      type: 'logical',
      outcome: 'failed',
      error: { Error: 'States.TaskFailed', Cause: JSON.stringify({ exitCode: 3, lastLine: 'orders: database unreachable' }) },
    });
    expect(calls.sns).toHaveLength(1);
    expect(calls.sns[0].subject).toBe('Tidemark: logical backup of orders failed');
    expect(calls.sns[0].topicArn).toMatch(/^arn:aws:sns:local:000000000000:Alerts/);
    expect(calls.sns[0].message).toContain('logical backup of source orders');
    expect(calls.sns[0].message).toContain('States.TaskFailed');
    expect(calls.sns[0].message).toContain('database unreachable');
    for (const state of [S.recordFailure, S.notifyFailure, S.sourceFailed, S.sourceSucceeded, S.backupsFailed]) expect(result.events).toContain(state);
    expect(result.history.filter((h) => h.type === 'StateRetried').map((h) => h.state)).toEqual([S.runWorker]);
  });

  test('(c) a real worker process that exits non-zero takes the failure path', async () => {
    // GIVEN a "worker" that fails for the source "orders" with a one-line reason, and succeeds otherwise
    const output: string[] = [];
    const worker = workerProcessResolver({
      entry: [
        process.execPath,
        '-e',
        'const [, source] = process.argv.slice(1); console.log("backing up " + source + ", compile cache " + process.env.NODE_COMPILE_CACHE); if (source === "orders") { console.error("orders: connection refused"); process.exit(3); }',
      ],
      env: { TIDEMARK_CONFIG_JSON: '{}' },
      onOutput: (line, stream) => output.push(`${stream}: ${line}`),
    });
    const { calls, resolvers } = recordingResolvers(worker);
    // WHEN both run
    const result = await runStateMachine(definition, RUNS, resolvers);
    // THEN exit 3 is States.TaskFailed with the exit code and the last line as Cause
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe(BACKUPS_FAILED_ERROR);
    const failed = calls.lambda.find((c) => c.event.outcome === 'failed')!.event;
    expect(failed.source).toBe('orders');
    expect(failed.error?.Error).toBe('States.TaskFailed');
    expect(JSON.parse(failed.error!.Cause)).toEqual({ exitCode: 3, lastLine: 'orders: connection refused' });
    expect(calls.lambda.find((c) => c.event.outcome === 'succeeded')!.event.source).toBe('app');
    expect(calls.sns.map((m) => m.subject)).toEqual(['Tidemark: logical backup of orders failed']);
    expect(output.filter((l) => l === 'stderr: orders: connection refused')).toHaveLength(2); // first run and its retry
    // Node's compile cache is on for the worker (Node 22 reads it; the CLI's own does not reach children).
    expect(output).toContain(`stdout: backing up app, compile cache ${process.env.NODE_COMPILE_CACHE ?? join(tmpdir(), 'node-compile-cache')}`);
  });

  test('fails before running anything when an integration has no resolver', async () => {
    const { resolvers } = recordingResolvers(() => undefined);
    await expect(runStateMachine(definition, RUNS, { ...resolvers, snsPublish: undefined })).rejects.toThrow(
      `state "${S.notifyFailure}" uses arn:aws:states:::sns:publish (snsPublish), but no snsPublish resolver was given`,
    );
  });
});

describe('stateMachineDefinition', () => {
  const template = (properties: object, extra: object = {}) => ({
    Resources: {
      Fn1: { Type: 'AWS::Lambda::Function', Properties: {} },
      Machine1: { Type: 'AWS::StepFunctions::StateMachine', Properties: properties },
      ...extra,
    },
  });

  test('resolves Fn::Join, Fn::Sub, Fn::Select/Fn::Split and DefinitionSubstitutions into ASL with recognisable ARNs', () => {
    const definition = stateMachineDefinition(
      template({
        DefinitionString: {
          'Fn::Join': [
            '',
            [
              '{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"',
              { 'Fn::GetAtt': ['Fn1', 'Arn'] },
              '","Next":"B"},"B":{"Type":"Pass","Result":"',
              { 'Fn::Sub': '${AWS::Region}/${Fn1}/${!Literal}' },
              '","Next":"C"},"C":{"Type":"Pass","Result":"',
              { 'Fn::Select': [1, { 'Fn::Split': [':', 'a:b:c'] }] },
              '","Next":"D"},"D":{"Type":"Pass","Result":"${greeting}","End":true}}}',
            ],
          ],
        },
        DefinitionSubstitutions: { greeting: 'say "hi"' },
      }),
    ) as { States: Record<string, { Resource?: string; Result?: string }> };
    expect(definition.States.A.Resource).toBe('arn:aws:lambda:local:000000000000:function:Fn1');
    expect(definition.States.B.Result).toBe('local/Fn1/${Literal}');
    expect(definition.States.C.Result).toBe('b');
    expect(definition.States.D.Result).toBe('say "hi"');
  });

  test('fails when the template has several state machines and no prefix picks one', () => {
    const t = template({ DefinitionString: '{}' }, { Machine2: { Type: 'AWS::StepFunctions::StateMachine', Properties: { DefinitionString: '{}' } } });
    expect(() => stateMachineDefinition(t)).toThrow(/2 state machines \(Machine1, Machine2\); pass a logical id prefix/);
    expect(stateMachineDefinition(t, 'Machine2')).toEqual({});
  });

  test('fails when the template has no state machine', () => {
    expect(() => stateMachineDefinition({ Resources: {} })).toThrow('the template has no AWS::StepFunctions::StateMachine');
  });
});
