import type { HistoryEvent } from '@aws-sdk/client-sfn';

/**
 * Turns a Step Functions execution history into what an operator reads while it runs: one line per
 * state entered, finished or failed, and, when it is over, the failure that explains it. Pure: the
 * caller feeds events (in id order, any number at a time) and prints the lines.
 */

/** One thing that went wrong in the execution, attributed to the state it happened in. */
export interface ExecutionFailure {
  /** The state the failure belongs to (found through the event chain), when there is one. */
  readonly state?: string;
  /** The `source` of that state's input, for a backup's Map iteration. */
  readonly source?: string;
  readonly error: string;
  /** The cause, shortened to one readable line (ECS task and Lambda causes are summarized). */
  readonly cause: string;
}

export interface NarratedLine {
  readonly kind: 'entered' | 'exited' | 'failed' | 'execution';
  readonly text: string;
}

const MAX_CAUSE = 300;

/** The work of a state succeeded: earlier failures of the same state were retried away. */
const RECOVERY_EVENTS = new Set(['TaskSucceeded', 'LambdaFunctionSucceeded', 'ActivitySucceeded']);

interface StateInfo {
  readonly name: string;
  readonly source?: string;
  readonly enteredAt: number;
}

/** A state failure and the StateEntered event it belongs to (a later success there means a retry worked). */
interface RecordedFailure {
  readonly failure: ExecutionFailure;
  readonly enteredId?: number;
  recovered: boolean;
}

export class ExecutionNarrator {
  private readonly byId = new Map<number, HistoryEvent>();
  private readonly failures: RecordedFailure[] = [];
  private lastId = 0;
  /** States entered and not yet exited, by their entered event id: the status line shows them. */
  private readonly open = new Map<number, StateInfo>();
  private statesDone = 0;
  /** Map iterations started (MapStateStarted's length) and ended: a backup's sources. */
  private iterationsTotal = 0;
  private iterationsDone = 0;

  /** Highest event id seen: the next history read can stop there. */
  get lastEventId(): number {
    return this.lastId;
  }

  /** States running right now (a Map runs several), oldest first. */
  get running(): readonly string[] {
    return [...this.open.values()].map((s) => label(s.name, s.source));
  }

  get completedStates(): number {
    return this.statesDone;
  }

  /** Map iterations ended of those started (total 0: no Map so far). */
  get iterations(): { readonly done: number; readonly total: number } {
    return { done: this.iterationsDone, total: this.iterationsTotal };
  }

  /** Adds events (already seen ones are ignored) and returns the lines they make, in order. */
  add(events: readonly HistoryEvent[]): NarratedLine[] {
    const lines: NarratedLine[] = [];
    for (const event of [...events].sort((a, b) => (a.id ?? 0) - (b.id ?? 0))) {
      const id = event.id ?? 0;
      if (id <= this.lastId && this.byId.has(id)) continue;
      this.byId.set(id, event);
      this.lastId = Math.max(this.lastId, id);
      const line = this.narrate(event);
      if (line) lines.push(line);
    }
    return lines;
  }

  /**
   * The failure that explains the outcome: the first failure of a state (the worker's exit, a
   * Lambda's error) rather than the generic error the execution ends with, which is reported too.
   */
  explain(): { readonly first?: ExecutionFailure; readonly execution?: ExecutionFailure; readonly all: readonly ExecutionFailure[] } {
    const states = this.failures.filter((f) => f.failure.state !== undefined);
    const execution = this.failures.find((f) => f.failure.state === undefined)?.failure;
    // A failure a retry recovered from (the same state later succeeded) explains nothing.
    const first = (states.find((f) => !f.recovered) ?? states[0])?.failure ?? execution;
    return { first, execution, all: this.failures.map((f) => f.failure) };
  }

  private narrate(event: HistoryEvent): NarratedLine | undefined {
    const type = event.type ?? '';
    const at = event.timestamp ? new Date(event.timestamp).getTime() : Date.now();
    if (type.endsWith('StateEntered') && event.stateEnteredEventDetails) {
      const name = event.stateEnteredEventDetails.name ?? '?';
      const source = sourceOf(event.stateEnteredEventDetails.input);
      this.open.set(event.id ?? 0, { name, source, enteredAt: at });
      return { kind: 'entered', text: `${clock(at)}  > ${label(name, source)}` };
    }
    if (type.endsWith('StateExited') && event.stateExitedEventDetails) {
      const name = event.stateExitedEventDetails.name ?? '?';
      // A Map's exit chains back through its iterations' states: match the entered event by name.
      const enteredId = this.enteredEventOf(event, name);
      const state = enteredId === undefined ? undefined : this.open.get(enteredId);
      if (enteredId !== undefined) this.open.delete(enteredId);
      this.statesDone++;
      const took = state ? `  ${seconds((at - state.enteredAt) / 1000)}` : '';
      return { kind: 'exited', text: `${clock(at)}  ok ${label(name, state?.source)}${took}` };
    }
    if (type === 'MapStateStarted') this.iterationsTotal += event.mapStateStartedEventDetails?.length ?? 0;
    if (type === 'MapIterationSucceeded' || type === 'MapIterationFailed' || type === 'MapIterationAborted') this.iterationsDone++;
    if (RECOVERY_EVENTS.has(type)) {
      const enteredId = this.enteredEventOf(event);
      for (const f of this.failures) if (enteredId !== undefined && f.enteredId === enteredId) f.recovered = true;
      return undefined;
    }
    const failure = failureDetails(event);
    if (!failure) return undefined;
    if (type.startsWith('Execution')) {
      const f: ExecutionFailure = { error: failure.error, cause: summarizeCause(failure.cause) };
      this.failures.push({ failure: f, recovered: false });
      return { kind: 'execution', text: `${clock(at)}  execution ${type.slice('Execution'.length).toLowerCase()}: ${oneLine(f)}` };
    }
    const enteredId = this.enteredEventOf(event);
    const entered = enteredId === undefined ? undefined : this.byId.get(enteredId)?.stateEnteredEventDetails;
    const f: ExecutionFailure = {
      state: entered?.name ?? failure.state ?? type,
      source: sourceOf(entered?.input),
      error: failure.error,
      cause: summarizeCause(failure.cause),
    };
    this.failures.push({ failure: f, enteredId, recovered: false });
    return { kind: 'failed', text: `${clock(at)}  FAILED ${label(f.state!, f.source)}: ${oneLine(f)}` };
  }

  /**
   * Follows previousEventId back to the StateEntered event the given event belongs to: the first
   * one on the way, or the first of the state `name` when given.
   */
  private enteredEventOf(event: HistoryEvent, name?: string): number | undefined {
    let current: HistoryEvent | undefined = event;
    for (let hops = 0; current && hops < 10_000; hops++) {
      const previous: number | undefined = current.previousEventId;
      if (previous === undefined || previous === 0) return undefined;
      current = this.byId.get(previous);
      const entered = current?.stateEnteredEventDetails;
      if (entered && (name === undefined || entered.name === name)) return previous;
    }
    return undefined;
  }
}

/** `error: cause` as one line, without a trailing colon when there is no cause. */
export function oneLine(f: Pick<ExecutionFailure, 'error' | 'cause'>): string {
  return f.cause ? `${f.error}: ${f.cause}` : f.error;
}

function label(name: string, source: string | undefined): string {
  return source ? `${name} [${source}]` : name;
}

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 19);
}

function seconds(s: number): string {
  if (s < 60) return `${s.toFixed(1)} s`;
  const whole = Math.round(s);
  return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, '0')}s`;
}

/** The `source` of a state's input (a backup iteration's `{ source, type }`, a drill's `{ source, … }`). */
function sourceOf(input: string | undefined): string | undefined {
  if (!input) return undefined;
  try {
    const parsed = JSON.parse(input) as { source?: unknown };
    return typeof parsed?.source === 'string' ? parsed.source : undefined;
  } catch {
    return undefined;
  }
}

/** The error and cause of any failure-kind event (TaskFailed, LambdaFunctionFailed, ExecutionFailed, …). */
function failureDetails(event: HistoryEvent): { error: string; cause: string; state?: string } | undefined {
  for (const [key, value] of Object.entries(event)) {
    if (!key.endsWith('EventDetails') || typeof value !== 'object' || value === null) continue;
    const details = value as { error?: string; cause?: string; state?: string };
    if (details.error === undefined && details.cause === undefined) continue;
    return { error: details.error || event.type || 'error', cause: details.cause ?? '', state: details.state };
  }
  return undefined;
}

/**
 * Causes can be kilobytes: ECS puts the whole task description there, Lambda a JSON error with a
 * stack. Keep what a person acts on: the container's exit code and the stop reason, or the error
 * type and message; anything else is flattened and capped.
 */
export function summarizeCause(cause: string): string {
  const text = cause.trim();
  if (text === '') return '';
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return cap(text);
  }
  const p = parsed as {
    Containers?: { Name?: string; ExitCode?: number; Reason?: string }[];
    StoppedReason?: string;
    StopCode?: string;
    TaskArn?: string;
    errorType?: string;
    errorMessage?: string;
  };
  if (Array.isArray(p?.Containers) || p?.StoppedReason) {
    const containers = (p.Containers ?? [])
      .filter((c) => c.ExitCode !== undefined || c.Reason)
      .map((c) => `container ${c.Name ?? '?'} ${c.ExitCode !== undefined ? `exited with ${c.ExitCode}` : 'stopped'}${c.Reason ? ` (${c.Reason})` : ''}`);
    const task = p.TaskArn ? ` [task ${p.TaskArn.split('/').pop()}]` : '';
    return cap([...containers, p.StoppedReason].filter(Boolean).join('; ') + task);
  }
  if (p?.errorType || p?.errorMessage) return cap(`${p.errorType ?? 'Error'}: ${p.errorMessage ?? ''}`);
  return cap(text);
}

function cap(text: string): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length <= MAX_CAUSE ? flat : `${flat.slice(0, MAX_CAUSE)}…`;
}
