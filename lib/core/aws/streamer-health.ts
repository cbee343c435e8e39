import { DescribeServicesCommand, ECSClient, type Service } from '@aws-sdk/client-ecs';
import { awsCallFailed } from './aws-failure';

/** A streamer service as `status` shows it: is WAL/binlog capture running as deployed? */
export interface StreamerHealth {
  readonly service: string;
  /** ECS service status: ACTIVE, DRAINING, INACTIVE, or MISSING when ECS does not know it. */
  readonly status: string;
  readonly desired: number;
  readonly running: number;
  readonly pending: number;
  /** Rollout state of the primary deployment: COMPLETED, IN_PROGRESS, FAILED. */
  readonly rollout?: string;
  readonly rolloutReason?: string;
  /** The service's newest event when it is not healthy ("unable to consistently start tasks …"). */
  readonly lastEvent?: string;
  readonly ok: boolean;
}

/** At most this many services per DescribeServices call (the API's limit). */
const SERVICES_PER_CALL = 10;

/**
 * Health of streamer services by ARN, one DescribeServices call per 10 services of a cluster.
 * Healthy means: active, wanted (desired > 0), as many tasks running as wanted, and a deployment
 * that has not failed. A streamer that is down is exactly when the RPO silently grows.
 */
export async function describeStreamers(
  region: string | undefined,
  clusterArn: string,
  serviceArns: readonly string[],
  options: { signal?: AbortSignal } = {},
): Promise<Map<string, StreamerHealth>> {
  const health = new Map<string, StreamerHealth>();
  if (serviceArns.length === 0) return health;
  const client = new ECSClient(region ? { region } : {});
  try {
    for (let i = 0; i < serviceArns.length; i += SERVICES_PER_CALL) {
      const batch = serviceArns.slice(i, i + SERVICES_PER_CALL);
      let answer;
      try {
        answer = await client.send(new DescribeServicesCommand({ cluster: clusterArn, services: [...batch] }), { abortSignal: options.signal });
      } catch (e) {
        throw awsCallFailed(`describing the streamer services in ${clusterArn.split('/').pop()}`, e);
      }
      for (const service of answer.services ?? []) {
        if (service.serviceArn) health.set(service.serviceArn, healthOf(service));
      }
      for (const failure of answer.failures ?? []) {
        if (!failure.arn) continue;
        health.set(failure.arn, { service: failure.arn.split('/').pop()!, status: failure.reason ?? 'MISSING', desired: 0, running: 0, pending: 0, ok: false });
      }
    }
  } finally {
    client.destroy();
  }
  return health;
}

export function healthOf(service: Service): StreamerHealth {
  const primary = service.deployments?.find((d) => d.status === 'PRIMARY');
  const desired = service.desiredCount ?? 0;
  const running = service.runningCount ?? 0;
  const ok = service.status === 'ACTIVE' && desired > 0 && running >= desired && primary?.rolloutState !== 'FAILED';
  const newest = [...(service.events ?? [])].sort((a, b) => (b.createdAt?.getTime() ?? 0) - (a.createdAt?.getTime() ?? 0))[0];
  return {
    service: service.serviceName ?? service.serviceArn?.split('/').pop() ?? '?',
    status: service.status ?? 'UNKNOWN',
    desired,
    running,
    pending: service.pendingCount ?? 0,
    ...(primary?.rolloutState ? { rollout: primary.rolloutState } : {}),
    ...(primary?.rolloutStateReason ? { rolloutReason: primary.rolloutStateReason } : {}),
    ...(!ok && newest?.message ? { lastEvent: newest.message } : {}),
    ok,
  };
}
