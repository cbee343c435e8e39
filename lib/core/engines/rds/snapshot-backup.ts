import { RDSClient, type Tag } from '@aws-sdk/client-rds';
import type { SourceConfig } from '../../config/schema';
import { ConfigError, UsageError } from '../../errors';
import type { Progress } from '../../progress';
import { sleep, throwIfAborted } from '../../abort';
import type { BackupManifest } from '../../repository/manifest';
import type { Repository } from '../../repository/repository';
import { isTransientRdsError, rdsFailureReason, RdsSnapshotFailed, type RdsFailureContext } from './rds-failure';
import type { RdsSnapshotDetails } from './snapshot-details';
import { snapshotIdentifier } from './snapshot-identifier';
import { snapshotTarget, type RdsSnapshot, type SnapshotTarget } from './snapshot-target';

/**
 * A full backup of an RDS/Aurora source is an RDS snapshot (DESIGN.md §4): RDS copies the volume,
 * we wait until it is usable (and its cross-region copy, when configured), then record it in the
 * same catalog as every other backup. The manifest has no objects: it is the record, and a restore
 * starts from its snapshot ARN. Until the manifest is written the backup does not exist, so a
 * failure or an abort commits nothing; the snapshot's tags let a cleanup find what was left.
 */

export interface RdsSnapshotBackupInput {
  readonly repository: Repository;
  readonly source: string;
  /** The source's config; its `rds` settings say which instance or cluster, and where copies go. */
  readonly config: SourceConfig;
  readonly progress: Progress;
  readonly signal?: AbortSignal;
  /** Region of the database. @default - `aws.region` of the source, else the SDK default (AWS_REGION, profile) */
  readonly region?: string;
  /** Clock for the start time, the restore point when RDS reports no snapshot time. @default - the system clock */
  readonly now?: () => Date;
  /** How often RDS is asked: the first wait, growing by half each time up to the longest. @default - 5 s up to 60 s */
  readonly poll?: { readonly firstMs: number; readonly maxMs: number };
}

const DEFAULT_POLL = { firstMs: 5_000, maxMs: 60_000 };
/** Consecutive throttled, unreachable or not-yet-visible answers tolerated while waiting. */
const MAX_TRANSIENT = 6;

function isFailedStatus(status: string): boolean {
  return status === 'failed' || status.startsWith('incompatible') || status === 'deleting' || status === 'deleted';
}

async function regionOf(client: RDSClient): Promise<string> {
  try {
    return await client.config.region();
  } catch {
    return 'the default region';
  }
}

interface WaitOptions {
  readonly client: RDSClient;
  readonly target: SnapshotTarget;
  readonly identifier: string;
  /** What is being waited for, for notes and errors: "snapshot X of instance 'db-1' in eu-west-1". */
  readonly what: string;
  readonly failure: (reason: string, cause?: unknown) => RdsSnapshotFailed;
  readonly context: RdsFailureContext;
  readonly progress: Progress;
  readonly signal?: AbortSignal;
  readonly poll: { readonly firstMs: number; readonly maxMs: number };
}

/** Polls Describe* with backoff until the snapshot is available; fails on a failed status. */
async function waitUntilAvailable(first: RdsSnapshot, options: WaitOptions): Promise<RdsSnapshot> {
  const { client, target, identifier, what, failure, context, progress, signal, poll } = options;
  let snapshot: RdsSnapshot | undefined = first;
  let delay = poll.firstMs;
  let shown = '';
  let transient = 0;
  for (;;) {
    if (snapshot) {
      if (snapshot.status === 'available') return snapshot;
      if (isFailedStatus(snapshot.status)) throw failure(`RDS reports status '${snapshot.status}'`);
      const state = `${snapshot.status}${snapshot.percent !== undefined ? `, ${snapshot.percent} %` : ''}`;
      if (state !== shown) progress.note(`${what}: ${state}`);
      shown = state;
    }
    await sleep(delay, signal);
    delay = Math.min(Math.round(delay * 1.5), poll.maxMs);
    try {
      snapshot = await target.describe(client, identifier);
    } catch (e) {
      if (!isTransientRdsError(e)) throw failure(`cannot follow it: ${rdsFailureReason(e, context)}`, e);
      snapshot = undefined;
    }
    // Not found right after Create can be RDS's eventual consistency; for long it means deleted.
    transient = snapshot ? 0 : transient + 1;
    if (transient > MAX_TRANSIENT) throw failure('it disappeared, or RDS stopped answering, while we waited for it');
  }
}

export async function backupRdsSnapshot(input: RdsSnapshotBackupInput): Promise<BackupManifest> {
  const { repository, source, config, progress, signal } = input;
  const now = input.now ?? (() => new Date());
  const poll = input.poll ?? DEFAULT_POLL;
  const rds = config.rds;
  if (!rds) throw new UsageError(`source '${source}' is not an RDS source (no rds settings): use --type logical`);
  const target = snapshotTarget(rds);
  const copyRegion = rds.copyToRegion;
  if (copyRegion && rds.copyKmsKeyArn) {
    const keyRegion = /^arn:[^:]+:kms:([^:]+):/.exec(rds.copyKmsKeyArn)?.[1];
    if (keyRegion !== copyRegion) {
      throw new ConfigError(
        `sources.${source}.rds.copyKmsKeyArn must be a KMS key in ${copyRegion} (where the copies go), got ${rds.copyKmsKeyArn}`,
      );
    }
  }
  throwIfAborted(signal);

  // A wrong repository key must fail before RDS starts copying volumes.
  await repository.checkKey();
  const startedAt = now();
  const writer = await repository.beginBackup(source, config.engine, 'full');
  const identifier = snapshotIdentifier(source, writer.id);
  const regionConfigured = input.region ?? config.aws?.region;
  const client = new RDSClient(regionConfigured ? { region: regionConfigured } : {});
  const region = regionConfigured ?? (await regionOf(client));
  const context: RdsFailureContext = { source, label: target.label, region, snapshotIdentifier: identifier };
  const failed = (reason: string, cause?: unknown): RdsSnapshotFailed =>
    new RdsSnapshotFailed(`RDS snapshot of ${target.label} in ${region} failed: ${reason}`, { cause });

  const tags: Tag[] = [
    { Key: 'tidemark:source', Value: source },
    { Key: 'tidemark:backup', Value: writer.id },
  ];
  progress.note(`backup ${writer.id}: snapshot ${identifier} of ${target.label} in ${region}`);
  let created: RdsSnapshot;
  try {
    created = await target.create(client, identifier, tags);
  } catch (e) {
    throw failed(rdsFailureReason(e, context), e);
  }

  let snapshot: RdsSnapshot;
  let copy: RdsSnapshot | undefined;
  try {
    snapshot = await waitUntilAvailable(created, {
      client,
      target,
      identifier,
      what: `snapshot ${identifier}`,
      failure: (reason, cause) => failed(`snapshot ${identifier}: ${reason}`, cause),
      context,
      progress,
      signal,
      poll,
    });

    if (copyRegion) {
      const kmsKeyId = rds.copyKmsKeyArn as string; // the schema requires it with copyToRegion
      const destination = new RDSClient({ region: copyRegion });
      const copyFailed = (reason: string, cause?: unknown): RdsSnapshotFailed =>
        new RdsSnapshotFailed(
          `copying RDS snapshot ${identifier} of ${target.label} from ${region} to ${copyRegion} failed: ${reason}`,
          { cause },
        );
      if (!snapshot.encrypted && target.kind === 'cluster') {
        progress.note(`snapshot ${identifier} is not encrypted; RDS copies unencrypted cluster snapshots without a key`);
      }
      progress.note(`copying snapshot ${identifier} to ${copyRegion}`);
      let copying: RdsSnapshot;
      try {
        copying = await target.copy(destination, snapshot.arn, identifier, kmsKeyId, snapshot.encrypted);
      } catch (e) {
        throw copyFailed(rdsFailureReason(e, { ...context, region: copyRegion }), e);
      }
      copy = await waitUntilAvailable(copying, {
        client: destination,
        target,
        identifier,
        what: `copy of ${identifier} in ${copyRegion}`,
        failure: copyFailed,
        context: { ...context, region: copyRegion },
        progress,
        signal,
        poll,
      });
    }
  } catch (e) {
    if (signal?.aborted) {
      progress.note(`stopped waiting: RDS goes on with snapshot ${identifier} (tag tidemark:backup=${writer.id}), but no backup is recorded`);
    }
    throw e;
  }

  const details: RdsSnapshotDetails = {
    kind: 'rds-snapshot',
    snapshotArn: snapshot.arn,
    snapshotIdentifier: identifier,
    region,
    ...(target.kind === 'instance' ? { instance: target.id } : { cluster: target.id }),
    rdsEngine: snapshot.engine,
    engineVersion: snapshot.engineVersion,
    encrypted: snapshot.encrypted,
    kmsKeyId: snapshot.kmsKeyId,
    allocatedStorageGiB: snapshot.allocatedStorageGiB,
    ...(copy && copyRegion
      ? { copy: { region: copyRegion, snapshotArn: copy.arn, kmsKeyId: copy.kmsKeyId, encrypted: copy.encrypted } }
      : {}),
  };
  const restorePoint = { time: (snapshot.createdAt ?? startedAt).toISOString() };
  // JSON drops the undefined fields; the manifest keeps only what RDS reported.
  const manifest = await writer.commit(restorePoint, JSON.parse(JSON.stringify(details)) as RdsSnapshotDetails);
  progress.note(`backup ${writer.id}: snapshot ${identifier} recorded`);
  return manifest;
}
