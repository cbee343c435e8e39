import { readFileSync } from 'node:fs';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  SFNClient,
  StartExecutionCommand,
  StopExecutionCommand,
  type HistoryEvent,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import fc from 'fast-check';
import { main } from '../../bin/tidemark';
import { ExecutionNarrator, summarizeCause } from '../../lib/core/aws/execution-history';
import { TerminalExecutionWatcher } from '../../lib/core/aws/terminal-watcher';
import { runBackupOnAws, runDrillOnAws } from '../../lib/core/commands/run-aws';
import { parseConfig } from '../../lib/core/config/load';
import { StackOutputNames } from '../../lib/core/config/stack-outputs';
import { BackupStateNames, BACKUPS_FAILED_ERROR } from '../../lib/infra/backup-state-machine';
import { useTempDir, writeConfig } from '../harness/tidemark';

/**
 * `tidemark run backup|drill --aws` against mocked Step Functions and CloudFormation (no local
 * endpoint has them): the histories below follow the real backup state machine's state names.
 */
const cfn = mockClient(CloudFormationClient);
const sfn = mockClient(SFNClient);

const ACCOUNT = '111111111111';
const REGION = 'eu-west-1';
const STACK = `Tidemark-${ACCOUNT}-${REGION}`;
const BACKUP_SM = `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:BackupStateMachine-abc`;
const DRILL_SM = `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:DrillStateMachine-def`;
const EXECUTION = `arn:aws:states:${REGION}:${ACCOUNT}:execution:BackupStateMachine-abc:manual-backup-app`;

const T0 = Date.parse('2026-12-01T08:00:00Z');
let nextId = 0;
function ev(type: string, at: number, previous: number, details: Partial<HistoryEvent> = {}): HistoryEvent {
  nextId++;
  return { id: nextId, previousEventId: previous, type: type as HistoryEvent['type'], timestamp: new Date(T0 + at * 1000), ...details };
}
const entered = (name: string, input: unknown = {}) => ({ stateEnteredEventDetails: { name, input: JSON.stringify(input) } });
const exited = (name: string) => ({ stateExitedEventDetails: { name, output: '{}' } });

/** A backup of one source through the real state names, ending as `end` says. */
function backupHistory(end: 'succeeded' | 'failed'): HistoryEvent[] {
  nextId = 0;
  const item = { source: 'app', type: 'logical' };
  const events = [
    ev('ExecutionStarted', 0, 0, { executionStartedEventDetails: { input: JSON.stringify({ runs: [item] }) } }),
    ev('MapStateEntered', 0, 1, entered(BackupStateNames.eachSource, { runs: [item] })),
    ev('MapStateStarted', 0, 2, { mapStateStartedEventDetails: { length: 1 } }),
    ev('MapIterationStarted', 0, 3, { mapIterationStartedEventDetails: { name: BackupStateNames.eachSource, index: 0 } }),
    ev('TaskStateEntered', 1, 4, entered(BackupStateNames.runWorker, item)),
    ev('TaskScheduled', 1, 5, { taskScheduledEventDetails: { resourceType: 'ecs', resource: 'runTask.sync', region: REGION, parameters: '{}' } }),
    ev('TaskStarted', 2, 6, { taskStartedEventDetails: { resourceType: 'ecs', resource: 'runTask.sync' } }),
  ];
  if (end === 'succeeded') {
    events.push(
      ev('TaskSucceeded', 95, 7, { taskSucceededEventDetails: { resourceType: 'ecs', resource: 'runTask.sync', output: '{}' } }),
      ev('TaskStateExited', 95, 8, exited(BackupStateNames.runWorker)),
      ev('TaskStateEntered', 95, 9, entered(BackupStateNames.recordSuccess, item)),
      ev('TaskStateExited', 96, 10, exited(BackupStateNames.recordSuccess)),
      ev('PassStateEntered', 96, 11, entered(BackupStateNames.sourceSucceeded, item)),
      ev('PassStateExited', 96, 12, exited(BackupStateNames.sourceSucceeded)),
      ev('MapIterationSucceeded', 96, 13, { mapIterationSucceededEventDetails: { name: BackupStateNames.eachSource, index: 0 } }),
      ev('MapStateSucceeded', 96, 14),
      ev('MapStateExited', 96, 15, exited(BackupStateNames.eachSource)),
      ev('SucceedStateEntered', 96, 16, entered(BackupStateNames.allSucceeded)),
      ev('ExecutionSucceeded', 96, 17, { executionSucceededEventDetails: { output: '{}' } }),
    );
    return events;
  }
  const cause = JSON.stringify({
    TaskArn: `arn:aws:ecs:${REGION}:${ACCOUNT}:task/cluster/0123456789abcdef`,
    StoppedReason: 'Essential container in task exited',
    Containers: [{ Name: 'worker', ExitCode: 1, LastStatus: 'STOPPED' }],
    Attachments: [{ Details: Array.from({ length: 40 }, (_, i) => ({ Name: `k${i}`, Value: 'x'.repeat(50) })) }],
  });
  events.push(
    ev('TaskFailed', 30, 7, { taskFailedEventDetails: { resourceType: 'ecs', resource: 'runTask.sync', error: 'States.TaskFailed', cause } }),
    ev('TaskStateExited', 30, 8, exited(BackupStateNames.runWorker)),
    ev('TaskStateEntered', 30, 9, entered(BackupStateNames.recordFailure, item)),
    ev('TaskStateExited', 31, 10, exited(BackupStateNames.recordFailure)),
    ev('TaskStateEntered', 31, 11, entered(BackupStateNames.notifyFailure, item)),
    ev('TaskStateExited', 31, 12, exited(BackupStateNames.notifyFailure)),
    ev('PassStateEntered', 31, 13, entered(BackupStateNames.sourceFailed, item)),
    ev('PassStateExited', 31, 14, exited(BackupStateNames.sourceFailed)),
    ev('MapStateExited', 31, 15, exited(BackupStateNames.eachSource)),
    ev('FailStateEntered', 31, 16, entered(BackupStateNames.backupsFailed)),
    ev('ExecutionFailed', 31, 17, { executionFailedEventDetails: { error: BACKUPS_FAILED_ERROR, cause: 'At least one source failed to back up' } }),
  );
  return events;
}

/**
 * Serves `events` the way Step Functions does: newest first, three per page (to exercise paging),
 * revealing more of them with every DescribeExecution poll; the last poll reports `final`.
 */
function serveExecution(events: readonly HistoryEvent[], final: { status: string; error?: string; cause?: string; output?: string }, polls = 3): void {
  let poll = 0;
  let visible = 0;
  sfn.on(StartExecutionCommand).resolves({ executionArn: EXECUTION, startDate: new Date(T0) });
  sfn.on(DescribeExecutionCommand).callsFake(() => {
    poll++;
    visible = poll >= polls ? events.length : Math.max(0, Math.ceil((events.length * poll) / polls) - 2);
    const done = poll >= polls;
    return {
      executionArn: EXECUTION,
      name: 'manual-backup-app',
      status: done ? final.status : 'RUNNING',
      startDate: new Date(T0),
      ...(done ? { stopDate: new Date(T0 + 96_000), error: final.error, cause: final.cause, output: final.output } : {}),
    };
  });
  sfn.on(GetExecutionHistoryCommand).callsFake((input: { reverseOrder?: boolean; nextToken?: string }) => {
    expect(input.reverseOrder).toBe(true);
    const newestFirst = events.slice(0, visible).reverse();
    const start = input.nextToken ? Number(input.nextToken) : 0;
    return { events: newestFirst.slice(start, start + 3), nextToken: start + 3 < newestFirst.length ? String(start + 3) : undefined };
  });
}

function stackOutputs(outputs: Record<string, string>): void {
  cfn.on(DescribeStacksCommand, { StackName: STACK }).resolves({
    Stacks: [{ StackName: STACK, CreationTime: new Date(T0), StackStatus: 'UPDATE_COMPLETE', Outputs: Object.entries(outputs).map(([OutputKey, OutputValue]) => ({ OutputKey, OutputValue })) }],
  });
}

/** The CLI in process (so the mocks apply), its output captured. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((stdout += String(chunk)), true));
  const err = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true));
  try {
    const code = await main(['node', 'tidemark', ...args]);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
    process.exitCode = undefined;
  }
}

describe('tidemark run … --aws', () => {
  const dir = useTempDir('tidemark-run-aws-');
  let configPath: string;

  beforeAll(() => {
    configPath = writeConfig(dir.path, 'tidemark.yaml', {
      repository: 'file:///var/backups/tidemark',
      encryption: { key: 'env:TIDEMARK_KEY' },
      aws: { account: ACCOUNT, region: REGION },
      sources: { app: { engine: 'postgres', url: 'postgres://backup@10.0.0.5:5432/app' } },
    }).path;
  });
  beforeEach(() => {
    cfn.reset();
    sfn.reset();
  });

  test('backup: starts the machine with the schedules\' input and follows RUNNING → SUCCEEDED state by state', async () => {
    // GIVEN a stack exporting the backup state machine, and an execution that takes three polls
    stackOutputs({ [StackOutputNames.backupStateMachine]: BACKUP_SM });
    const events = backupHistory('succeeded');
    serveExecution(events, { status: 'SUCCEEDED', output: '{"results":[{"source":"app","type":"logical","ok":true}]}' });

    // WHEN
    const { code, stdout, stderr } = await cli(['--config', configPath, '--json', 'run', 'backup', 'app', '--aws', '--poll', '0.001']);

    // THEN the input is the schedules' contract, for the source's first scheduled type (logical)
    expect(code).toBe(0);
    const start = sfn.commandCalls(StartExecutionCommand)[0].args[0].input;
    expect(start.stateMachineArn).toBe(BACKUP_SM);
    expect(JSON.parse(start.input!)).toEqual({ runs: [{ source: 'app', type: 'logical' }] });
    expect(start.name).toMatch(/^manual-backup-app-logical-\d{8}T\d{6}Z-[0-9a-f]{6}$/);
    // each state once, in order, although pages overlapped across polls
    const stateLines = stderr.split('\n').filter((l) => /^\d\d:\d\d:\d\d {2}(>|ok|FAILED)/.test(l));
    expect(stateLines).toEqual([
      `08:00:00  > ${BackupStateNames.eachSource}`,
      `08:00:01  > ${BackupStateNames.runWorker} [app]`,
      `08:01:35  ok ${BackupStateNames.runWorker} [app]  1m34s`,
      `08:01:35  > ${BackupStateNames.recordSuccess} [app]`,
      `08:01:36  ok ${BackupStateNames.recordSuccess} [app]  1.0 s`,
      `08:01:36  > ${BackupStateNames.sourceSucceeded} [app]`,
      `08:01:36  ok ${BackupStateNames.sourceSucceeded} [app]  0.0 s`,
      `08:01:36  ok ${BackupStateNames.eachSource}  1m36s`,
      `08:01:36  > ${BackupStateNames.allSucceeded}`,
    ]);
    expect(sfn.commandCalls(DescribeExecutionCommand)).toHaveLength(3);
    const result = JSON.parse(stdout) as { status: string; seconds: number; output: unknown; stack: string };
    expect(result).toMatchObject({ status: 'SUCCEEDED', seconds: 96, stack: STACK, output: { results: [{ source: 'app', ok: true }] } });
  });

  test('backup: FAILED exits non-zero with the failing state, its error and the container exit in one line', async () => {
    stackOutputs({ [StackOutputNames.backupStateMachine]: BACKUP_SM });
    serveExecution(backupHistory('failed'), { status: 'FAILED', error: BACKUPS_FAILED_ERROR, cause: 'At least one source failed to back up' });

    const { code, stderr } = await cli(['--config', configPath, 'run', 'backup', 'app', '--aws', '--type', 'logical', '--poll', '0.001']);

    expect(code).toBe(1);
    const last = stderr.trimEnd().split('\n').pop()!;
    expect(last).toBe(
      `tidemark: execution manual-backup-app FAILED in "${BackupStateNames.runWorker}" [app]: States.TaskFailed: container worker exited with 1; Essential container in task exited [task 0123456789abcdef] (execution ended with ${BACKUPS_FAILED_ERROR})`,
    );
    expect(stderr).toContain(`FAILED ${BackupStateNames.runWorker} [app]: States.TaskFailed`);
  });

  test('drill: sends { source, kind: manual, at } with the time normalised to UTC', async () => {
    stackOutputs({ [StackOutputNames.backupStateMachine]: BACKUP_SM, [StackOutputNames.drillStateMachine]: DRILL_SM });
    serveExecution(backupHistory('succeeded'), { status: 'SUCCEEDED', output: '{}' }, 1);

    const result = await runDrillOnAws(
      parseConfig(readFileSync(configPath, 'utf8'), configPath),
      'app',
      { at: '2026-12-01T09:14:00+01:00', pollMs: 1 },
    );

    expect(result.status).toBe('SUCCEEDED');
    const start = sfn.commandCalls(StartExecutionCommand)[0].args[0].input;
    expect(start.stateMachineArn).toBe(DRILL_SM);
    expect(JSON.parse(start.input!)).toEqual({ source: 'app', kind: 'manual', at: '2026-12-01T08:14:00.000Z' });
  });

  test('fails with one clear line when the stack has no output for the drill state machine', async () => {
    stackOutputs({ [StackOutputNames.backupStateMachine]: BACKUP_SM });

    const { code, stderr } = await cli(['--config', configPath, 'run', 'drill', 'app', '--aws']);

    expect(code).toBe(1);
    expect(stderr).toBe(
      `tidemark: stack ${STACK} in ${REGION} has no output DrillStateMachineArn: deploy this version of Tidemark to it (npx cdk deploy), or name the right stack with --stack\n`,
    );
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  test('fails with one clear line when the stack does not exist, and --stack names another', async () => {
    cfn.on(DescribeStacksCommand).rejects(Object.assign(new Error('Stack with id Other does not exist'), { name: 'ValidationError' }));

    const { code, stderr } = await cli(['--config', configPath, 'run', 'backup', 'app', '--aws', '--stack', 'Other']);

    expect(code).toBe(1);
    expect(stderr).toBe(`tidemark: stack Other in ${REGION} does not exist: deploy it (npx cdk deploy) or name the right one with --stack\n`);
    expect(cfn.commandCalls(DescribeStacksCommand)[0].args[0].input.StackName).toBe('Other');
  });

  test('fails before anything starts: without --aws, a bad --at, an unknown source', async () => {
    stackOutputs({ [StackOutputNames.backupStateMachine]: BACKUP_SM, [StackOutputNames.drillStateMachine]: DRILL_SM });
    const noAws = await cli(['--config', configPath, 'run', 'backup', 'app']);
    expect(noAws).toMatchObject({ code: 2, stderr: expect.stringMatching(/^tidemark: run backup needs --aws .*tidemark backup <source>\n$/) });
    const badAt = await cli(['--config', configPath, 'run', 'drill', 'app', '--aws', '--at', '2026-12-01T08:00:00']);
    expect(badAt).toMatchObject({ code: 2, stderr: expect.stringMatching(/--at must be latest, random or an ISO time with a zone/) });
    const unknown = await cli(['--config', configPath, 'run', 'backup', 'nope', '--aws']);
    expect(unknown).toMatchObject({ code: 2, stderr: "tidemark: unknown source 'nope' (configured: app)\n" });
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  test('follow: attaches to a running execution by ARN (its region), starts nothing, reads no stack', async () => {
    serveExecution(backupHistory('failed'), { status: 'FAILED', error: BACKUPS_FAILED_ERROR }, 2);

    const { code, stderr } = await cli(['run', 'follow', EXECUTION, '--aws', '--poll', '0.001']);

    expect(code).toBe(1);
    expect(stderr.trimEnd().split('\n').pop()).toMatch(/^tidemark: execution manual-backup-app FAILED in "Run backup worker" \[app\]: States\.TaskFailed: container worker exited with 1/);
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
    expect(cfn.commandCalls(DescribeStacksCommand)).toHaveLength(0);
    expect(await sfn.commandCalls(DescribeExecutionCommand)[0].thisValue.config.region()).toBe(REGION);

    const bad = await cli(['run', 'follow', 'manual-backup-app', '--aws']);
    expect(bad).toMatchObject({ code: 2, stderr: expect.stringMatching(/^tidemark: not an execution ARN: 'manual-backup-app'/) });
  });

  test('an abort stops following, says the execution keeps running, and never stops it', async () => {
    stackOutputs({ [StackOutputNames.backupStateMachine]: BACKUP_SM });
    serveExecution(backupHistory('succeeded'), { status: 'SUCCEEDED' }, 1000);
    const controller = new AbortController();
    const lines: string[] = [];
    const config = parseConfig(readFileSync(configPath, 'utf8'), configPath);

    const running = runBackupOnAws(config, 'app', {
      pollMs: 5,
      signal: controller.signal,
      watcher: {
        line: (l) => lines.push(l.text),
        status: () => {
          if (sfn.commandCalls(DescribeExecutionCommand).length === 3) controller.abort(new Error('interrupted by SIGINT'));
        },
      },
    });

    await expect(running).rejects.toThrow('interrupted by SIGINT');
    expect(lines.pop()).toBe(
      `stopped following; the execution keeps running. Follow it again: tidemark run follow ${EXECUTION} --aws; stop it: aws stepfunctions stop-execution --execution-arn ${EXECUTION}`,
    );
    expect(sfn.commandCalls(StopExecutionCommand)).toHaveLength(0);
  });
});

describe('ExecutionNarrator (pure)', () => {
  test('however the history arrives — in chunks, repeated, pages out of order — it narrates each event once, in order', () => {
    const events = backupHistory('failed');
    const reference = new ExecutionNarrator();
    const expected = reference.add(events).map((l) => l.text);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(events.length), fc.nat(events.length)), { minLength: 1, maxLength: 8 }),
        (cuts) => {
          // GIVEN growing prefixes of the history, each re-delivered with overlap and shuffled
          const narrator = new ExecutionNarrator();
          const lines: string[] = [];
          let seen = 0;
          for (const [a, b] of cuts) {
            const upTo = Math.max(seen, Math.min(events.length, Math.max(a, b)));
            const page = events.slice(Math.max(0, seen - 2), upTo);
            lines.push(...narrator.add(page.reverse()).map((l) => l.text));
            seen = upTo;
          }
          lines.push(...narrator.add(events).map((l) => l.text));
          // THEN the same lines as reading it all at once
          expect(lines).toEqual(expected);
          expect(narrator.explain().first?.state).toBe(BackupStateNames.runWorker);
        },
      ),
    );
  });

  test('a failure a retry recovered from does not explain the outcome; the source that stayed failed does', () => {
    // GIVEN two iterations: app's worker fails once and succeeds on the retry, orders' fails for good
    nextId = 0;
    const app = { source: 'app', type: 'logical' };
    const orders = { source: 'orders', type: 'logical' };
    const ecsFailure = (code: number) => ({ taskFailedEventDetails: { resourceType: 'ecs', resource: 'runTask.sync', error: 'States.TaskFailed', cause: JSON.stringify({ Containers: [{ Name: 'worker', ExitCode: code }] }) } });
    const events = [
      ev('ExecutionStarted', 0, 0, { executionStartedEventDetails: { input: '{}' } }),
      ev('MapStateEntered', 0, 1, entered(BackupStateNames.eachSource)), // 2
      ev('TaskStateEntered', 1, 2, entered(BackupStateNames.runWorker, app)), // 3
      ev('TaskStateEntered', 1, 2, entered(BackupStateNames.runWorker, orders)), // 4
      ev('TaskScheduled', 1, 3), // 5
      ev('TaskScheduled', 1, 4), // 6
      ev('TaskFailed', 20, 5, ecsFailure(2)), // 7: app, retried below
      ev('TaskScheduled', 200, 7), // 8
      ev('TaskFailed', 30, 6, ecsFailure(1)), // 9: orders, caught
      ev('TaskStateExited', 30, 9, exited(BackupStateNames.runWorker)), // 10
      ev('TaskSucceeded', 300, 8, { taskSucceededEventDetails: { resourceType: 'ecs', resource: 'runTask.sync', output: '{}' } }), // 11: app's retry worked
      ev('TaskStateExited', 300, 11, exited(BackupStateNames.runWorker)),
      ev('ExecutionFailed', 301, 12, { executionFailedEventDetails: { error: BACKUPS_FAILED_ERROR, cause: '' } }),
    ];

    // WHEN
    const narrator = new ExecutionNarrator();
    narrator.add(events);

    // THEN
    expect(narrator.explain().first).toEqual({ state: BackupStateNames.runWorker, source: 'orders', error: 'States.TaskFailed', cause: 'container worker exited with 1' });
    expect(narrator.explain().all.map((f) => f.source ?? f.error)).toEqual(['app', 'orders', BACKUPS_FAILED_ERROR]);
  });

  test('counts Map iterations for the progress bar: started (MapStateStarted length) and ended', () => {
    const narrator = new ExecutionNarrator();
    const events = backupHistory('succeeded');
    narrator.add(events.slice(0, 5));
    expect(narrator.iterations).toEqual({ done: 0, total: 1 });
    narrator.add(events);
    expect(narrator.iterations).toEqual({ done: 1, total: 1 });
    expect(narrator.running).toEqual([BackupStateNames.allSucceeded]);
  });

  test('a cause is always one line of bounded length', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 2000 }), fc.json({ maxDepth: 3 })), (cause) => {
        const summary = summarizeCause(cause);
        expect(summary).not.toMatch(/[\n\r]/);
        expect(summary.length).toBeLessThanOrEqual(301);
      }),
    );
  });

  test('Lambda causes become `type: message`', () => {
    expect(summarizeCause(JSON.stringify({ errorType: 'UsageError', errorMessage: 'record-result: event.type must be one of …', trace: ['a', 'b'] }))).toBe(
      'UsageError: record-result: event.type must be one of …',
    );
  });
});

describe('TerminalExecutionWatcher', () => {
  const stream = (isTTY: boolean, columns = 60) => {
    const chunks: string[] = [];
    return { chunks, stream: { isTTY, columns, write: (c: string) => (chunks.push(c), true) } as unknown as NodeJS.WritableStream & { isTTY: boolean } };
  };

  test('on a terminal: a live status line, cleared before each state line and redrawn after it', () => {
    const { chunks, stream: tty } = stream(true);
    const watcher = new TerminalExecutionWatcher(tty);
    watcher.status({ running: ['Run backup worker [app]'], completedStates: 2, iterations: { done: 0, total: 0 }, elapsedSeconds: 75 });
    watcher.line({ kind: 'exited', text: '08:01:35  ok Run backup worker [app]  1m34s' });
    watcher.done();

    expect(chunks).toEqual([
      '\r\x1b[K',
      '| Run backup worker [app] · 2 states done · 1m15s',
      '\r\x1b[K',
      '08:01:35  ok Run backup worker [app]  1m34s\n',
      '| Run backup worker [app] · 2 states done · 1m15s',
      '\r\x1b[K',
    ]);
  });

  test('with a Map: a bar of the iterations ended (a backup\'s sources)', () => {
    const { chunks, stream: tty } = stream(true, 120);
    const watcher = new TerminalExecutionWatcher(tty);
    watcher.status({ running: ['Run backup worker [orders]'], completedStates: 7, iterations: { done: 1, total: 4 }, elapsedSeconds: 5 });
    expect(chunks.pop()).toBe(`[${'█'.repeat(5)}${'░'.repeat(15)}] 1/4 Run backup worker [orders] · 7 states done · 0m05s`);
    // and it never outgrows the terminal: one line, redrawn in place
    const narrow = stream(true, 30);
    new TerminalExecutionWatcher(narrow.stream).status({ running: ['Run backup worker [orders]'], completedStates: 7, iterations: { done: 1, total: 4 }, elapsedSeconds: 5 });
    expect(narrow.chunks.pop()).toHaveLength(29);
  });

  test('on a pipe: state lines only, no control characters', () => {
    const { chunks, stream: pipe } = stream(false);
    const watcher = new TerminalExecutionWatcher(pipe);
    watcher.status({ running: [], completedStates: 0, iterations: { done: 1, total: 2 }, elapsedSeconds: 1 });
    watcher.line({ kind: 'entered', text: '08:00:00  > Back up each source' });
    watcher.done();
    expect(chunks).toEqual(['08:00:00  > Back up each source\n']);
  });
});
