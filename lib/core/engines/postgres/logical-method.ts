import type { BackupMethod } from '../engine';
import { pgLogicalDrill } from './drill-instance';
import { backupPostgresLogical } from './logical-backup';
import { applyPostgresLogicalRestore, planPostgresLogicalRestore, type PgLogicalRestorePlan } from './logical-restore';

export const pgLogicalMethod: BackupMethod<PgLogicalRestorePlan> = {
  backup: (run) => backupPostgresLogical(run),
  planRestore: planPostgresLogicalRestore,
  applyRestore: applyPostgresLogicalRestore,
  drill: pgLogicalDrill,
};
