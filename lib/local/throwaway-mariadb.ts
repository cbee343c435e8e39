import {
  startThrowawayMariadb as startServer,
  type ThrowawayMariadb,
  type ThrowawayMariadbOptions,
} from '../core/process/throwaway-mariadb';
import { trackLiveServer } from './cleanup-registry';

export type { MariadbSettings, ThrowawayMariadb, ThrowawayMariadbOptions } from '../core/process/throwaway-mariadb';

/**
 * The throwaway server of lib/core (the drill worker provisions the same one), tracked by the
 * local exit registry: stopped with this process, and by a watchdog if this process is killed.
 */
export function startThrowawayMariadb(options: ThrowawayMariadbOptions = {}): Promise<ThrowawayMariadb> {
  return startServer({ track: trackLiveServer, ...options });
}
