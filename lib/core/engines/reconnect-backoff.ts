/**
 * How long a streamer (PostgreSQL's WAL, MySQL/MariaDB's binlog) waits before it reconnects after
 * its receiver stopped: doubling from `firstMs`, at most `maxMs`, and from the start again once a
 * receiver ran for RAN_LONG_MS (a long run was no outage).
 *
 * The longest wait is 10 s, not the minute it used to be: a server that restarts or fails over
 * makes a streamer fail a few times in a row, and with a 60 s ceiling the streamer could sleep most
 * of a minute after the server was back (restarts measured at 4–38 s to reconnect) — a minute of
 * commits that are in no repository, against a recovery point promised within flushSeconds + 2 s.
 * A connection attempt every 10 s costs a down server nothing that matters; pg_receivewal's own
 * loop retries every 5 s.
 */
export const MAX_RECONNECT_WAIT_MS = 10_000;

/** A receiver that ran this long was no outage: the next failure waits the shortest time again. */
export const RAN_LONG_MS = 60_000;

export interface ReconnectBackoff {
  readonly firstMs: number;
  /** @default MAX_RECONNECT_WAIT_MS */
  readonly maxMs?: number;
}

/** Tracks consecutive failures of a streamer's receiver and says how long to wait after each. */
export class Reconnects {
  /** Failures in a row (1 after the first, and after a long run that ended). */
  attempt = 0;

  constructor(private readonly backoff: ReconnectBackoff) {}

  /** The receiver that started at `startedAt` (ms) stopped: the wait before the next start. */
  next(startedAt: number, now = Date.now()): number {
    this.attempt = now - startedAt > RAN_LONG_MS ? 1 : this.attempt + 1;
    return Math.min(this.backoff.maxMs ?? MAX_RECONNECT_WAIT_MS, this.backoff.firstMs * 2 ** Math.min(this.attempt - 1, 10));
  }

  /** Whether this failure is one to log: the first ones, then every power of two. */
  get worthLogging(): boolean {
    return (this.attempt & (this.attempt - 1)) === 0;
  }
}
