import { UsageError } from '../../errors';
import type { BackupMethod } from '../engine';
import { backupRdsSnapshot } from './snapshot-backup';

/**
 * RDS snapshots restore into a new RDS instance, which only the drill state machine does (AWS SDK
 * integrations of Step Functions): the registry never routes a CLI restore here.
 */
export const rdsSnapshotMethod: BackupMethod = {
  backup: (run) => backupRdsSnapshot({ ...run, region: run.region }),
  planRestore: async () => {
    throw new UsageError('RDS snapshots restore into a new RDS instance: run a drill (tidemark drill) or restore the snapshot in the RDS console');
  },
  applyRestore: async () => {
    throw new UsageError('RDS snapshots restore into a new RDS instance');
  },
};
