/**
 * The worker's drill commands (contract: lib/core/commands/drill.ts), kept beside main.ts so the
 * entry stays a dispatcher:
 *
 *   drill <source> --id ID --target latest|ISO [--random] --kind restore|full|manual --started-at ISO
 *   drill-cleanup <source> --id ID
 *   drill-check <source> --id ID --endpoint host:port --target latest|ISO --started-at ISO [--kind K]
 *   verify <source>
 *
 * Each prints its result as one JSON line (`drill finished` with the report, `drill cleaned up`,
 * `verify finished`) and returns the exit code: drill 0 passed / 4 a check failed / the error's.
 */
import { parseArgs } from 'node:util';
import { runDrill, runDrillCleanup } from '../../lib/core/commands/drill';
import { runDrillCheck } from '../../lib/core/commands/drill-check';
import { runVerify } from '../../lib/core/commands/verify';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import type { DrillTarget } from '../../lib/core/drill/report';
import { checkDrillId } from '../../lib/core/drill/scratch';
import { UsageError } from '../../lib/core/errors';
import { JsonProgress } from '../../lib/core/json-progress';
import type { LogFields, LogLevel } from '../../lib/core/log';

export type DrillJob =
  | { command: 'drill'; source: string; id: string; target: DrillTarget; kind: string; startedAt: string }
  | { command: 'drill-cleanup'; source: string; id: string }
  | { command: 'drill-check'; source: string; id: string; endpoint: string; target: DrillTarget; kind: string; startedAt: string }
  | { command: 'verify'; source: string };

const COMMANDS = ['drill', 'drill-cleanup', 'drill-check', 'verify'];
const DRILL_USAGE = 'usage: drill <source> --id ID --target latest|ISO [--random] --kind restore|full|manual --started-at ISO';
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;

function isoTime(value: string | undefined, flag: string): string {
  if (!value || !ISO.test(value) || Number.isNaN(Date.parse(value))) throw new UsageError(`${flag} ${value ?? ''}: expected an ISO time with a zone, e.g. 2026-12-01T02:14:00Z`);
  return new Date(value).toISOString();
}

/** The job, when argv names one of these commands; undefined for the others (main.ts parses those). */
export function parseDrillJob(argv: string[]): DrillJob | undefined {
  if (!COMMANDS.includes(argv[0] ?? '')) return undefined;
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        id: { type: 'string' },
        target: { type: 'string' },
        random: { type: 'boolean' },
        kind: { type: 'string' },
        'started-at': { type: 'string' },
        endpoint: { type: 'string' },
      },
    });
  } catch (e) {
    throw new UsageError(`${(e as Error).message.split('. ')[0]}; ${DRILL_USAGE}`);
  }
  const [command, source, ...extra] = parsed.positionals;
  const v = parsed.values;
  if (!source || extra.length > 0) throw new UsageError(command === 'drill' ? DRILL_USAGE : `usage: ${command} <source>${command === 'verify' ? '' : ' --id ID'}`);
  if (command === 'verify') return { command, source };
  if (!v.id) throw new UsageError(`${command} ${source}: --id is required`);
  const id = checkDrillId(v.id);
  if (command === 'drill-cleanup') return { command, source, id };
  if (!v.target) throw new UsageError(`drill ${source}: --target latest|ISO is required`);
  const target: DrillTarget = v.target === 'latest' ? { kind: 'latest' } : { kind: 'time', at: isoTime(v.target, '--target'), ...(v.random ? { random: true } : {}) };
  if (v.random && target.kind === 'latest') throw new UsageError('--random goes with the time the state machine drew (--target ISO)');
  const kind = v.kind ?? 'manual';
  if (!/^[a-z][a-z0-9-]{0,31}$/.test(kind)) throw new UsageError(`--kind ${kind}: expected restore, full or manual`);
  const startedAt = isoTime(v['started-at'] ?? new Date().toISOString(), '--started-at');
  if (command === 'drill-check') {
    if (!v.endpoint) throw new UsageError(`drill-check ${source}: --endpoint host:port of the restored instance is required`);
    return { command, source, id, endpoint: v.endpoint, target, kind: v.kind ?? 'restore', startedAt };
  }
  if (v.endpoint) throw new UsageError('--endpoint goes with drill-check');
  return { command: 'drill', source, id, target, kind, startedAt };
}

export interface JobIo {
  readonly signal: AbortSignal;
  readonly write: (line: string) => void;
  readonly log: (level: LogLevel, msg: string, extra?: LogFields) => void;
}

export async function runDrillJob(job: DrillJob, config: TidemarkConfig, io: JobIo): Promise<number> {
  const progress = new JsonProgress({ write: io.write, fields: { source: job.source, command: job.command } });
  switch (job.command) {
    case 'drill': {
      const { report, exitCode } = await runDrill(config, job.source, { id: job.id, target: job.target, kind: job.kind, startedAt: job.startedAt, progress, signal: io.signal });
      io.log(report.ok ? 'info' : 'error', 'drill finished', { report });
      return exitCode;
    }
    case 'drill-check': {
      const { report, exitCode } = await runDrillCheck(config, job.source, { id: job.id, endpoint: job.endpoint, target: job.target, kind: job.kind, startedAt: job.startedAt, progress, signal: io.signal });
      io.log(report.ok ? 'info' : 'error', 'drill finished', { report });
      return exitCode;
    }
    case 'drill-cleanup': {
      const { stopped, removed, dir } = await runDrillCleanup(job.id);
      io.log('info', 'drill cleaned up', { stopped, removed, dir });
      return 0;
    }
    case 'verify': {
      const result = await runVerify(config, job.source, { progress, signal: io.signal });
      io.log(result.ok ? 'info' : 'error', 'verify finished', { result });
      return result.ok ? 0 : 3;
    }
  }
}
