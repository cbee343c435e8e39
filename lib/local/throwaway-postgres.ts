import {
  startThrowawayPostgres as startCluster,
  type ThrowawayPostgres,
  type ThrowawayPostgresOptions,
} from '../core/process/throwaway-postgres';
import { trackLiveServer } from './cleanup-registry';

export type { PostgresSettings, ScramLogin, ThrowawayPostgres, ThrowawayPostgresOptions } from '../core/process/throwaway-postgres';

/**
 * The throwaway cluster of lib/core (the drill worker provisions the same one), tracked by the
 * local exit registry: stopped with this process, and by a watchdog if this process is killed.
 */
export function startThrowawayPostgres(options: ThrowawayPostgresOptions = {}): Promise<ThrowawayPostgres> {
  return startCluster({ track: trackLiveServer, ...options });
}
