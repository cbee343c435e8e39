/**
 * The worker entry: what a Fargate task (or, locally, a child process) runs. Thin like a Lambda
 * handler: parse argv, load the config, call lib/core, and turn the outcome into JSON lines on
 * stdout and an exit code (docs/aws-architecture.md, "Worker").
 *
 *   backup <source> --type full|diff|incr|logical
 *   stream <source>                      continuous WAL archiving until SIGTERM (spool: $TIDEMARK_SPOOL)
 *   drill <source> --id ID --target latest|ISO [--random] --kind K --started-at ISO
 *   drill-cleanup <source> --id ID       teardown of a drill that died (lib/core/commands/drill.ts)
 *   verify <source>                      every stored object of every backup and the archive
 *   make-templates                       the data-dir templates drills copy, into $TIDEMARK_TEMPLATES
 *                                        (the image's build runs it; lib/core/drill/templates.ts)
 *
 * Config: TIDEMARK_CONFIG_JSON (on AWS, from workerConfig(); passwords are env: references to the
 * ECS secrets), or else the file TIDEMARK_CONFIG names (local runs). Neither is ever logged.
 *
 * Exit codes: 0 committed (stream: stopped cleanly, everything received archived); a TidemarkError's
 * exitCode (1 failed, 2 usage or config, 3 integrity); 70 a bug; 143 SIGTERM (130 SIGINT): a backup
 * stopped, nothing committed.
 */
import { parseArgs } from 'node:util';
import { runBackup } from '../../lib/core/commands/backup';
import { runStream } from '../../lib/core/commands/wal';
import { parseDrillJob, runDrillJob, type DrillJob } from './drill-jobs';
import { makeDrillTemplates } from '../../lib/core/drill/templates';
import { loadConfig, parseConfig } from '../../lib/core/config/load';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import { ConfigError, TidemarkError, UsageError } from '../../lib/core/errors';
import { JsonProgress } from '../../lib/core/json-progress';
import { jsonLine, type LogFields, type LogLevel } from '../../lib/core/log';
import { BACKUP_TYPES, isBackupType, type BackupType } from '../../lib/core/engines/backup-types';

const EXIT_BUG = 70; // sysexits EX_SOFTWARE
const SIGNAL_EXIT: Partial<Record<NodeJS.Signals, number>> = { SIGTERM: 143, SIGINT: 130 };
/** ECS sends SIGKILL 30 s after SIGTERM (the default stopTimeout): leave before that, saying why. */
const STOP_GRACE_MS = 20_000;

const USAGE = `usage: backup <source> --type ${BACKUP_TYPES.join('|')}, or: stream <source>, or: drill|drill-cleanup|verify <source> …, or: make-templates`;

type Job = { command: 'backup'; source: string; type: BackupType } | { command: 'stream'; source: string } | { command: 'make-templates' } | DrillJob;

let fields: LogFields = {};
const write = (line: string) => process.stdout.write(line);
const log = (level: LogLevel, msg: string, extra: LogFields = {}) => write(jsonLine(level, msg, { ...fields, ...extra }));

function parseJob(argv: string[]): Job {
  const drillJob = parseDrillJob(argv);
  if (drillJob) return drillJob;
  let parsed: { values: { type?: string }; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { type: { type: 'string', short: 't' } } });
  } catch (e) {
    throw new UsageError(`${(e as Error).message.split('. ')[0]}; ${USAGE}`);
  }
  const [command, source, ...extra] = parsed.positionals;
  const type = parsed.values.type;
  if (command === 'make-templates' && source === undefined && type === undefined) return { command };
  if (!source || extra.length > 0) throw new UsageError(USAGE);
  if (command === 'stream' && type === undefined) return { command, source };
  if (command !== 'backup') throw new UsageError(USAGE);
  if (type === undefined) throw new UsageError(`backup ${source}: --type is required (${BACKUP_TYPES.join(', ')})`);
  if (!isBackupType(type)) throw new UsageError(`--type ${type}: expected one of ${BACKUP_TYPES.join(', ')}`);
  return { command, source, type };
}

async function loadWorkerConfig(env: NodeJS.ProcessEnv): Promise<{ config: TidemarkConfig; from: string }> {
  if (env.TIDEMARK_CONFIG_JSON) return { config: parseConfig(env.TIDEMARK_CONFIG_JSON, 'TIDEMARK_CONFIG_JSON'), from: 'TIDEMARK_CONFIG_JSON' };
  if (env.TIDEMARK_CONFIG) return { config: (await loadConfig(env.TIDEMARK_CONFIG)).config, from: env.TIDEMARK_CONFIG };
  throw new ConfigError('no config: set TIDEMARK_CONFIG_JSON (the config as JSON) or TIDEMARK_CONFIG (a config file)');
}

async function main(argv: string[]): Promise<number> {
  // SIGTERM (ECS stopping the task) aborts the work: tools are killed and nothing is committed.
  const interrupt = new AbortController();
  let stoppedBy: NodeJS.Signals | undefined;
  let streaming = false;
  let drilling = false;
  const onSignal = (signal: NodeJS.Signals) => {
    const code = SIGNAL_EXIT[signal] ?? 1;
    if (stoppedBy) process.exit(code); // asked twice: leave now
    stoppedBy = signal;
    log(
      'warn',
      streaming
        ? `${signal}: stopping; archiving what was received`
        : drilling
          ? `${signal}: stopping; the drill tears down and records that it was interrupted`
          : `${signal}: stopping; the backup in progress will not be committed`,
    );
    interrupt.abort(new TidemarkError(`interrupted by ${signal}`));
    setTimeout(() => {
      log('error', `${signal}: the work did not stop within ${STOP_GRACE_MS / 1000} s; exiting without committing`);
      process.exit(code);
    }, STOP_GRACE_MS).unref();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  try {
    const job = parseJob(argv);
    if (job.command === 'make-templates') {
      const root = process.env.TIDEMARK_TEMPLATES;
      if (!root) throw new UsageError('make-templates: set TIDEMARK_TEMPLATES to the directory the templates go to');
      for (const t of await makeDrillTemplates(root)) log('info', t.made ? 'template made' : 'template already there', { template: t.key });
      return 0;
    }
    if (job.command === 'stream') {
      fields = { source: job.source, command: 'stream' };
      streaming = true;
      const { config, from } = await loadWorkerConfig(process.env);
      log('info', 'stream starting', { config: from });
      // Runs until SIGTERM; then it archives what it has and returns: a clean stop.
      await runStream(config, job.source, { signal: interrupt.signal, write });
      return 0;
    }
    if (job.command !== 'backup') {
      // drill, drill-cleanup, verify (drill-jobs.ts): their own result line and exit code.
      fields = { source: job.source, command: job.command };
      drilling = true;
      const { config, from } = await loadWorkerConfig(process.env);
      log('info', `${job.command} started`, { config: from });
      return await runDrillJob(job, config, { signal: interrupt.signal, write, log });
    }
    fields = { source: job.source, type: job.type };
    const { config, from } = await loadWorkerConfig(process.env);
    log('info', 'backup started', { config: from });
    if (interrupt.signal.aborted) throw interrupt.signal.reason;
    const progress = new JsonProgress({ write, fields });
    const result = await runBackup(config, job.source, { type: job.type, progress, signal: interrupt.signal });
    // Committed, even if a stop request came too late to abort it: the backup exists, so say so.
    log('info', 'backup committed', { result });
    return 0;
  } catch (e) {
    if (stoppedBy) {
      log('error', `stopped by ${stoppedBy}: nothing was committed`, { error: 'Interrupted' });
      return SIGNAL_EXIT[stoppedBy] ?? 1;
    }
    if (e instanceof TidemarkError) {
      log('error', e.message, { error: e.name });
      return e.exitCode;
    }
    return bug(e);
  }
}

function bug(e: unknown): number {
  const err = e instanceof Error ? e : new Error(String(e));
  log('error', `unexpected error (a bug; please report it): ${err.message}`, { error: err.name, stack: err.stack });
  return EXIT_BUG;
}

// A stream 'error' nobody listened to must still end as one JSON line, not a bare stack trace.
process.on('uncaughtException', (e) => process.exit(bug(e)));

main(process.argv.slice(2)).then((code) => process.exit(code));
