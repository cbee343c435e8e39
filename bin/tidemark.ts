#!/usr/bin/env node
/**
 * The operator CLI (DESIGN.md §5). Thin on purpose: parse arguments, call lib/core, print the
 * result for humans or (--json) for scripts, and turn failures into one line and an exit code.
 */
import { Command, CommanderError, Option } from 'commander';
import type { TidemarkConfig } from '../lib/core/config/schema';
import { oneLine, TidemarkError, UsageError } from '../lib/core/errors';
import { formatBytes } from '../lib/core/format';
import type { Progress } from '../lib/core/progress';
// Start-up is part of every backup: only commander, the error types and the backup-type list (a
// module without imports) load up front. Each action imports what it runs (zod and yaml for the
// config, pg, the AWS SDK), so `--help` and usage errors load none of it.
import { BACKUP_TYPES, type BackupType } from '../lib/core/engines/backup-types';
import type { RecoveryTargetOptions } from '../lib/core/engines/recovery-target';

const DEFAULT_CONFIG = 'tidemark.config.yaml';

/** Ctrl-C and SIGTERM abort the work in hand: tools are killed and nothing half-written is committed. */
const interrupt = new AbortController();

interface GlobalOptions {
  config: string;
  json?: boolean;
}

function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

async function config(cmd: Command): Promise<TidemarkConfig> {
  const { loadConfig } = await import('../lib/core/config/load');
  return (await loadConfig(globals(cmd).config)).config;
}

/** Progress always goes to stderr, so with --json stdout carries exactly one JSON document. */
async function progressFor(): Promise<Progress> {
  const { TerminalProgress } = await import('../lib/local/terminal-progress');
  return new TerminalProgress(process.stderr);
}

function print(cmd: Command, json: unknown, human: () => string): void {
  process.stdout.write(globals(cmd).json ? `${JSON.stringify(json, null, 2)}\n` : `${human()}\n`);
}

/** commander's "error: unknown option '--jsn'\n(Did you mean --json?)" as one line with the usage hint. */
function usageLine(message: string): string {
  const text = message.replace(/^error: /, '').trim().split(/\s*\n\s*/).join(' ');
  return `${oneLine(text)}; run tidemark --help for usage`;
}

export function buildProgram(): Command {
  const program = new Command('tidemark')
    .description('Backups you can restore: PostgreSQL and MySQL/MariaDB into a folder or S3, verified end to end.')
    .option('-c, --config <file>', 'config file', process.env.TIDEMARK_CONFIG ?? DEFAULT_CONFIG)
    .option('--json', 'print machine-readable JSON on stdout')
    // One line like every other failure (commander's own is the error, a suggestion, a hint).
    .configureOutput({ outputError: (message, write) => write(`tidemark: ${usageLine(message)}\n`) })
    .exitOverride();

  program
    .command('init')
    .description('write a commented example config')
    .option('--force', 'overwrite an existing file')
    .action(async (opts: { force?: boolean }, cmd: Command) => {
      const path = globals(cmd).config;
      const { writeExampleConfig } = await import('../lib/core/config/example');
      await writeExampleConfig(path, { force: opts.force });
      print(cmd, { path }, () => `wrote ${path}: edit the source URL, then: export TIDEMARK_KEY=$(openssl rand -base64 32)`);
    });

  program
    .command('backup <source>')
    .description('take a backup and print its id')
    .addOption(new Option('-t, --type <type>', 'backup type').choices([...BACKUP_TYPES]).makeOptionMandatory())
    .action(async (source: string, opts: { type: BackupType }, cmd: Command) => {
      const cfg = await config(cmd);
      const { runBackup } = await import('../lib/core/commands/backup');
      const result = await runBackup(cfg, source, { type: opts.type, progress: await progressFor(), signal: interrupt.signal });
      print(cmd, result, () => result.id);
      if (!globals(cmd).json) {
        process.stderr.write(
          `${result.type} backup ${result.id}: ${formatBytes(result.bytes)} → ${formatBytes(result.storedBytes)} stored in ${result.seconds.toFixed(1)} s\n`,
        );
      }
    });

  program
    .command('list <source>')
    .description('list backups and the restorable window')
    .option('--ddl', 'also show the drops and truncates found in the continuous archive (times and positions for --before-drop)')
    .action(async (source: string, opts: { ddl?: boolean }, cmd: Command) => {
      const cfg = await config(cmd);
      const { runList } = await import('../lib/core/commands/list');
      const result = await runList(cfg, source, { ddl: opts.ddl, signal: interrupt.signal });
      for (const p of result.problems) process.stderr.write(`warning: backup ${p.id}: ${p.reason}\n`);
      for (const g of result.archive?.gaps ?? []) {
        const what = g.count === 0 ? `the server changed between ${g.from} and ${g.to}` : g.count === 1 ? `${g.from} is missing` : `${g.from} to ${g.to} (${g.count}) are missing`;
        // WAL names its timeline and segments; a binlog has one line of files.
        const where = result.archive?.stream === 'wal' ? `WAL gap on timeline ${g.timeline}: ${g.count === 1 ? 'segment ' : 'segments '}` : 'archive gap: ';
        process.stderr.write(`warning: ${where}${what}; no restore can cross it\n`);
      }
      print(cmd, result, () => {
        const archive = result.archive
          ? [
              `archive: ${result.archive.objects} objects, ${formatBytes(result.archive.storedBytes)}`,
              ...result.archive.runs.map(
                (r) => `  timeline ${r.timeline}: ${r.first} … ${r.last}${r.endsInPartial ? ' (partial)' : ''}  ${r.startLsn ?? ''} … ${r.end.lsn ?? ''}  to ${r.end.time || '?'}`,
              ),
              ...result.archive.gaps.map((g) => `  GAP timeline ${g.timeline}: ${g.from} … ${g.to} (${g.count === 0 ? 'the server changed' : `${g.count} missing`})`),
              ...result.archive.windows.map((w) => `  restorable on timeline ${w.timeline}: ${w.from} … ${w.to}`),
            ]
          : [];
        const ddl = result.ddl
          ? ['drops and truncates:', ...(result.ddl.length === 0 ? ['  none'] : result.ddl.map((d) => `  ${d.time}  ${d.position}  ${d.kind} ${d.objects.join(', ')}`))]
          : [];
        if (result.backups.length === 0) return [`no backups of ${source}`, ...archive, ...ddl].join('\n');
        for (const b of result.backups) for (const w of b.warnings ?? []) process.stderr.write(`warning: backup ${b.id}: ${w}\n`);
        const chain = (b: (typeof result.backups)[number]) => (b.parent ? `  on ${b.parent} (depth ${b.chain?.depth ?? 1})` : '');
        const rows = result.backups.map((b) => `${b.id}  ${b.type.padEnd(7)}  ${b.restorePoint}  ${formatBytes(b.storedBytes).padStart(10)}${chain(b)}`);
        const window = result.window ? `restorable: ${result.window.from} … ${result.window.to}` : '';
        return [`ID                           TYPE     RESTORE POINT              STORED`, ...rows, window, ...archive, ...ddl].join('\n');
      });
    });

  program
    .command('restore <source>')
    .description('restore into a database (created when missing), one table (--table), or an empty data directory (physical backups); the latest point unless a target is given')
    .requiredOption('--to <target>', 'connection URL of the target database (postgres://user@host:port/db), without the password; or an empty directory for a physical backup')
    .option('--to-password <ref>', "the target's password: env:NAME, file:/path or secret:<ARN>")
    .option('--latest', 'the newest restorable point (the default)')
    .option('--backup <id>', 'exactly this backup (see: tidemark list)')
    .option('--time <iso>', 'point in time to recover to, with a zone: 2026-12-01T02:14:00Z')
    .option('--lsn <lsn>', 'WAL position to recover to (PostgreSQL)')
    .option('--xid <xid>', 'transaction to recover up to (PostgreSQL)')
    .option('--position <file:pos>', 'binlog position to recover to (MySQL/MariaDB)')
    .option('--gtid <set>', 'GTID set to recover up to (MySQL/MariaDB)')
    .option('--before-drop <schema.table>', 'just before the DROP or TRUNCATE of this table')
    .option('--table <schema.table>', 'restore only this table (MySQL/MariaDB: database.table, into a live database too; refused if it exists, unless --force)')
    .option('--force', 'restore even if the target holds data, replacing what the backup contains')
    .option('--parallel <n>', 'MySQL/MariaDB: load the dump through n connections at once (default: the cores, at most 4; 1: one streamed client)', (v: string) => Number(v))
    .option('--start', 'start PostgreSQL on the restored data directory and wait until it accepts connections')
    .option('--port <n>', 'port for --start', (v: string) => Number(v))
    .option('--os-user <name>', 'with --start as root: the OS user that owns the data directory and runs the server (default postgres)')
    .action(
      async (
        source: string,
        opts: RecoveryTargetOptions & { to: string; toPassword?: string; table?: string; force?: boolean; parallel?: number; start?: boolean; port?: number; osUser?: string },
        cmd: Command,
      ) => {
      const cfg = await config(cmd);
      const { runRestore } = await import('../lib/core/commands/restore');
      const result = await runRestore(cfg, source, { ...opts, progress: await progressFor(), signal: interrupt.signal });
      print(cmd, result, () => `restored ${result.backup}${result.table ? ` (table ${result.table})` : ''} into ${result.target} in ${result.seconds.toFixed(1)} s`);
      },
    );

  program
    .command('verify <source>')
    .description('read every stored object back and check it against its manifest')
    .option('--backup <id>', 'verify only this backup')
    .action(async (source: string, opts: { backup?: string }, cmd: Command) => {
      const cfg = await config(cmd);
      const { runVerify } = await import('../lib/core/commands/verify');
      const result = await runVerify(cfg, source, { backup: opts.backup, progress: await progressFor(), signal: interrupt.signal });
      for (const b of result.backups) for (const w of b.warnings) process.stderr.write(`warning: backup ${b.id}: ${w}\n`);
      print(cmd, result, () => {
        const lines = result.backups.map((b) => (b.ok ? `ok      ${b.id}  ${b.objects} objects, ${formatBytes(b.storedBytes)}` : `FAILED  ${b.id}  ${b.problems.join('; ')}`));
        const a = result.archive;
        if (a) lines.push(a.ok ? `ok      archive  ${a.objects} objects, ${formatBytes(a.storedBytes)}` : `FAILED  archive  ${a.problems.join('; ')}`);
        return lines.join('\n');
      });
      if (!result.ok) process.exitCode = 3;
    });

  program
    .command('drill <source>')
    .description('restore into a throwaway instance through the drill state machine as deployed (synthesized, run here), run the checks, report RTO and RPO; always tears down; non-zero when the drill failed')
    .option('--at <point>', 'latest, random (inside the restorable window), or an ISO time with a zone', 'latest')
    .action(async (source: string, opts: { at: string }, cmd: Command) => {
      const cfg = await config(cmd);
      const { sourceConfig } = await import('../lib/core/config/load');
      sourceConfig(cfg, source); // an unknown source fails here, naming the known ones
      const [{ synthesizeOffline }, { parseConfig }, { runConfiguredDrill }, { drillJson }] = await Promise.all([
        import('../lib/infra/offline-synth'),
        import('../lib/core/config/load'),
        import('../lib/local/local-drill-pipeline'),
        import('../lib/core/drill/report'),
      ]);
      // The stack `cdk deploy` would create for this source, offline: placeholders for the account
      // and the secrets, which change nothing in the drill machine's definition.
      const { password: _password, aws: _aws, ...deployed } = cfg.sources[source];
      const synthConfig = parseConfig(
        JSON.stringify({ ...cfg, aws: cfg.aws ?? { account: '111111111111', region: 'eu-west-1' }, sources: { [source]: deployed } }),
        globals(cmd).config,
      );
      const result = await runConfiguredDrill(cfg, source, synthesizeOffline(synthConfig), {
        at: opts.at,
        onStateEntered: (state) => process.stderr.write(`  → ${state}\n`),
        signal: interrupt.signal,
      });
      if (result.status === 'ABORTED') {
        // main() turns the interrupt into its one line and exit 130; say what teardown did first.
        process.stderr.write(`tidemark: drill ${result.report?.id ?? ''} of ${source} stopped; torn down${result.outcome ? ', recorded as failed' : ''}\n`.replace('  ', ' '));
        throw interrupt.signal.reason;
      }
      const report = result.report;
      if (!report) throw new TidemarkError(`drill of ${source} failed before it restored anything: ${result.outcome?.reason ?? result.cause ?? result.error}`);
      print(cmd, drillJson(report), () => {
        const target = report.target.kind === 'latest' ? 'latest' : `${report.target.at}${report.target.random ? ' (random)' : ''}`;
        const rows = report.checks.map((c) => `${c.ok ? 'ok    ' : 'FAILED'}  ${c.name.padEnd(28)}  ${c.detail}`);
        const seconds = (s: number | undefined) => (s === undefined ? '—' : `${s.toFixed(1)} s`);
        return [
          `drill ${report.id} of ${source}: ${result.outcome?.ok ? 'PASSED' : 'FAILED'} (target ${target})`,
          ...rows,
          `RTO ${seconds(report.rtoSeconds)}${report.rtoObjectiveSeconds !== undefined ? ` (objective ${report.rtoObjectiveSeconds} s)` : ''}`,
          `RPO ${seconds(report.rpoSeconds)}${report.rpoObjectiveSeconds !== undefined ? ` (objective ${report.rpoObjectiveSeconds} s)` : ''}`,
          ...(result.outcome?.ok ? [] : [`reason: ${result.outcome?.reason ?? report.error ?? result.cause}`]),
        ].join('\n');
      });
      if (!result.outcome?.ok) process.exitCode = report.checks.some((c) => !c.ok) ? 4 : 1;
    });

  program
    .command('retention [source]')
    .description('plan retention (a dry run, the default) or apply it: what is deleted, why, and the bytes freed')
    .option('--all', 'every configured source')
    .option('--apply', 'delete what the plan says is due (never an object under Object Lock)')
    .action(async (source: string | undefined, opts: { all?: boolean; apply?: boolean }, cmd: Command) => {
      const cfg = await config(cmd);
      const { runRetention, formatRetention } = await import('../lib/core/commands/retention');
      const result = await runRetention(cfg, source, { all: opts.all, apply: opts.apply });
      print(cmd, result, () => formatRetention(result));
    });

  program
    .command('report [source]')
    .description('write one static HTML page (no network needed to view it): backup timeline, restorable window and gaps, storage by tier and its monthly cost, drill history with RTO/RPO against the objectives; every source unless one is named')
    .option('-o, --out <file>', 'where to write the page', 'tidemark-report.html')
    .action(async (source: string | undefined, opts: { out: string }, cmd: Command) => {
      const cfg = await config(cmd);
      const { runReport } = await import('../lib/core/commands/report');
      const result = await runReport(cfg, source, { out: opts.out, signal: interrupt.signal });
      for (const s of result.sources) if (s.error) process.stderr.write(`warning: source ${s.name}: ${s.error}\n`);
      print(cmd, result, () => `wrote ${result.path} (${formatBytes(result.bytes)}): ${result.sources.map((s) => `${s.name} ${s.backups} backups, ${s.drills} drills`).join('; ')}`);
      if (result.sources.some((s) => s.error)) process.exitCode = 1;
    });

  program
    .command('stream <source>')
    .description('archive WAL (PostgreSQL: pg_receivewal with a replication slot) or binlog (MySQL/MariaDB) continuously until stopped; logs JSON lines')
    .option('--spool <dir>', 'local directory for WAL not yet archived; keep it across restarts (default: $TIDEMARK_SPOOL or the temp dir)')
    .option('--slot <name>', 'PostgreSQL: replication slot (created if absent; default: tidemark_<source>)')
    .action(async (source: string, opts: { spool?: string; slot?: string }, cmd: Command) => {
      const cfg = await config(cmd);
      const { runStream } = await import('../lib/core/commands/wal');
      await runStream(cfg, source, { spoolDir: opts.spool, slot: opts.slot, signal: interrupt.signal });
    });

  program
    .command('wal-push <path>')
    .description("archive one WAL file, as archive_command: 'tidemark wal-push %p --source app --config /etc/tidemark.yaml'")
    .requiredOption('--source <name>', 'the source whose archive takes the file')
    .action(async (path: string, opts: { source: string }, cmd: Command) => {
      const cfg = await config(cmd);
      const { runWalPush } = await import('../lib/core/commands/wal');
      const result = await runWalPush(cfg, opts.source, path);
      print(cmd, result, () => `${result.outcome}: ${result.name}`);
    });

  program
    .command('wal-fetch <file> <dest>')
    .description("write one archived WAL file to dest, as restore_command: 'tidemark wal-fetch %f %p --source app'; exit 1 when the archive does not have it")
    .requiredOption('--source <name>', 'the source whose archive holds the file')
    .action(async (file: string, dest: string, opts: { source: string }, cmd: Command) => {
      const cfg = await config(cmd);
      const { runWalFetch } = await import('../lib/core/commands/wal');
      const result = await runWalFetch(cfg, opts.source, file, dest);
      if (result.result === 'absent') {
        process.stderr.write(`tidemark: ${file} is not in the archive of '${opts.source}'\n`);
        process.exitCode = 1;
        return;
      }
      print(cmd, result, () => `${result.result}: ${file} → ${dest}`);
    });

  // run + status: operators on AWS (docs/aws-architecture.md, "Operating on AWS").
  const run = program
    .command('run')
    .description('start the deployed state machine (--aws) and follow it to the end; Ctrl-C stops following, not the execution');
  const runOptions = (cmd: Command) =>
    cmd
      .option('--aws', 'run on AWS: start the state machine of the deployed stack')
      .option('--stack <name>', 'stack to read the state machine from (default: Tidemark-<account>-<region> of the source)')
      .option('--poll <seconds>', 'seconds between status polls', (v: string) => Number(v), 5);
  const followRun = async (
    cmd: Command,
    opts: { aws?: boolean; stack?: string; poll: number },
    start: (watcher: import('../lib/core/aws/terminal-watcher').TerminalExecutionWatcher, pollMs: number) => Promise<import('../lib/core/aws/follow-execution').ExecutionOutcome>,
  ) => {
    if (!opts.aws) {
      const local = cmd.name() === 'follow' ? '' : `; to work locally use: tidemark ${cmd.name()} <source>`;
      throw new UsageError(`run ${cmd.name()} needs --aws (it works on the deployed state machine)${local}`);
    }
    if (!(opts.poll > 0)) throw new UsageError(`--poll must be a positive number of seconds, got ${opts.poll}`);
    const { TerminalExecutionWatcher } = await import('../lib/core/aws/terminal-watcher');
    const { ExecutionFailed, failureLine } = await import('../lib/core/commands/run-aws');
    const watcher = new TerminalExecutionWatcher(process.stderr);
    const result = await start(watcher, opts.poll * 1000).finally(() => watcher.done());
    print(cmd, result, () => `${result.name} ${result.status} in ${result.seconds.toFixed(0)} s`);
    if (result.status !== 'SUCCEEDED') throw new ExecutionFailed(failureLine(result));
  };
  runOptions(run.command('backup <source>').description('run the backup state machine for one source'))
    .addOption(new Option('-t, --type <type>', 'backup type (default: the first type the source is scheduled for)').choices([...BACKUP_TYPES]))
    .action(async (source: string, opts: { aws?: boolean; stack?: string; poll: number; type?: BackupType }, cmd: Command) => {
      await followRun(cmd, opts, async (watcher, pollMs) => {
        const cfg = await config(cmd);
        const { runBackupOnAws } = await import('../lib/core/commands/run-aws');
        return runBackupOnAws(cfg, source, { type: opts.type, stack: opts.stack, pollMs, watcher, signal: interrupt.signal });
      });
    });
  runOptions(run.command('drill <source>').description('run the drill state machine for one source'))
    .option('--at <point>', 'latest, random (a point of the restorable window) or an ISO time with a zone', 'latest')
    .action(async (source: string, opts: { aws?: boolean; stack?: string; poll: number; at: string }, cmd: Command) => {
      await followRun(cmd, opts, async (watcher, pollMs) => {
        const cfg = await config(cmd);
        const { runDrillOnAws } = await import('../lib/core/commands/run-aws');
        return runDrillOnAws(cfg, source, { at: opts.at, stack: opts.stack, pollMs, watcher, signal: interrupt.signal });
      });
    });

  run
    .command('follow <execution-arn>')
    .description('follow an execution that is already running (started by a schedule, or one you stopped following)')
    .option('--aws', 'the execution runs on AWS')
    .option('--poll <seconds>', 'seconds between status polls', (v: string) => Number(v), 5)
    .action(async (executionArn: string, opts: { aws?: boolean; stack?: string; poll: number }, cmd: Command) => {
      await followRun(cmd, opts, async (watcher, pollMs) => {
        const { followOnAws } = await import('../lib/core/commands/run-aws');
        return followOnAws(executionArn, { pollMs, watcher, signal: interrupt.signal });
      });
    });

  program
    .command('status [source]')
    .description('per source: last backup, last drill, RPO age against the objective, streamer health (--aws: from the deployed stacks); exit 1 when any needs attention')
    .option('--aws', 'read the deployed stacks: their vault and streamer services')
    .action(async (source: string | undefined, opts: { aws?: boolean }, cmd: Command) => {
      const cfg = await config(cmd);
      const { runStatus, formatStatus } = await import('../lib/core/commands/status');
      const result = await runStatus(cfg, { source, aws: opts.aws, signal: interrupt.signal });
      print(cmd, result, () => formatStatus(result));
      if (!result.ok) process.exitCode = 1;
    });

  return program;
}

export async function main(argv: string[]): Promise<number> {
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\ntidemark: ${signal}: stopping\n`);
    interrupt.abort(new TidemarkError(`interrupted by ${signal}`));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await buildProgram().parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (e) {
    // First: the interrupt surfaces as whatever the aborted work threw (the abort reason, a killed
    // tool, a destroyed stream), and all of it means the same to the user.
    if (interrupt.signal.aborted) {
      process.stderr.write(`tidemark: ${oneLine((interrupt.signal.reason as Error).message)}\n`);
      return 130;
    }
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2; // commander already printed it
    if (e instanceof TidemarkError) {
      process.stderr.write(`tidemark: ${oneLine(e.message)}\n`);
      return e.exitCode;
    }
    process.stderr.write(`tidemark: unexpected error (a bug; please report it): ${(e as Error).stack ?? e}\n`);
    return 70;
  } finally {
    // main may run many times in one process (tests): each run takes back its own handlers.
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

if (require.main === module) {
  main(process.argv).then((code) => process.exit(code));
}
