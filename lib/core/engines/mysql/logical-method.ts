import type { BackupMethod } from '../engine';
import { mysqlLogicalDrill } from './drill-instance';
import { backupMysqlLogical } from './logical-backup';
import { applyMysqlLogicalRestore, planMysqlLogicalRestore, type MysqlLogicalRestorePlan } from './logical-restore';

export const mysqlLogicalMethod: BackupMethod<MysqlLogicalRestorePlan> = {
  backup: (run) => backupMysqlLogical(run),
  planRestore: planMysqlLogicalRestore,
  applyRestore: applyMysqlLogicalRestore,
  drill: mysqlLogicalDrill,
};
