import type { BackupMethod } from '../../engine';
import { pgPhysicalDrill } from '../drill-instance';
import { backupPostgresPhysical } from './backup';
import { applyPgPhysicalRestore, planPgPhysicalRestore, type PgPhysicalRestorePlan } from './restore';
import { verifyPhysicalBackup } from './verify';

export const pgPhysicalMethod: BackupMethod<PgPhysicalRestorePlan> = {
  backup: (run, type) => backupPostgresPhysical(run, type),
  planRestore: planPgPhysicalRestore,
  applyRestore: applyPgPhysicalRestore,
  verifyBackup: verifyPhysicalBackup,
  drill: pgPhysicalDrill,
};
