import { recordDrill, type DrillRecordEvent, type DrillRecordOutput } from '../core/commands/drill-record';
import { chooseDrillTarget, type DrillSources, type DrillTargetEvent, type DrillTargetOutput } from '../core/commands/drill-target';
import { tearDownDrill, type DrillProvisioned } from '../core/commands/drill-teardown';
import type { TidemarkConfig } from '../core/config/schema';
import type { DrillReport } from '../core/drill/report';
import { readDrillReport } from '../core/drill/report-store';
import { openStore } from '../core/repository/open-store';
import type { ObjectStore } from '../core/repository/storage';
import { stateMachineDefinition } from './template-definition';
import { startThrowawayMariadb } from './throwaway-mariadb';
import { startThrowawayPostgres } from './throwaway-postgres';
import { LocalTaskError, runStateMachine, type AwsSdkRequest, type LocalExecutionResult, type SnsPublishRequest } from './state-machine-runner';
import { workerProcessResolver } from './worker-process';

/**
 * The drill state machine of a deployment, run on this machine: the definition synthesized from
 * the same constructs as on AWS; ECS RunTask is the worker as a child process (its `drill`,
 * `drill-check`, `drill-cleanup` and `verify` commands), the two drill Lambdas run in process, RDS
 * is a throwaway local cluster, SNS a list. The flow — which path, what is caught, that teardown
 * always runs — is the definition's, not re-implemented here.
 */

/** Logical-id prefixes of the drill functions inside a TidemarkStack ("DrillFunctions/ChooseTarget", "…/Record"). */
const CHOOSE_TARGET_PREFIX = 'DrillFunctionsChooseTarget';
const RECORD_PREFIX = 'DrillFunctionsRecord';

/** A throwaway database standing in for a restored RDS instance. */
export interface LocalInstance {
  readonly host: string;
  readonly port: number;
  stop(): Promise<void>;
}

/** What the local RDS does for a restore: start a throwaway cluster (and fill it, if it can). */
export type StartLocalInstance = (request: { instance: string; action: string; parameters: Record<string, unknown>; signal: AbortSignal }) => Promise<LocalInstance>;

export interface LocalRds {
  /** The `awsSdk` resolver: restoreDBInstance*, describeDBInstances, deleteDBInstance. */
  readonly resolve: (request: AwsSdkRequest) => Promise<unknown>;
  /** Instances restored and not yet deleted. */
  readonly live: () => string[];
  /** Every call, in order: `<action> <instance>`. */
  readonly calls: string[];
  /** Stops whatever is still running (a test's afterEach). */
  stopAll(): Promise<void>;
}

/**
 * RDS as the drill machine uses it, on this machine: a restore starts a throwaway cluster, which is
 * `available` from then on; a delete stops it. Errors are named as Step Functions names RDS's.
 */
export function localRds(start: StartLocalInstance): LocalRds {
  const instances = new Map<string, LocalInstance>();
  const calls: string[] = [];
  const notFound = (id: string) => new LocalTaskError('Rds.DbInstanceNotFoundException', `DBInstance ${id} not found. (Service: Rds, Status Code: 404)`);
  const resolve = async (request: AwsSdkRequest): Promise<unknown> => {
    if (request.service !== 'rds') throw new LocalTaskError('States.TaskFailed', `${request.state}: no local ${request.service} (only rds)`);
    const p = request.parameters;
    const id = String(p.TargetDbInstanceIdentifier ?? p.DbInstanceIdentifier ?? '');
    calls.push(`${request.action} ${id}`);
    switch (request.action) {
      case 'restoreDBInstanceToPointInTime':
      case 'restoreDBInstanceFromDBSnapshot': {
        if (instances.has(id)) throw new LocalTaskError('Rds.DbInstanceAlreadyExistsException', `DB instance ${id} already exists`);
        instances.set(id, await start({ instance: id, action: request.action, parameters: p, signal: request.signal }));
        return { DbInstance: { DbInstanceIdentifier: id, DbInstanceStatus: 'creating' } };
      }
      case 'describeDBInstances': {
        const instance = instances.get(id);
        if (!instance) throw notFound(id);
        return { DbInstances: [{ DbInstanceIdentifier: id, DbInstanceStatus: 'available', Endpoint: { Address: instance.host, Port: instance.port } }] };
      }
      case 'deleteDBInstance': {
        const instance = instances.get(id);
        if (!instance) throw notFound(id);
        instances.delete(id);
        await instance.stop();
        return { DbInstance: { DbInstanceIdentifier: id, DbInstanceStatus: 'deleting' } };
      }
      default:
        throw new LocalTaskError('States.TaskFailed', `${request.state}: rds:${request.action} has no local stand-in`);
    }
  };
  return {
    resolve,
    calls,
    live: () => [...instances.keys()],
    stopAll: async () => {
      const all = [...instances.values()];
      instances.clear();
      await Promise.allSettled(all.map((i) => i.stop()));
    },
  };
}

export interface LocalDrillOptions {
  /** The drill state machine's definition: `stateMachineDefinition(template, 'DrillStateMachine')`. */
  readonly definition: object;
  /** TIDEMARK_CONFIG_JSON for the worker. */
  readonly workerConfigJson: string;
  readonly workerEnv?: Record<string, string>;
  /** The worker: defaultWorkerEntry() (worker-process.ts) by default, a bundle, or a full argv prefix. */
  readonly workerEntry?: string | readonly string[];
  /** The repository, as the Lambdas would open it from TIDEMARK_REPOSITORY_URL. */
  readonly store: ObjectStore;
  /** TIDEMARK_DRILL_SOURCES as the stack would write it. */
  readonly sources: DrillSources;
  /** RDS sources: the local RDS. @default - an RDS step fails, naming the missing stand-in */
  readonly rds?: LocalRds;
  readonly namespace?: string;
  /** A random point of the window, reproducibly (tests). @default Math.random */
  readonly draw?: () => number;
  readonly onWorkerOutput?: (line: string, stream: 'stdout' | 'stderr') => void;
  readonly onStateEntered?: (state: string) => void;
  /**
   * Stops the drill (Ctrl-C, SIGTERM): the execution is stopped like StopExecution on AWS, then torn
   * down the way drill-teardown does it there: running workers are stopped, `drill-cleanup` removes
   * what they left, the local RDS instance is deleted, and the drill is recorded failed.
   */
  readonly signal?: AbortSignal;
}

export interface LocalDrillResult extends LocalExecutionResult {
  /** What drill-record said (absent only when recording itself failed). */
  readonly outcome?: DrillRecordOutput;
  /** The report in the repository, for restore drills. */
  readonly report?: DrillReport;
  /** Every worker argv, in order (drill, checks, cleanup, verify). */
  readonly tasks: readonly string[][];
  readonly notifications: readonly SnsPublishRequest[];
  readonly metrics: readonly Record<string, unknown>[];
}

export async function runDrillLocally(input: DrillTargetEvent, options: LocalDrillOptions): Promise<LocalDrillResult> {
  const notifications: SnsPublishRequest[] = [];
  const metrics: Record<string, unknown>[] = [];
  const tasks: string[][] = [];
  let outcome: DrillRecordOutput | undefined;
  let target: DrillTargetOutput | undefined;
  const running = new Set<Promise<unknown>>();
  const worker = workerProcessResolver({
    ...(options.workerEntry ? { entry: options.workerEntry } : {}),
    env: { ...options.workerEnv, TIDEMARK_CONFIG_JSON: options.workerConfigJson },
    onOutput: options.onWorkerOutput,
  });
  const result = await runStateMachine(
    options.definition,
    input,
    {
      ecsRunTask: (request) => {
        tasks.push(request.command);
        const task = worker(request);
        running.add(task);
        const settled = () => void running.delete(task);
        task.then(settled, settled);
        return task;
      },
      lambda: async (functionId, payload) => {
        if (functionId.startsWith(CHOOSE_TARGET_PREFIX)) {
          target = await chooseDrillTarget(options.store, options.sources, payload as DrillTargetEvent, options.draw ? { draw: options.draw } : {});
          return target;
        }
        if (functionId.startsWith(RECORD_PREFIX)) {
          outcome = await recordDrill(options.store, options.sources, payload as DrillRecordEvent, {
            namespace: options.namespace,
            write: (line) => metrics.push(JSON.parse(line) as Record<string, unknown>),
          });
          return outcome;
        }
        throw new Error(`no local stand-in for the Lambda ${functionId}`);
      },
      snsPublish: (request) => {
        notifications.push(request);
        return { MessageId: `local-${notifications.length}` };
      },
      // The definition always has the RDS states; without a local RDS they fail if reached.
      awsSdk:
        options.rds?.resolve ??
        ((request) => {
          throw new LocalTaskError('States.TaskFailed', `${request.state}: no local RDS was given for ${request.service}:${request.action}`);
        }),
    },
    { onStateEntered: options.onStateEntered, executionName: `drill-${input.source}-${Date.now()}`, ...(options.signal ? { signal: options.signal } : {}) },
  );
  if (result.status === 'ABORTED') {
    // As on AWS: the stopped execution ran no Catch, so teardown comes from outside the machine.
    const provisioned = localProvisioned([...running], worker, tasks, options.rds);
    const teardown = await tearDownDrill(
      options.store,
      options.sources,
      { source: input.source, kind: input.kind, drill: target ?? null, recorded: outcome !== undefined, status: 'ABORTED', error: { Error: result.error, Cause: result.cause } },
      provisioned,
      { namespace: options.namespace, write: (line) => metrics.push(JSON.parse(line) as Record<string, unknown>) },
    );
    outcome ??= teardown.outcome;
  }
  const report = outcome?.report ? await readReport(options.store, outcome.report) : undefined;
  return { ...result, ...(outcome ? { outcome } : {}), ...(report ? { report } : {}), tasks, notifications, metrics };
}

/**
 * What a stopped local drill provisioned: the worker processes (already signalled by the stopped
 * execution; waited for), what a killed worker leaves in its scratch dir (`drill-cleanup`, as the
 * machine's own teardown state runs it), and the local RDS instance.
 */
function localProvisioned(running: Promise<unknown>[], worker: ReturnType<typeof workerProcessResolver>, tasks: string[][], rds: LocalRds | undefined): DrillProvisioned {
  return {
    async stopTasks(drill) {
      await Promise.allSettled(running);
      if (drill.mode === 'task') {
        const command = [...drill.cleanupCommand];
        tasks.push(command);
        await worker({ state: 'drill-teardown', command, environment: {}, parameters: {}, signal: new AbortController().signal });
      }
      return running.length;
    },
    async deleteInstance(_drillId, plan) {
      if (!rds?.live().includes(plan.instance)) return 'absent';
      await rds.resolve({ state: 'drill-teardown', service: 'rds', action: 'deleteDBInstance', parameters: { DbInstanceIdentifier: plan.instance }, signal: new AbortController().signal });
      return 'deleted';
    },
  };
}

async function readReport(store: ObjectStore, key: string): Promise<DrillReport | undefined> {
  return (await readDrillReport(store, key).catch(() => undefined))?.report;
}


export interface ConfiguredDrillOptions {
  /** `latest`, `random` or an ISO time. @default 'latest' */
  readonly at?: string;
  /** The worker entry. @default - defaultWorkerEntry() (worker-process.ts) */
  readonly workerEntry?: string | readonly string[];
  readonly onStateEntered?: (state: string) => void;
  readonly onWorkerOutput?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Ctrl-C / SIGTERM: stop the drill and tear it down (LocalDrillOptions.signal). */
  readonly signal?: AbortSignal;
}

/**
 * `tidemark drill`: the drill machine of a synthesized TidemarkStack template, run on this machine
 * against the config's repository. The Lambdas see the sources exactly as the stack describes them
 * (their TIDEMARK_DRILL_SOURCES); the worker gets the local config. An RDS source is restored into
 * an empty throwaway cluster of its engine: locally there is no RDS backup to fill it from.
 */
export async function runConfiguredDrill(config: TidemarkConfig, source: string, template: object, options: ConfiguredDrillOptions = {}): Promise<LocalDrillResult> {
  const definition = stateMachineDefinition(template, 'DrillStateMachine');
  const sources = drillSourcesOf(template);
  const engine = config.sources[source]?.engine;
  const rds = localRds(async () => {
    const database = new URL(config.sources[source]?.url ?? 'postgres://x/postgres').pathname.slice(1) || 'postgres';
    if (engine === 'mysql') {
      const server = await startThrowawayMariadb();
      return { host: server.host, port: server.port, stop: () => server.stop() };
    }
    const server = await startThrowawayPostgres({ databases: database === 'postgres' ? [] : [database] });
    return { host: server.host, port: server.port, stop: () => server.stop() };
  });
  try {
    return await runDrillLocally(
      { source, kind: 'manual', at: options.at ?? 'latest' },
      {
        definition,
        sources,
        workerConfigJson: JSON.stringify(config),
        store: openStore(config.repository),
        rds,
        ...(options.workerEntry ? { workerEntry: options.workerEntry } : {}),
        ...(options.onStateEntered ? { onStateEntered: options.onStateEntered } : {}),
        ...(options.onWorkerOutput ? { onWorkerOutput: options.onWorkerOutput } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      },
    );
  } finally {
    await rds.stopAll();
  }
}

/** TIDEMARK_DRILL_SOURCES of the drill functions in a synthesized template. */
export function drillSourcesOf(template: object): DrillSources {
  const resources = (template as { Resources?: Record<string, { Type: string; Properties?: { Environment?: { Variables?: Record<string, unknown> } } }> }).Resources ?? {};
  for (const r of Object.values(resources)) {
    const raw = r.Type === 'AWS::Lambda::Function' ? r.Properties?.Environment?.Variables?.TIDEMARK_DRILL_SOURCES : undefined;
    if (typeof raw === 'string') return JSON.parse(raw) as DrillSources;
  }
  throw new Error('the template has no drill function (TIDEMARK_DRILL_SOURCES); is it a TidemarkStack?');
}
