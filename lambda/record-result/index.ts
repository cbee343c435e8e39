import { recordBackupResult, type RecordResultEvent, type RecordResultOutput } from '../../lib/core/commands/record-result';
import { metricsNamespace, storeFromEnvironment } from '../../lib/core/lambda-environment';

/** The backup state machine's record-result step (docs/aws-architecture.md). */
export async function handler(event: RecordResultEvent): Promise<RecordResultOutput> {
  return recordBackupResult(storeFromEnvironment(), event, { namespace: metricsNamespace() });
}

export type { RecordResultEvent, RecordResultOutput };
