import { ECSClient } from '@aws-sdk/client-ecs';
import { RDSClient } from '@aws-sdk/client-rds';
import { SFNClient } from '@aws-sdk/client-sfn';
import { awsDrillProvisioned, readEndedDrillExecution, type ExecutionStatusChangeEvent } from '../../lib/core/aws/drill-execution';
import { useLambdaContext, type LambdaInvocationContext } from '../../lib/core/aws/lambda-telemetry';
import { drillSourcesFromEnvironment } from '../../lib/core/commands/drill-target';
import { tearDownDrill, type DrillTeardownResult } from '../../lib/core/commands/drill-teardown';
import { ConfigError, TidemarkError } from '../../lib/core/errors';
import { metricsNamespace, storeFromEnvironment } from '../../lib/core/lambda-environment';
import { defaultMetricsSink } from '../../lib/core/metrics';

/**
 * A drill execution stopped, timed out or failed outside its Catch paths (EventBridge rule on the
 * drill state machine): stop its tasks, delete its RDS instance, record it failed if the machine
 * did not (docs/aws-architecture.md, "Drills"). Fails when something may be left, so Lambda retries
 * and the function's error alarm pages.
 */

let clients: { sfn: SFNClient; ecs: ECSClient; rds: RDSClient } | undefined;

/** Time kept back from the function's timeout to record the drill after the last delete attempt. */
const RESERVE_MS = 60_000;

export async function handler(event: ExecutionStatusChangeEvent, context?: LambdaInvocationContext & { getRemainingTimeInMillis?: () => number }): Promise<DrillTeardownResult | { skipped: string }> {
  useLambdaContext(context);
  const cluster = process.env.TIDEMARK_DRILL_CLUSTER;
  if (!cluster) throw new ConfigError('TIDEMARK_DRILL_CLUSTER is not set (the ECS cluster of the drill tasks)');
  clients ??= { sfn: new SFNClient({}), ecs: new ECSClient({}), rds: new RDSClient({}) };
  const execution = await readEndedDrillExecution(clients.sfn, event);
  if (!execution) return { skipped: `status ${event.detail.status} needs no teardown` };
  const deadline = Date.now() + Math.max(0, (context?.getRemainingTimeInMillis?.() ?? 10 * 60_000) - RESERVE_MS);
  const result = await tearDownDrill(storeFromEnvironment(), drillSourcesFromEnvironment(), execution, awsDrillProvisioned({ ...clients, cluster, deadline }), {
    namespace: metricsNamespace(),
    write: defaultMetricsSink,
  });
  if (result.teardownError) throw new TidemarkError(`drill ${result.drillId ?? '(no target)'} of ${result.source}: ${result.teardownError}`);
  return result;
}

export type { ExecutionStatusChangeEvent, DrillTeardownResult };
