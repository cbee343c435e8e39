import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  StartExecutionCommand,
  type DescribeExecutionCommandOutput,
  type HistoryEvent,
  type SFNClient,
} from '@aws-sdk/client-sfn';
import { sleep, throwIfAborted } from '../abort';
import { awsCallFailed, isTransientAwsError } from './aws-failure';
import { ExecutionNarrator, type ExecutionFailure, type NarratedLine } from './execution-history';

/** What following an execution produced: its end state and, when it did not succeed, why. */
export interface ExecutionOutcome {
  readonly executionArn: string;
  readonly name: string;
  readonly status: string;
  readonly startedAt: string;
  readonly stoppedAt?: string;
  readonly seconds: number;
  /** The execution's output (parsed JSON), when it succeeded. */
  readonly output?: unknown;
  /** The failure that explains it (the first failed state), when it did not succeed. */
  readonly failure?: ExecutionFailure;
  /** The error the execution itself ended with (e.g. Tidemark.BackupsFailed). */
  readonly executionError?: ExecutionFailure;
}

/** Between polls: what runs now, how much is done, for how long. */
export interface ExecutionStatus {
  readonly running: readonly string[];
  readonly completedStates: number;
  /** Map iterations (a backup's sources) ended of those started; total 0 when there is no Map. */
  readonly iterations: { readonly done: number; readonly total: number };
  readonly elapsedSeconds: number;
}

/** What the follower reports while it waits: each narrated line, and a status for a live line on a TTY. */
export interface ExecutionWatcher {
  line(line: NarratedLine): void;
  /** Between polls: what is running now. */
  status?(status: ExecutionStatus): void;
}

export interface FollowOptions {
  /** Between DescribeExecution polls. @default 5000 */
  readonly pollMs?: number;
  /** Stops following (the execution keeps running). */
  readonly signal?: AbortSignal;
  readonly watcher?: ExecutionWatcher;
  /** Consecutive transient failures (throttling, network) tolerated before giving up. @default 10 */
  readonly maxTransientFailures?: number;
}

/** Starts an execution with a recognisable name, so it can be found in the console next to scheduled ones. */
export async function startExecution(
  client: SFNClient,
  stateMachineArn: string,
  input: unknown,
  name: string,
  signal?: AbortSignal,
): Promise<{ executionArn: string; startedAt: Date }> {
  try {
    const started = await client.send(new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(input) }), { abortSignal: signal });
    return { executionArn: started.executionArn!, startedAt: started.startDate ?? new Date() };
  } catch (e) {
    throwIfAborted(signal);
    throw awsCallFailed(`starting ${stateMachineArn.split(':').pop()}`, e);
  }
}

/** Execution names: 1–80 of [A-Za-z0-9_-], unique for 90 days per state machine. */
export function executionName(parts: readonly string[], at: Date = new Date()): string {
  const stamp = at.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const suffix = Math.random().toString(16).slice(2, 8).padEnd(6, '0');
  const head = parts.join('-').replace(/[^A-Za-z0-9_-]/g, '-');
  return `${head.slice(0, 80 - stamp.length - suffix.length - 2)}-${stamp}-${suffix}`;
}

/**
 * Polls an execution until it is no longer running, narrating its history as it goes. Each poll
 * is one DescribeExecution and, newest first, just the history pages holding events not yet seen,
 * so a long execution costs no more per poll than a short one.
 *
 * An abort stops the following only: the execution is not stopped (that needs StopExecution,
 * deliberately not something Ctrl-C does to a backup).
 */
export async function followExecution(client: SFNClient, executionArn: string, options: FollowOptions = {}): Promise<ExecutionOutcome> {
  const pollMs = options.pollMs ?? 5000;
  const maxTransient = options.maxTransientFailures ?? 10;
  const narrator = new ExecutionNarrator();
  let transient = 0;
  for (;;) {
    let described: DescribeExecutionCommandOutput;
    try {
      described = await client.send(new DescribeExecutionCommand({ executionArn }), { abortSignal: options.signal });
      // After the status: an execution that has just ended has all its events by now.
      for (const line of narrator.add(await newEvents(client, executionArn, narrator.lastEventId, options.signal))) options.watcher?.line(line);
      transient = 0;
    } catch (e) {
      throwIfAborted(options.signal);
      if (!isTransientAwsError(e) || ++transient > maxTransient) throw awsCallFailed(`following execution ${executionArn.split(':').pop()}`, e);
      await sleep(pollMs, options.signal);
      continue;
    }
    const startedAt = described.startDate ?? new Date();
    if (described.status !== 'RUNNING' && described.status !== 'PENDING_REDRIVE') {
      const stoppedAt = described.stopDate;
      const { first, execution } = narrator.explain();
      const ownError: ExecutionFailure | undefined = described.error ? { error: described.error, cause: described.cause ?? '' } : undefined;
      return {
        executionArn,
        name: described.name ?? executionArn.split(':').pop()!,
        status: described.status ?? 'UNKNOWN',
        startedAt: startedAt.toISOString(),
        ...(stoppedAt ? { stoppedAt: stoppedAt.toISOString() } : {}),
        seconds: Math.max(0, ((stoppedAt ?? new Date()).getTime() - startedAt.getTime()) / 1000),
        ...(described.status === 'SUCCEEDED' ? { output: parseOutput(described.output) } : {}),
        ...(described.status !== 'SUCCEEDED' ? { failure: first ?? ownError, executionError: execution ?? ownError } : {}),
      };
    }
    options.watcher?.status?.({
      running: narrator.running,
      completedStates: narrator.completedStates,
      iterations: narrator.iterations,
      elapsedSeconds: Math.max(0, (Date.now() - startedAt.getTime()) / 1000),
    });
    await sleep(pollMs, options.signal);
  }
}

/** History events newer than `after`, read newest first until a page reaches what was seen. */
async function newEvents(client: SFNClient, executionArn: string, after: number, signal?: AbortSignal): Promise<HistoryEvent[]> {
  const fresh: HistoryEvent[] = [];
  let nextToken: string | undefined;
  do {
    const page = await client.send(
      new GetExecutionHistoryCommand({ executionArn, reverseOrder: true, maxResults: 1000, includeExecutionData: true, nextToken }),
      { abortSignal: signal },
    );
    const events = page.events ?? [];
    fresh.push(...events.filter((e) => (e.id ?? 0) > after));
    if (events.some((e) => (e.id ?? 0) <= after)) break;
    nextToken = page.nextToken;
  } while (nextToken);
  return fresh.reverse();
}

function parseOutput(output: string | undefined): unknown {
  if (output === undefined) return undefined;
  try {
    return JSON.parse(output);
  } catch {
    return output;
  }
}
