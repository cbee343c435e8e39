import { NEVER_ABORTED } from '../abort';
import { sourceConfig } from '../config/load';
import type { TidemarkConfig } from '../config/schema';
import { runAssertions } from '../drill/assertions';
import { rpoSeconds, rtoSeconds } from '../drill/measure';
import type { DrillCheck, DrillTarget } from '../drill/report';
import { writeDrillReport } from '../drill/report-store';
import type { DrillDatabase, DrillSupport, EngineRun } from '../engines/engine';
import { methodsFor } from '../engines/registry';
import { TidemarkError, UsageError } from '../errors';
import type { Progress } from '../progress';
import { Repository } from '../repository/repository';
import { buildDrillReport, drillExitCode, rtoObjectiveCheck, type DrillOutcome } from './drill';

/**
 * `drill-check`: the checks of a drill whose instance someone else restored — an RDS/Aurora
 * instance the drill state machine restored with the RDS SDK integrations (and deletes in its
 * Catch as well as on success). The worker connects as the source's user, with the password
 * resolved from the source's config at this moment, runs the engine's verifier and the source's
 * assertions, measures, and writes the report like `drill` does. Teardown is the state machine's
 * (DeleteDBInstance), so `cleanedUp` is false here and the record step sets the truth.
 *
 * RDS restores a point in time to the second it is asked for: for a time target the restored
 * point is that time; for `latest` the state machine passes LatestRestorableTime as the target.
 */

export interface DrillCheckOptions {
  readonly id: string;
  /** host:port of the restored instance. */
  readonly endpoint: string;
  readonly target: DrillTarget;
  readonly startedAt: string;
  readonly kind?: string;
  readonly progress: Progress;
  readonly signal?: AbortSignal;
}

export function parseEndpoint(endpoint: string): { host: string; port: number } {
  const m = /^([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(endpoint);
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65535) throw new UsageError(`--endpoint ${endpoint}: expected host:port of the restored instance`);
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}

export async function runDrillCheck(config: TidemarkConfig, source: string, options: DrillCheckOptions): Promise<DrillOutcome> {
  const src = sourceConfig(config, source);
  const endpoint = parseEndpoint(options.endpoint);
  const signal = options.signal ?? NEVER_ABORTED;
  const repository = await Repository.open(config);
  const run: EngineRun = { repository, source, config: src, compression: config.compression, progress: options.progress, signal };
  const checks: DrillCheck[] = [];
  let error: Error | undefined;
  let rto: number | undefined;
  let rpo: number | undefined;
  let db: DrillDatabase | undefined;
  const restoredPoint = options.target.kind === 'time' ? options.target.at : undefined;
  try {
    let support: DrillSupport | undefined;
    for (const registration of methodsFor(src)) {
      const drill = (await registration.load()).drill;
      if (drill?.connect) {
        support = drill;
        break;
      }
    }
    if (!support?.connect) throw new UsageError(`source '${source}' (${src.engine}) has no drill checks for a restored instance in this version`);
    db = await support.connect(run, endpoint);
    checks.push({
      name: 'restored point',
      ok: true,
      detail: restoredPoint ? `restored by RDS to ${restoredPoint} (RDS restores to the requested second)` : 'restored by RDS to its latest restorable time',
    });
    checks.push(await db.verify(signal));
    checks.push(...(await runAssertions(db, src.drill?.assertions ?? [])));
    rto = rtoSeconds(options.startedAt, new Date().toISOString());
    if (restoredPoint) rpo = rpoSeconds(options.target, options.startedAt, restoredPoint);
    checks.push(...rtoObjectiveCheck(src, rto));
  } catch (e) {
    error = e as Error;
  } finally {
    await db?.close().catch(() => undefined);
  }
  const report = buildDrillReport({
    id: options.id,
    source,
    config: src,
    method: 'rds',
    kind: options.kind ?? 'restore',
    target: options.target,
    ...(restoredPoint ? { restoredPoint } : {}),
    startedAt: options.startedAt,
    checks,
    ...(rto !== undefined ? { rtoSeconds: rto } : {}),
    ...(rpo !== undefined ? { rpoSeconds: rpo } : {}),
    ...(error ? { error } : {}),
    cleanedUp: false,
  });
  await writeDrillReport(repository.store, report);
  if (error && !(error instanceof TidemarkError)) throw error;
  return { report, exitCode: drillExitCode(report, error) };
}
