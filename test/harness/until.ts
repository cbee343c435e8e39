import { setTimeout as sleep } from 'node:timers/promises';

export interface UntilOptions {
  /** How long `until` waits by default. */
  readonly timeoutMs: number;
  /** Between probes. */
  readonly everyMs: number;
  /** A probe that throws counts as "not yet" (a server that is restarting), instead of failing. */
  readonly ignoreErrors?: boolean;
}

export type Until = <T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs?: number) => Promise<T>;

/**
 * `until(what, probe)`: polls `probe` until it returns something truthy, and returns that; after the
 * timeout it fails naming `what`. A test file makes its own with the pace its servers need.
 */
export function untilWith({ timeoutMs: defaultTimeout, everyMs, ignoreErrors = false }: UntilOptions): Until {
  return async (what, probe, timeoutMs = defaultTimeout) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = ignoreErrors ? await probe().catch(() => undefined) : await probe();
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(everyMs);
    }
  };
}
