import { checkRecoveryPoints, type RpoCheckResult } from '../../lib/core/commands/rpo-check';
import { metricsNamespace, sourcesFromEnvironment, storeFromEnvironment } from '../../lib/core/lambda-environment';

/** Scheduled every minute: SecondsSinceNewestRestorablePoint per source, for the RPO alarms. */
export async function handler(): Promise<RpoCheckResult> {
  return checkRecoveryPoints(storeFromEnvironment(), sourcesFromEnvironment(), metricsNamespace());
}

export type { RpoCheckResult };
