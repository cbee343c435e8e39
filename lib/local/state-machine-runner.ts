import { randomUUID } from 'node:crypto';
import { ExecutionAbortedError, ExecutionError, StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';

/**
 * Runs a synthesized state machine locally on aws-local-stepfunctions. Tasks are resolved by
 * integration, not by state name: ECS RunTask becomes `resolvers.ecsRunTask` (by default a child
 * process of the worker entry), a Lambda becomes `resolvers.lambda` (its handler, in process), an
 * SNS publish becomes `resolvers.snsPublish`. Errors keep Step Functions semantics, so Retry and
 * Catch behave as on AWS; waits and retry intervals are skipped unless asked for.
 */

// aws-local-stepfunctions 3 calls Promise.withResolvers (Node 22+). On Node 20 every Task would
// fail with a TypeError, which Retry/Catch then treat as a task failure — quietly wrong results.
if (typeof (Promise as { withResolvers?: unknown }).withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers<T>(this: PromiseConstructor) {
      let resolve!: (value: T | PromiseLike<T>) => void;
      let reject!: (reason?: unknown) => void;
      const promise = new this<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
  });
}

/**
 * A task failure with a Step Functions error name. Thrown by a resolver, it drives Retry and Catch
 * exactly like the service would: `new LocalTaskError('States.TaskFailed', { exitCode: 3 })`.
 */
export class LocalTaskError extends Error {
  /** The Step Functions error name (`States.TaskFailed`, `ECS.AmazonECSException`, …). */
  readonly error: string;
  /** The Cause as Step Functions reports it: a string, JSON for structured causes. */
  readonly causeText: string;

  constructor(error: string, cause?: unknown) {
    const causeText = cause === undefined ? '' : typeof cause === 'string' ? cause : JSON.stringify(cause);
    super(causeText);
    // aws-local-stepfunctions matches ErrorEquals against `name` and reports `message` as Cause.
    this.name = error;
    this.error = error;
    this.causeText = causeText;
  }
}

/** What an `ecs:runTask.sync` Task asks for, taken from its processed Parameters. */
export interface RunTaskRequest {
  /** State that runs the task. */
  readonly state: string;
  /** Container the override is for (the worker). */
  readonly container?: string;
  /** `Overrides.ContainerOverrides[0].Command`: the worker's argv. */
  readonly command: string[];
  /** `Overrides.ContainerOverrides[0].Environment` as a map (empty when none). */
  readonly environment: Record<string, string>;
  readonly cluster?: string;
  readonly taskDefinition?: string;
  /** The processed Parameters, as the service would receive them. */
  readonly parameters: Record<string, unknown>;
  /** Aborted when the state times out or the execution ends: stop the task. */
  readonly signal: AbortSignal;
}

/** What an `sns:publish` Task asks for. */
export interface SnsPublishRequest {
  readonly state: string;
  readonly topicArn?: string;
  readonly subject?: string;
  readonly message: string;
}

/** What an `aws-sdk:<service>:<action>` Task asks for (e.g. `rds` `restoreDBInstanceToPointInTime`). */
export interface AwsSdkRequest {
  readonly state: string;
  readonly service: string;
  /** The action as the ARN spells it (camelCase: `describeDBInstances`). */
  readonly action: string;
  /** The processed Parameters (Step Functions' Java SDK v2 casing: `DbInstanceIdentifier`). */
  readonly parameters: Record<string, unknown>;
  readonly signal: AbortSignal;
}

type Awaitable<T> = T | Promise<T>;

/** Local stand-ins for the integrations a definition uses. Only the ones it uses are required. */
export interface LocalResolvers {
  /**
   * `arn:aws:states:::ecs:runTask.sync`. Return the task description (or nothing for a default
   * one); throw `LocalTaskError('States.TaskFailed', …)` for a task that stopped with an error.
   */
  readonly ecsRunTask?: (request: RunTaskRequest) => Awaitable<unknown>;
  /**
   * A Lambda, by `arn:aws:states:::lambda:invoke` or its ARN. `functionId` is the function name from
   * the ARN: the logical id for a definition from {@link stateMachineDefinition}. Return the
   * handler's result; a thrown error is the function's error.
   */
  readonly lambda?: (functionId: string, payload: unknown) => Awaitable<unknown>;
  /** `arn:aws:states:::sns:publish`. */
  readonly snsPublish?: (request: SnsPublishRequest) => Awaitable<unknown>;
  /**
   * `arn:aws:states:::aws-sdk:<service>:<action>`. Return the response; throw
   * `LocalTaskError('<Service>.<Exception>', …)` (e.g. `Rds.DbInstanceNotFoundException`) for a
   * service error, as Step Functions names them.
   */
  readonly awsSdk?: (request: AwsSdkRequest) => Awaitable<unknown>;
}

export interface RunStateMachineOptions {
  /**
   * Wait in Wait states and between retries as the definition says.
   *
   * @default false - waits and retry intervals are skipped
   */
  readonly realTime?: boolean;
  /**
   * Execution name (`$$.Execution.Name`; also part of `$$.Execution.Id`).
   *
   * @default - `local-` and a random id
   */
  readonly executionName?: string;
  /** Called as each state is entered (progress output); `index` is the Map iteration, if any. */
  readonly onStateEntered?: (state: string, index?: number) => void;
  /**
   * Stops the execution like StopExecution: no further state runs (no Catch either), running tasks
   * see their signal abort; the result is ABORTED. What the tasks provisioned is the caller's to
   * tear down, as on AWS.
   */
  readonly signal?: AbortSignal;
}

/** One entry of the execution history, simplified from aws-local-stepfunctions' event log. */
export interface LocalHistoryEvent {
  readonly type: string;
  readonly state?: string;
  /** Map iteration index, for events inside a Map. */
  readonly index?: number;
  readonly error?: string;
  readonly cause?: string;
  readonly timestamp: number;
}

export interface LocalExecutionResult {
  readonly status: 'SUCCEEDED' | 'FAILED' | 'ABORTED';
  readonly output?: unknown;
  /** Error name of a failed execution (the Fail state's Error, or the task's). */
  readonly error?: string;
  readonly cause?: string;
  /** Names of the states entered, in order (states inside a Map appear once per iteration). */
  readonly events: string[];
  /** Entered, failed, retried, caught and exited events with their errors. */
  readonly history: LocalHistoryEvent[];
}

type StateJson = Record<string, unknown> & { Type?: string; Resource?: string; TimeoutSeconds?: number };
type MachineJson = { States?: Record<string, StateJson> };

/** Longest timer Node can arm (2^31-1 ms); anything longer fires at once. */
const MAX_TIMEOUT_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/**
 * Runs `definition` with `input`. Each Task state is bound to a resolver by its integration; a Task
 * of an integration without a resolver fails before anything runs, naming the integration.
 */
export async function runStateMachine(
  definition: object,
  input: unknown,
  resolvers: LocalResolvers,
  options: RunStateMachineOptions = {},
): Promise<LocalExecutionResult> {
  const prepared = asJson(definition) as MachineJson;
  const executionName = options.executionName ?? `local-${randomUUID()}`;
  const execution = new AbortController();
  const handlers: Record<string, (input: unknown) => Promise<unknown>> = {};
  const waits: Record<string, number> = {};
  const retries: Record<string, number> = {};

  forEachState(prepared, (name, state) => {
    if (state.Type === 'Wait' && !options.realTime) waits[name] = 0;
    if (Array.isArray(state.Retry) && !options.realTime) retries[name] = 0;
    if (state.Type !== 'Task') return;
    if (name in handlers) throw new Error(`state machine: two Task states are named "${name}"; local handlers are bound by state name`);
    // Step Functions has no default task timeout; aws-local-stepfunctions assumes 60 s.
    if (state.TimeoutSeconds === undefined && state.TimeoutSecondsPath === undefined) state.TimeoutSeconds = MAX_TIMEOUT_SECONDS;
    else if (typeof state.TimeoutSeconds === 'number') state.TimeoutSeconds = Math.min(state.TimeoutSeconds, MAX_TIMEOUT_SECONDS);
    handlers[name] = bindTask(name, state, resolvers, execution.signal);
  });

  const machine = validatedMachine(prepared);
  const run = machine.run(asJson(input) as never, {
    overrides: { taskResourceLocalHandlers: handlers as never, waitTimeOverrides: waits, retryIntervalOverrides: retries },
    context: {
      Execution: {
        Id: `arn:aws:states:local:000000000000:execution:local:${executionName}`,
        Name: executionName,
        RoleArn: 'arn:aws:iam::000000000000:role/local',
      },
      StateMachine: { Id: 'arn:aws:states:local:000000000000:stateMachine:local', Name: 'local' },
    },
  });

  const history: LocalHistoryEvent[] = [];
  const logged = (async () => {
    for await (const event of run.eventLogs) {
      const e = event as { type: string; timestamp: number; state?: { name: string }; index?: number; Error?: string; Cause?: unknown };
      if (!e.state) continue;
      const entry: LocalHistoryEvent = {
        type: e.type,
        state: e.state.name,
        timestamp: e.timestamp,
        ...(e.index !== undefined ? { index: e.index } : {}),
        ...(e.Error !== undefined ? { error: e.Error, cause: causeString(e.Cause) } : {}),
      };
      history.push(entry);
      if (e.type === 'StateEntered') options.onStateEntered?.(e.state.name, e.index);
    }
  })();

  const stop = () => {
    run.abort();
    execution.abort();
  };
  if (options.signal?.aborted) stop();
  else options.signal?.addEventListener('abort', stop, { once: true });

  let result: Omit<LocalExecutionResult, 'events' | 'history'>;
  try {
    result = { status: 'SUCCEEDED', output: await run.result };
  } catch (e) {
    if (e instanceof ExecutionAbortedError) {
      const reason = options.signal?.reason as unknown;
      result = { status: 'ABORTED', error: 'States.Aborted', cause: reason instanceof Error ? reason.message : 'the execution was stopped' };
    } else if (!(e instanceof ExecutionError)) throw e;
    else {
      const failure = e.cause as Error;
      result = { status: 'FAILED', error: failure.name, cause: failure.message };
    }
  } finally {
    options.signal?.removeEventListener('abort', stop);
    execution.abort();
  }
  await logged;
  // Events of Map iterations reach the root log asynchronously; their timestamps keep the order.
  history.sort((a, b) => a.timestamp - b.timestamp);
  return { ...result, events: history.filter((h) => h.type === 'StateEntered').map((h) => h.state!), history };
}

/**
 * Definitions already validated, by their JSON. asl-validator compiles its schema on every
 * validation (about half a second here), and a test runs the same definition many times.
 */
const validDefinitions = new Set<string>();

function validatedMachine(definition: MachineJson): StateMachine {
  const key = JSON.stringify(definition);
  if (validDefinitions.has(key)) {
    return new StateMachine(definition as unknown as StateMachineDefinition, { validationOptions: { noValidate: true } });
  }
  const machine = new StateMachine(definition as unknown as StateMachineDefinition); // throws naming what is invalid
  if (validDefinitions.size >= 32) validDefinitions.clear();
  validDefinitions.add(key);
  return machine;
}

/** Every state of the machine, including those of Map item processors and Parallel branches. */
function forEachState(machine: MachineJson, visit: (name: string, state: StateJson) => void): void {
  for (const [name, state] of Object.entries(machine.States ?? {})) {
    visit(name, state);
    for (const nested of [state.ItemProcessor, state.Iterator, ...(Array.isArray(state.Branches) ? state.Branches : [])]) {
      if (nested && typeof nested === 'object') forEachState(nested as MachineJson, visit);
    }
  }
}

function bindTask(name: string, state: StateJson, resolvers: LocalResolvers, executionSignal: AbortSignal): (input: unknown) => Promise<unknown> {
  const resource = String(state.Resource ?? '');
  const integration = /^arn:[^:]+:states:::(.+)$/.exec(resource)?.[1];
  const missing = (what: string) =>
    new Error(`state "${name}" uses ${resource} (${what}), but no ${what} resolver was given to runStateMachine`);

  if (integration === 'ecs:runTask.sync') {
    const resolve = resolvers.ecsRunTask;
    if (!resolve) throw missing('ecsRunTask');
    const timeoutMs = (typeof state.TimeoutSeconds === 'number' ? state.TimeoutSeconds : MAX_TIMEOUT_SECONDS) * 1000;
    return guard(name, 'States.TaskFailed', async (parameters) => {
      // The task stops when its state times out or the execution ends, as StopTask would.
      const signal = AbortSignal.any([executionSignal, AbortSignal.timeout(timeoutMs)]);
      const request = runTaskRequest(name, parameters as Record<string, unknown>, signal);
      return asJson((await resolve(request)) ?? runTaskResult(request.container, 0));
    });
  }
  if (integration === 'lambda:invoke') {
    const resolve = resolvers.lambda;
    if (!resolve) throw missing('lambda');
    return guardLambda(name, async (parameters) => {
      const { FunctionName, Payload } = parameters as { FunctionName?: string; Payload?: unknown };
      const payload = await resolve(functionId(String(FunctionName)), Payload === undefined ? {} : Payload);
      return { ExecutedVersion: '$LATEST', Payload: asJson(payload), StatusCode: 200 };
    });
  }
  if (/^arn:[^:]+:lambda:/.test(resource)) {
    const resolve = resolvers.lambda;
    if (!resolve) throw missing('lambda');
    const id = functionId(resource);
    return guardLambda(name, async (payload) => asJson(await resolve(id, payload)));
  }
  if (integration === 'sns:publish') {
    const resolve = resolvers.snsPublish;
    if (!resolve) throw missing('snsPublish');
    return guard(name, 'States.TaskFailed', async (parameters) => {
      const { TopicArn, Subject, Message } = parameters as { TopicArn?: string; Subject?: string; Message?: unknown };
      const request: SnsPublishRequest = {
        state: name,
        ...(TopicArn !== undefined ? { topicArn: TopicArn } : {}),
        ...(Subject !== undefined ? { subject: Subject } : {}),
        message: typeof Message === 'string' ? Message : JSON.stringify(Message),
      };
      return asJson((await resolve(request)) ?? { MessageId: randomUUID() });
    });
  }
  const sdk = /^aws-sdk:([^:]+):(.+)$/.exec(integration ?? '');
  if (sdk) {
    const resolve = resolvers.awsSdk;
    if (!resolve) throw missing('awsSdk');
    const [, service, action] = sdk;
    const timeoutMs = (typeof state.TimeoutSeconds === 'number' ? state.TimeoutSeconds : MAX_TIMEOUT_SECONDS) * 1000;
    return guard(name, 'States.TaskFailed', async (parameters) => {
      const signal = AbortSignal.any([executionSignal, AbortSignal.timeout(timeoutMs)]);
      return asJson(await resolve({ state: name, service, action, parameters: (parameters ?? {}) as Record<string, unknown>, signal }));
    });
  }
  throw new Error(`state "${name}": the integration ${resource} has no local resolver (supported: ecs:runTask.sync, lambda:invoke or a Lambda ARN, sns:publish, aws-sdk:*)`);
}

/** A resolver's error as Step Functions would report it; anything unexpected becomes `fallback`. */
function guard(state: string, fallback: string, call: (input: unknown) => Promise<unknown>): (input: unknown) => Promise<unknown> {
  return async (input) => {
    try {
      return await call(input);
    } catch (e) {
      if (e instanceof LocalTaskError) throw e;
      throw new LocalTaskError(fallback, `${state}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
}

/** A Lambda's error as Step Functions reports it: the error type as Error, the error JSON as Cause. */
function guardLambda(state: string, call: (input: unknown) => Promise<unknown>): (input: unknown) => Promise<unknown> {
  return async (input) => {
    try {
      return await call(input);
    } catch (e) {
      if (e instanceof LocalTaskError) throw e;
      const err = e instanceof Error ? e : new Error(String(e));
      const errorType = err.name || 'Error';
      throw new LocalTaskError(errorType, { errorType, errorMessage: err.message, trace: (err.stack ?? '').split('\n'), state });
    }
  };
}

function runTaskRequest(state: string, parameters: Record<string, unknown>, signal: AbortSignal): RunTaskRequest {
  const overrides = (parameters.Overrides ?? {}) as { ContainerOverrides?: { Name?: string; Command?: unknown; Environment?: { Name: string; Value: string }[] }[] };
  const override = overrides.ContainerOverrides?.[0] ?? {};
  const command = override.Command ?? [];
  if (!Array.isArray(command) || command.some((c) => typeof c !== 'string')) {
    throw new LocalTaskError('ECS.InvalidParameterException', `${state}: Overrides.ContainerOverrides[0].Command is not a list of strings: ${JSON.stringify(command)}`);
  }
  return {
    state,
    ...(override.Name !== undefined ? { container: override.Name } : {}),
    command: command as string[],
    environment: Object.fromEntries((override.Environment ?? []).map((e) => [e.Name, e.Value])),
    ...(typeof parameters.Cluster === 'string' ? { cluster: parameters.Cluster } : {}),
    ...(typeof parameters.TaskDefinition === 'string' ? { taskDefinition: parameters.TaskDefinition } : {}),
    parameters,
    signal,
  };
}

/** The shape of a stopped task as `ecs:runTask.sync` returns it (the fields callers look at). */
export function runTaskResult(container: string | undefined, exitCode: number, taskId: string = randomUUID()): Record<string, unknown> {
  return {
    TaskArn: `arn:aws:ecs:local:000000000000:task/local/${taskId}`,
    LastStatus: 'STOPPED',
    DesiredStatus: 'STOPPED',
    StopCode: 'EssentialContainerExited',
    StoppedReason: 'Essential container in task exited',
    Containers: [{ Name: container ?? 'worker', ExitCode: exitCode, LastStatus: 'STOPPED' }],
  };
}

/** The function name in a Lambda ARN (`…:function:<name>[:qualifier]`), or the name as given. */
function functionId(nameOrArn: string): string {
  const match = /(?:^|:)function:([^:]+)/.exec(nameOrArn);
  return match ? match[1] : nameOrArn;
}

/**
 * A JSON copy made in this module's realm. aws-local-stepfunctions only recurses into objects whose
 * prototype is its own realm's Object.prototype, so an object from elsewhere (structuredClone
 * under jest, a vm context) would have its nested `.$` fields silently left unevaluated.
 */
function asJson(value: unknown): unknown {
  return value === undefined ? null : JSON.parse(JSON.stringify(value));
}

function causeString(cause: unknown): string {
  if (typeof cause === 'string') return cause;
  if (cause instanceof Error) return cause.message;
  return cause === undefined ? '' : JSON.stringify(cause);
}
