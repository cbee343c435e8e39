/**
 * The worker side of a restore drill (DESIGN.md §7): restore a point into a throwaway instance in
 * the task's own storage, check it, measure RTO and RPO, write the immutable report, tear down.
 *
 * Contract with the drill state machine (lib/infra, drill-sm), unchanged from the brief:
 *   drill <source> --id <drillId> --target latest|<ISO time> [--random] --kind restore|full|manual --started-at <ISO>
 *   drill-cleanup <source> --id <drillId>
 *   drill-check <source> --id <drillId> --endpoint <host:port> --target latest|<ISO> --started-at <ISO>
 *   verify <source>
 * Exit codes: 0 the drill passed; 4 it ran and a check failed (report written); otherwise the
 * TidemarkError's code (a report with `error` is still written once the drill had started).
 * Additions (compatible): a `--random` drill of a physical source lands on the consistent point of
 * a logical backup with recorded checksums when one lies in the window at or before the drawn time,
 * so two independent methods are compared; the report's target is then that point (random: true).
 * drill-check takes an optional --kind (default restore) and writes cleanedUp: false (the RDS
 * instance is the state machine's to delete). Reports go to the repository put-if-absent: the
 * first writer (worker or record step) wins.
 */
import { NEVER_ABORTED, throwIfAborted } from '../abort';
import { sourceConfig } from '../config/load';
import { parseDuration } from '../config/duration';
import type { SourceConfig, TidemarkConfig } from '../config/schema';
import { compareChecksums, describeComparison, TableChecksumsSchema, type TableChecksums } from '../drill/checksums';
import { predictRto, rpoSeconds, rtoSeconds } from '../drill/measure';
import { DRILL_REPORT_FORMAT, type DrillCheck, type DrillReport, type DrillStep, type DrillTarget } from '../drill/report';
import { readDrillReports, writeDrillReport } from '../drill/report-store';
import { cleanupScratch, prepareScratch, scratchDirFor } from '../drill/scratch';
import type { BackupMethod, DrillDatabase, DrillInstance, EngineRun, RestorePlan, RestoredTarget } from '../engines/engine';
import type { RecoveryTarget } from '../engines/recovery-target';
import { methodsFor } from '../engines/registry';
import { BackupNotFound, TidemarkError } from '../errors';
import type { Progress } from '../progress';
import type { Catalog } from '../repository/catalog';
import { backupPrefix } from '../repository/layout';
import type { BackupManifest } from '../repository/manifest';
import { estimateRehydration, isArchiveClass } from '../repository/rehydrate';
import { Repository } from '../repository/repository';
import { runAssertions } from '../drill/assertions';

/** Exit code of a drill that ran to its checks and one of them failed. */
export const DRILL_CHECK_FAILED = 4;

export interface DrillOptions {
  readonly id: string;
  readonly target: DrillTarget;
  /** Which schedule or person started it (`restore`, `full`, `manual`). */
  readonly kind: string;
  /** When the drill started (the state machine's start): RTO is measured from here. */
  readonly startedAt: string;
  readonly progress: Progress;
  readonly signal?: AbortSignal;
  /** Scratch root ($TIDEMARK_SPOOL). @default process.env */
  readonly env?: NodeJS.ProcessEnv;
}

export interface DrillOutcome {
  readonly report: DrillReport;
  readonly exitCode: number;
}

interface Candidate {
  readonly method: BackupMethod;
  readonly id: string;
  readonly reach: string;
}

const recoveryTargetOf = (t: DrillTarget): RecoveryTarget => (t.kind === 'latest' ? { kind: 'latest' } : { kind: 'time', at: t.at });

/** The recovery target that lands exactly on a backup's own consistent point. */
function pointOf(m: BackupManifest): RecoveryTarget {
  if (m.restorePoint.lsn) return { kind: 'lsn', lsn: m.restorePoint.lsn };
  if (m.restorePoint.binlog) return { kind: 'binlog', file: m.restorePoint.binlog.file, position: m.restorePoint.binlog.position };
  return { kind: 'time', at: m.restorePoint.time };
}

function recordedChecksums(m: BackupManifest): TableChecksums | undefined {
  const parsed = TableChecksumsSchema.safeParse((m.details as { tableChecksums?: unknown }).tableChecksums);
  return parsed.success ? parsed.data : undefined;
}

/** Of the methods with drill support and backups, the one that restores closest to the target (the first on a tie). */
async function chooseMethod(run: EngineRun, config: SourceConfig, catalog: Catalog, at: RecoveryTarget): Promise<Candidate | undefined> {
  let best: Candidate | undefined;
  for (const registration of methodsFor(config)) {
    if (!catalog.backups.some((m) => m.details.kind === registration.id)) continue;
    const method = await registration.load();
    if (!method.drill) continue;
    const reach = await method.drill.reach(run, catalog, at);
    if (reach !== undefined && (!best || reach > best.reach)) best = { method, id: registration.id, reach };
  }
  return best;
}

/**
 * A backup of another method whose recorded checksums the chosen method can be checked against:
 * its consistent point reachable by the chosen method, at or before the target.
 */
async function crossCheckBackup(run: EngineRun, catalog: Catalog, chosen: Candidate, target: DrillTarget): Promise<BackupManifest | undefined> {
  const limit = target.kind === 'time' ? target.at : '9999';
  const others = catalog.backups.filter((m) => m.details.kind !== chosen.id && m.restorePoint.time <= limit && recordedChecksums(m)).reverse();
  for (const m of others) {
    if ((await chosen.method.drill!.reach(run, catalog, pointOf(m))) !== undefined) return m;
  }
  return undefined;
}

/** Cold objects of the chain, as S3 would have to rehydrate them first (seconds, the slow end of Standard retrieval). */
async function rehydrationSeconds(repository: Repository, source: string, chain: readonly BackupManifest[]): Promise<number> {
  const cold: { bytes: number; storageClass: 'GLACIER' | 'DEEP_ARCHIVE' }[] = [];
  for (const m of chain) {
    const { objects } = await repository.store.list(backupPrefix(source, m.id));
    for (const o of objects) if (isArchiveClass(o.storageClass)) cold.push({ bytes: o.size, storageClass: o.storageClass });
  }
  return cold.length === 0 ? 0 : estimateRehydration(cold, 'Standard').maxHours * 3600;
}

/** The RTO drill history and the chain's size predict; the recent past predicts best (a year of daily drills need not all count). */
async function predictedRto(repository: Repository, source: string, method: string, chain: readonly BackupManifest[]): Promise<number | undefined> {
  const bytes = chain.reduce((n, m) => n + m.storedBytes, 0);
  const [history, rehydration] = await Promise.all([readDrillReports(repository.store, source, { newest: 100 }), rehydrationSeconds(repository, source, chain)]);
  return predictRto(history.filter((r) => r.method === method).slice(-30), bytes, rehydration)?.seconds;
}

export async function runDrill(config: TidemarkConfig, source: string, options: DrillOptions): Promise<DrillOutcome> {
  const { progress, id } = options;
  const signal = options.signal ?? NEVER_ABORTED;
  const src = sourceConfig(config, source);
  const scratch = scratchDirFor(id, options.env);
  const checks: DrillCheck[] = [];
  let target = options.target;
  let method = '';
  let plan: RestorePlan | undefined;
  let restored: RestoredTarget | undefined;
  let prediction: Promise<number | undefined> | undefined;
  let rto: number | undefined;
  let rpo: number | undefined;
  let error: TidemarkError | Error | undefined;
  let cleanedUp = false;
  let instance: DrillInstance | undefined;
  let db: DrillDatabase | undefined;
  let scratchMade = false;
  let repository: Repository | undefined;
  // Where the RTO goes: each phase's seconds, in order (the report's `steps`).
  const steps: DrillStep[] = [{ name: 'start (machine, worker)', seconds: secondsBetween(Date.parse(options.startedAt), Date.now()) }];
  let stepFrom = Date.now();
  const step = (name: string) => {
    const now = Date.now();
    steps.push({ name, seconds: secondsBetween(stepFrom, now) });
    stepFrom = now;
  };

  try {
    repository = await Repository.open(config);
    // A local key's derivation (scrypt, on the thread pool) runs while the catalog is read and the
    // instance starts: backups wrap their data keys with the marker's salt, so the plan's openBackup
    // finds the derived key cached. With KMS this is one Decrypt the plan does not reuse (one call
    // per drill). Its answer is not used: a wrong key fails in the plan, with its own message.
    const keyReady = repository.keyOpensMarker();
    const run: EngineRun = { repository, source, config: src, compression: config.compression, progress, signal };
    const catalog = await repository.catalog(source);
    let at = recoveryTargetOf(target);
    let chosen = await chooseMethod(run, src, catalog, at);
    const drawnAt = target.kind === 'time' && target.random ? target.at : undefined;
    if (!chosen && drawnAt) {
      // A random time no method reaches (no continuous archive): the newest backup at or before it.
      const before = catalog.backups.filter((m) => m.restorePoint.time <= drawnAt).pop();
      if (before) {
        at = { kind: 'backup', id: before.id };
        chosen = await chooseMethod(run, src, catalog, at);
        target = { kind: 'time', at: before.restorePoint.time, random: true };
        progress.note(`drill target: no continuous archive reaches ${drawnAt}; backup ${before.id} (${before.restorePoint.time}) is the newest point before it`);
      }
    }
    if (!chosen) throw new BackupNotFound(`source '${source}' has no backup a drill can restore to ${target.kind === 'latest' ? 'its newest point' : target.at} (see: tidemark list ${source})`);
    method = chosen.id;

    // A random point of a physical window lands on a logical backup's point when there is one: then
    // the restored data can be compared with checksums recorded by an independent method.
    let crossCheck: BackupManifest | undefined;
    const drawn = target;
    if (drawn.kind === 'time' && (drawn.random || catalog.backups.some((m) => m.restorePoint.time === drawn.at && m.details.kind !== chosen.id))) {
      crossCheck = await crossCheckBackup(run, catalog, chosen, drawn);
      if (crossCheck && (drawn.random || crossCheck.restorePoint.time === drawn.at)) {
        at = pointOf(crossCheck);
        target = { kind: 'time', at: crossCheck.restorePoint.time, ...(drawn.random ? { random: true } : {}) };
        progress.note(`drill target: the consistent point of ${crossCheck.details.kind} backup ${crossCheck.id} (${crossCheck.restorePoint.time}), to compare with its recorded checksums`);
      } else crossCheck = undefined;
    }

    step('catalog, target');
    await prepareScratch(scratch);
    scratchMade = true;
    progress.note(`drill ${id}: ${method} restore of '${source}' to ${target.kind === 'latest' ? 'the newest point' : target.at} in ${scratch}`);
    const since = (t: number) => `${((Date.now() - t) / 1000).toFixed(1)} s`;
    let phase = Date.now();
    instance = await chosen.method.drill!.provision(run, catalog, at, scratch);
    progress.note(`throwaway instance ready in ${since(phase)}`);
    step('throwaway instance');
    phase = Date.now();
    await keyReady;
    plan = await chosen.method.planRestore(run, catalog, { at, to: instance.target, force: false });
    // The prediction is for the report, not on the RTO's path: it reads history while the restore runs.
    prediction = predictedRto(repository, source, method, plan.chain);
    prediction.catch(() => undefined); // awaited below

    step('plan');
    await repository.store.rehydrate?.(plan.chain.flatMap((m) => m.objects.map((o) => o.key)), { progress, signal });
    restored = await chosen.method.applyRestore(run, plan);
    throwIfAborted(signal);
    step('restore');
    db = await instance.open(restored);
    progress.note(`restored to ${restored.restorePoint.time} in ${since(phase)}; checking`);
    step('server up, connected');
    phase = Date.now();

    checks.push(restoredPointCheck(target, plan, restored));
    const restoredBackup = plan.chain[plan.chain.length - 1];
    const own = plan.replay ? undefined : recordedChecksums(restoredBackup);
    const against = crossCheck ?? (own ? restoredBackup : undefined);
    const recorded = crossCheck ? recordedChecksums(crossCheck) : own;
    // The verifier runs in its own process beside the checksum queries: RTO is the slower of the two.
    const verified = db.verify(signal);
    verified.catch(() => undefined); // awaited below
    const described = recorded?.at?.binlog;
    const reached = restored.restorePoint.binlog;
    if (recorded && against && described && (!reached || described.file !== reached.file || described.position !== reached.position)) {
      // MySQL: the checksums' own snapshot was not the dump's (writes came between): nothing to compare exactly.
      checks.push({ name: 'recorded checksums', ok: true, detail: `skipped: the checksums describe ${described.file}:${described.position}, the restored point is ${reached ? `${reached.file}:${reached.position}` : 'unknown'}` });
    } else if (recorded && against) {
      const comparison = compareChecksums(recorded.tables, await db.checksums(recorded), recorded.skipped);
      const label = crossCheck ? `${crossCheck.details.kind} backup ${crossCheck.id} (an independent method)` : `backup ${against.id}'s record`;
      const skipped = Object.keys(recorded.skipped ?? {});
      checks.push({
        name: 'recorded checksums',
        ok: comparison.ok,
        detail: describeComparison(comparison, label) + (skipped.length ? `; not checked: ${skipped.map((t) => `${t} (${recorded.skipped![t].split(':')[0]})`).join(', ')}` : ''),
      });
    } else {
      checks.push({ name: 'recorded checksums', ok: true, detail: `skipped: ${plan.replay ? 'no backup with recorded checksums has its consistent point at the restored point' : `backup ${restoredBackup.id} recorded none`}` });
    }
    checks.push(await verified);
    throwIfAborted(signal);
    checks.push(...(await runAssertions(db, src.drill?.assertions ?? [])));

    progress.note(`checks done in ${since(phase)}`);
    step('checks');
    const passedAt = new Date().toISOString();
    rto = rtoSeconds(options.startedAt, passedAt);
    rpo = rpoSeconds(target, options.startedAt, restored.restorePoint.time);
    checks.push(...rtoObjectiveCheck(src, rto));
  } catch (e) {
    error = e as Error;
  } finally {
    await db?.close().catch(() => undefined);
    let stopError: unknown;
    await instance?.stop().catch((e: unknown) => (stopError = e));
    if (scratchMade) {
      const { stopped } = await cleanupScratch(scratch).catch(() => ({ stopped: -1 }));
      cleanedUp = stopped >= 0 && stopError === undefined;
      if (stopped > 0) progress.note(`teardown: stopped ${stopped} server(s) still running from ${scratch}`);
    } else cleanedUp = true;
  }
  const predicted = await prediction?.catch(() => undefined);

  const report = buildDrillReport({
    id,
    source,
    config: src,
    method: method || 'none',
    kind: options.kind,
    target,
    ...(plan ? { chain: plan.chain } : {}),
    ...(restored ? { restoredPoint: restored.restorePoint.time } : {}),
    startedAt: options.startedAt,
    checks,
    ...(rto !== undefined ? { rtoSeconds: rto } : {}),
    ...(rpo !== undefined ? { rpoSeconds: rpo } : {}),
    ...(predicted !== undefined ? { predictedRtoSeconds: predicted } : {}),
    ...(error ? { error } : {}),
    cleanedUp,
    steps,
  });
  // Written whenever the drill got as far as the repository; put-if-absent keeps an earlier record.
  if (repository) await writeDrillReport(repository.store, report);
  if (error && !(error instanceof TidemarkError)) throw error;
  return { report, exitCode: drillExitCode(report, error) };
}

export interface DrillReportParts {
  readonly id: string;
  readonly source: string;
  readonly config: SourceConfig;
  readonly method: string;
  readonly kind: string;
  readonly target: DrillTarget;
  readonly chain?: readonly BackupManifest[];
  readonly restoredPoint?: string;
  readonly startedAt: string;
  readonly checks: readonly DrillCheck[];
  readonly rtoSeconds?: number;
  readonly rpoSeconds?: number;
  readonly predictedRtoSeconds?: number;
  readonly error?: Error;
  readonly cleanedUp: boolean;
  readonly steps?: readonly DrillStep[];
}

const secondsBetween = (from: number, to: number) => Math.max(0, Math.round(to - from) / 1000);

/** The report of a drill (drill and drill-check): ok only without an error and with every check passed; RTO only then. */
export function buildDrillReport(p: DrillReportParts): DrillReport {
  const ok = !p.error && p.checks.every((c) => c.ok);
  const failed = p.checks.filter((c) => !c.ok);
  return {
    format: DRILL_REPORT_FORMAT,
    id: p.id,
    source: p.source,
    engine: p.config.engine,
    method: p.method,
    kind: p.kind,
    target: p.target,
    ...(p.chain && p.chain.length > 0
      ? { backupId: p.chain[p.chain.length - 1].id, chain: p.chain.map((m) => m.id), bytes: p.chain.reduce((n, m) => n + m.storedBytes, 0) }
      : {}),
    ...(p.restoredPoint ? { restoredPoint: p.restoredPoint } : {}),
    startedAt: p.startedAt,
    finishedAt: new Date().toISOString(),
    ok,
    ...(ok && p.rtoSeconds !== undefined ? { rtoSeconds: p.rtoSeconds } : {}),
    ...(p.rpoSeconds !== undefined ? { rpoSeconds: p.rpoSeconds } : {}),
    ...(p.config.rto ? { rtoObjectiveSeconds: parseDuration(p.config.rto) } : {}),
    ...(p.config.rpo ? { rpoObjectiveSeconds: parseDuration(p.config.rpo) } : {}),
    ...(p.predictedRtoSeconds !== undefined ? { predictedRtoSeconds: p.predictedRtoSeconds } : {}),
    checks: p.checks,
    ...(p.error
      ? { error: p.error.message.split('\n')[0] }
      : !ok
        ? { error: `check failed: ${failed.map((c) => `${c.name} (${c.detail})`).join('; ')}` }
        : {}),
    cleanedUp: p.cleanedUp,
    ...(p.steps && p.steps.length > 0 ? { steps: p.steps } : {}),
  };
}

/** 0 passed, 4 a check failed, else the error's own exit code. */
export function drillExitCode(report: DrillReport, error: Error | undefined): number {
  if (report.ok) return 0;
  if (error) return error instanceof TidemarkError ? error.exitCode : 70;
  return DRILL_CHECK_FAILED;
}

/** The RTO objective as a check, when the source has one. */
export function rtoObjectiveCheck(config: SourceConfig, rto: number): DrillCheck[] {
  if (!config.rto) return [];
  const objective = parseDuration(config.rto);
  return [{ name: 'rto objective', ok: rto <= objective, detail: `restored and checked in ${rto} s; objective ${objective} s` }];
}

/** The restored point against the target: at or before a time target; for latest, at least the chosen backup's point. */
function restoredPointCheck(target: DrillTarget, plan: RestorePlan, restored: RestoredTarget): DrillCheck {
  const point = restored.restorePoint.time;
  if (target.kind === 'time') {
    const ok = Date.parse(point) <= Date.parse(target.at) + 1;
    return { name: 'restored point', ok, detail: `restored to ${point}${restored.restorePoint.lsn ? ` (${restored.restorePoint.lsn})` : ''}; target ${target.at}${ok ? '' : ': past the target'}` };
  }
  const ok = point >= plan.restorePoint.time;
  return { name: 'restored point', ok, detail: `restored to the newest point ${point}${restored.restorePoint.lsn ? ` (${restored.restorePoint.lsn})` : ''}` };
}

/** `drill-cleanup`: what a killed drill left in its scratch directory, stopped and removed. */
export async function runDrillCleanup(id: string, env: NodeJS.ProcessEnv = process.env): Promise<{ stopped: number; removed: boolean; dir: string }> {
  const dir = scratchDirFor(id, env);
  return { ...(await cleanupScratch(dir)), dir };
}
