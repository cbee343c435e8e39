import { resolve } from 'node:path';
import { NEVER_ABORTED } from '../abort';
import { sourceConfig } from '../config/load';
import type { TidemarkConfig } from '../config/schema';
import type { RestoreTarget } from '../engines/engine';
import { parseRecoveryTarget, type RecoveryTargetOptions } from '../engines/recovery-target';
import { restoreMethod } from '../engines/registry';
import { diskError, UsageError } from '../errors';
import type { Progress } from '../progress';
import { Repository } from '../repository/repository';

export interface RestoreCommandOptions extends RecoveryTargetOptions {
  /** A connection URL (logical restores) or a directory (physical restores). */
  readonly to: string;
  /** The target's password as env:NAME, file:/path or secret:…, instead of in the URL. */
  readonly toPassword?: string;
  readonly table?: string;
  readonly force?: boolean;
  /** MySQL/MariaDB logical restores: client connections to load the dump through (default: the cores, at most 4). */
  readonly parallel?: number;
  /** Data directories: start PostgreSQL on the result (port required) as `osUser` when root. */
  readonly start?: boolean;
  readonly port?: number;
  readonly osUser?: string;
  readonly progress: Progress;
  readonly signal?: AbortSignal;
}

export interface RestoreResult {
  readonly backup: string;
  readonly type: string;
  readonly target: string;
  readonly restorePoint: string;
  readonly table?: string;
  readonly seconds: number;
}

/** `--to postgres://…` or `mysql://…` is a database; anything else is a directory. */
export function restoreTargetOf(
  to: string,
  table: string | undefined,
  passwordRef?: string,
  start?: { readonly start?: boolean; readonly port?: number; readonly osUser?: string },
): RestoreTarget {
  const starting = start?.start === true;
  if (!starting && (start?.port !== undefined || start?.osUser !== undefined)) throw new UsageError('--port and --os-user go with --start');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(to)) {
    if (starting) throw new UsageError('--start starts a restored data directory: --to must be a directory');
    return { kind: 'database', url: to, ...(table !== undefined ? { table } : {}), ...(passwordRef !== undefined ? { passwordRef } : {}) };
  }
  if (table !== undefined) throw new UsageError('--table restores one table into a database: --to must be a connection URL');
  if (passwordRef !== undefined) throw new UsageError('--to-password goes with a database URL in --to');
  if (!starting) return { kind: 'data-dir', path: resolve(to) };
  const port = start?.port;
  if (port === undefined || !Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError('--start needs --port N (1-65535)');
  return { kind: 'data-dir', path: resolve(to), start: { port, ...(start?.osUser ? { osUser: start.osUser } : {}) } };
}

function parallelOf(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new UsageError(`--parallel ${n}: expected a whole number of connections from 1 to 64`);
  return n;
}

/** Plans the restore (every refusal happens there, before anything changes), then applies it. */
export async function runRestore(config: TidemarkConfig, source: string, options: RestoreCommandOptions): Promise<RestoreResult> {
  const started = process.hrtime.bigint();
  const src = sourceConfig(config, source);
  const at = parseRecoveryTarget(options);
  const to = restoreTargetOf(options.to, options.table, options.toPassword, options);
  const registration = restoreMethod(source, src, to.kind);
  // The key's slow part (scrypt) starts at once and runs while the method loads and the restore is planned.
  const opening = Repository.open(config).then((repository) => (repository.warmKeys(), repository));
  const [repository, method] = await Promise.all([opening, registration.load()]);
  const run = {
    repository,
    source,
    config: src,
    compression: config.compression,
    progress: options.progress,
    signal: options.signal ?? NEVER_ABORTED,
  };
  const plan = await method.planRestore(run, await repository.catalog(source), {
    at,
    to,
    force: options.force ?? false,
    ...(options.parallel !== undefined ? { parallel: parallelOf(options.parallel) } : {}),
  });
  // A deleted or truncated object is refused now, not when the restore reaches it.
  await repository.assertStored(plan.chain);
  // Objects the tiering moved to GLACIER/DEEP_ARCHIVE are restored by S3 first (time and cost said up front).
  await repository.store.rehydrate?.(plan.chain.flatMap((m) => m.objects.map((o) => o.key)), { progress: options.progress, signal: run.signal });
  const restored = await method.applyRestore(run, plan).catch((e: unknown) => {
    throw to.kind === 'data-dir' ? diskError(e, to.path) : e;
  });
  const backup = plan.chain[plan.chain.length - 1];
  return {
    backup: backup.id,
    type: backup.type,
    target: restored.target,
    restorePoint: restored.restorePoint.time,
    ...(restored.table ? { table: restored.table } : {}),
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  };
}
