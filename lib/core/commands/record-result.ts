import { UsageError } from '../errors';
import { logLine } from '../lambda-environment';
import { emitMetrics } from '../metrics';
import { BACKUP_TYPES, isBackupType, type BackupType } from '../engines/backup-types';
import type { ObjectStore } from '../repository/storage';
import { newestCommittedBackup, newestRestorablePoint, secondsSince } from './newest-point';

/**
 * After each worker run — the record-result Lambda on AWS, in-process locally — turns the outcome
 * into metrics (docs/aws-architecture.md, "record-result Lambda event"). It reads manifests only,
 * never a data key.
 */
export interface RecordResultEvent {
  readonly source: string;
  readonly type: BackupType;
  readonly outcome: 'succeeded' | 'failed';
  /** The Catch output of the failed state. */
  readonly error?: { readonly Error?: string; readonly Cause?: string };
}

export interface RecordResultOutput {
  readonly source: string;
  readonly type: BackupType;
  readonly ok: boolean;
  readonly backupId?: string;
  readonly restorePoint?: string;
}

// An ECS failure's Cause is the whole task description; the log needs the gist, not kilobytes.
const MAX_ERROR_NAME = 200;
const MAX_CAUSE = 2000;

export interface RecordResultOptions {
  /** @default 'Tidemark' */
  readonly namespace?: string;
  /** Where EMF lines go. @default console.log (CloudWatch Logs turns them into metrics) */
  readonly write?: (line: string) => void;
}

export async function recordBackupResult(store: ObjectStore, event: RecordResultEvent, options: RecordResultOptions = {}): Promise<RecordResultOutput> {
  const namespace = options.namespace ?? 'Tidemark';
  const write = options.write ?? console.log;
  const { source, type, outcome } = parseEvent(event);
  const dimensions = { Source: source };

  if (outcome === 'failed') {
    emitMetrics(namespace, dimensions, { BackupFailed: { value: 1, unit: 'Count' } }, write);
    logLine('error', 'backup failed', {
      source,
      type,
      error: truncate(String(event.error?.Error ?? 'unknown'), MAX_ERROR_NAME),
      cause: truncate(String(event.error?.Cause ?? ''), MAX_CAUSE),
    });
    return { source, type, ok: false };
  }

  // A read failure throws: the state machine retries, and a run that stays unrecorded fails the
  // execution (its own alarm) rather than emitting half a result.
  const newest = await newestRestorablePoint(store, source);
  // Usually the newest backup is the one this run wrote; with overlapping runs of another type it
  // is not, and its size would be the wrong one to report.
  const own = newest?.backup.type === type ? newest : await newestCommittedBackup(store, source, { accept: (m) => m.type === type });
  if (newest === null || own === null) {
    // The worker said it committed a backup, yet none is visible: for restores that is a failure.
    emitMetrics(namespace, dimensions, { BackupFailed: { value: 1, unit: 'Count' } }, write);
    logLine('error', 'worker reported success but no committed backup is in the repository', { source, type, repository: store.description });
    return { source, type, ok: false };
  }
  emitMetrics(namespace, dimensions, {
    BackupSucceeded: { value: 1, unit: 'Count' },
    BackupStoredBytes: { value: own.backup.storedBytes, unit: 'Bytes' },
    SecondsSinceNewestRestorablePoint: { value: secondsSince(newest.time), unit: 'Seconds' },
  }, write);
  for (const problem of newest.passedOver.problems) logLine('warn', 'unusable backup passed over', { source, ...problem });
  return { source, type, ok: true, backupId: own.backup.id, restorePoint: newest.time };
}

function parseEvent(event: RecordResultEvent): RecordResultEvent {
  const e = (event ?? {}) as Partial<RecordResultEvent>;
  if (typeof e.source !== 'string' || e.source === '') throw new UsageError(`record-result: event.source must be a source name, got ${JSON.stringify(e.source)}`);
  if (typeof e.type !== 'string' || !isBackupType(e.type)) throw new UsageError(`record-result: event.type must be one of ${BACKUP_TYPES.join(', ')}, got ${JSON.stringify(e.type)}`);
  if (e.outcome !== 'succeeded' && e.outcome !== 'failed') {
    throw new UsageError(`record-result: event.outcome must be 'succeeded' or 'failed', got ${JSON.stringify(e.outcome)}`);
  }
  return e as RecordResultEvent;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`;
}
