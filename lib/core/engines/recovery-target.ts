import { RecoveryTargetOutOfRange, UsageError } from '../errors';
import { echoInput } from '../format';
import { parseBackupId } from '../repository/backup-id';

/**
 * Where a restore should land. Every command and engine speaks this one type; an engine that cannot
 * reach a kind of target says so in its planRestore, before anything changes.
 */
export type RecoveryTarget =
  | { readonly kind: 'latest' }
  | { readonly kind: 'backup'; readonly id: string }
  /**
   * `at` is UTC ISO 8601 to the millisecond, what windows and backups are compared with; `exact`
   * keeps finer digits when they were given (PostgreSQL commit times have microseconds).
   */
  | { readonly kind: 'time'; readonly at: string; readonly exact?: string }
  | { readonly kind: 'lsn'; readonly lsn: string }
  | { readonly kind: 'xid'; readonly xid: string }
  | { readonly kind: 'binlog'; readonly file: string; readonly position: number }
  | { readonly kind: 'gtid'; readonly set: string }
  | { readonly kind: 'before-drop'; readonly table: string };

/** The restore options of the CLI (DESIGN.md §5), as typed. */
export interface RecoveryTargetOptions {
  readonly latest?: boolean;
  readonly backup?: string;
  readonly time?: string;
  readonly lsn?: string;
  readonly xid?: string;
  readonly position?: string;
  readonly gtid?: string;
  readonly beforeDrop?: string;
}

const FLAGS: Readonly<Record<keyof RecoveryTargetOptions, string>> = {
  latest: '--latest',
  backup: '--backup',
  time: '--time',
  lsn: '--lsn',
  xid: '--xid',
  position: '--position',
  gtid: '--gtid',
  beforeDrop: '--before-drop',
};

// An offset is required: "02:14" on a laptop in Berlin and on a Fargate task in UTC are not the same moment.
const ISO_WITH_OFFSET = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i;
const LSN = /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i;

/** Turns the CLI's options into one target; `--latest` is the default. Bad values fail here. */
export function parseRecoveryTarget(options: RecoveryTargetOptions): RecoveryTarget {
  const given = (Object.keys(FLAGS) as (keyof RecoveryTargetOptions)[]).filter((k) => options[k] !== undefined && options[k] !== false);
  if (given.length > 1) throw new UsageError(`choose one recovery target, not ${given.map((k) => FLAGS[k]).join(' and ')}`);
  const { backup, time, lsn, xid, position, gtid, beforeDrop } = options;
  if (backup !== undefined) return { kind: 'backup', id: parseBackupId(backup) };
  if (time !== undefined) {
    if (!ISO_WITH_OFFSET.test(time.trim()) || Number.isNaN(Date.parse(time))) {
      throw new UsageError(`--time ${echoInput(time)}: expected an ISO time with a zone, e.g. 2026-12-01T02:14:00Z or 2026-12-01 03:14:00+01:00`);
    }
    const at = new Date(time).toISOString();
    const fraction = /:\d{2}\.(\d{4,9})/.exec(time)?.[1];
    return fraction ? { kind: 'time', at, exact: `${at.slice(0, 19)}.${fraction.padEnd(6, '0').slice(0, 6)}Z` } : { kind: 'time', at };
  }
  if (lsn !== undefined) {
    if (!LSN.test(lsn)) throw new UsageError(`--lsn ${echoInput(lsn)}: expected a WAL position like 0/1A2B3C4D`);
    return { kind: 'lsn', lsn: lsn.toUpperCase() };
  }
  if (xid !== undefined) {
    if (!/^\d{1,20}$/.test(xid)) throw new UsageError(`--xid ${echoInput(xid)}: expected a transaction id (digits)`);
    return { kind: 'xid', xid };
  }
  if (position !== undefined) {
    const m = /^([^:\s]+):(\d{1,19})$/.exec(position);
    if (!m) throw new UsageError(`--position ${echoInput(position)}: expected binlog-file:position, e.g. mariadb-bin.000042:1337`);
    return { kind: 'binlog', file: m[1], position: Number(m[2]) };
  }
  if (gtid !== undefined) {
    if (!/^[\w:,.-]+$/.test(gtid)) throw new UsageError(`--gtid ${echoInput(gtid)}: expected a GTID set, e.g. 0-1-42 or 3E11FA47-71CA-11E1-9E33-C80AA9429562:23`);
    return { kind: 'gtid', set: gtid };
  }
  if (beforeDrop !== undefined) {
    if (beforeDrop.trim() === '') throw new UsageError('--before-drop: expected schema.table');
    return { kind: 'before-drop', table: beforeDrop };
  }
  return { kind: 'latest' };
}

/** How a target reads in messages: "--time 2026-…", "the latest point". */
export function describeRecoveryTarget(target: RecoveryTarget): string {
  switch (target.kind) {
    case 'latest':
      return 'the latest restorable point';
    case 'backup':
      return `backup ${target.id}`;
    case 'time':
      return `--time ${target.at}`;
    case 'lsn':
      return `--lsn ${target.lsn}`;
    case 'xid':
      return `--xid ${target.xid}`;
    case 'binlog':
      return `--position ${target.file}:${target.position}`;
    case 'gtid':
      return `--gtid ${target.set}`;
    case 'before-drop':
      return `--before-drop ${target.table}`;
  }
}

/** The restorable window: from the oldest to the newest point a restore can reach. */
export interface RestorableWindow {
  readonly from: string;
  readonly to: string;
}

/** Refuses a time outside the window, naming both, so the user can pick a time that works. */
export function assertTimeInWindow(at: string, window: RestorableWindow | null, source: string): void {
  if (window === null) throw new RecoveryTargetOutOfRange(`--time ${at}: source '${source}' has nothing to restore yet`);
  if (at < window.from || at > window.to) {
    throw new RecoveryTargetOutOfRange(
      `--time ${at} is outside the restorable window of source '${source}' (${window.from} … ${window.to}); see: tidemark list ${source}`,
    );
  }
}
