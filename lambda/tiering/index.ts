import { enforceTiering, type TieringRunResult } from '../../lib/core/commands/retention-run';
import { objectLockDaysFromEnvironment, retentionPoliciesFromEnvironment, storeFromEnvironment } from '../../lib/core/lambda-environment';

/** Scheduled (daily by default): tags whole chains of long-term keeps warm or cold (config/tiers.ts). */
export async function handler(): Promise<TieringRunResult> {
  return enforceTiering(storeFromEnvironment(), retentionPoliciesFromEnvironment(), { lockDays: objectLockDaysFromEnvironment() });
}

export type { TieringRunResult };
