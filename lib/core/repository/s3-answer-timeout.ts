import { StorageError } from '../errors';

/**
 * A request whose answer must START within a limit. The SDK has no such timeout, only one on socket
 * inactivity, which would also end a download its reader has paused on purpose; so a server that
 * takes a request and never answers would hang a backup or a restore for good. The timer stops
 * when the answer's headers arrive (a body's own stalls are resumableRead's); a request that timed
 * out is sent again, `attempts` times in all. `send` must send a fresh request on each call.
 *
 * A write whose answer was lost may have been stored: sent again with If-None-Match it is refused
 * as existing. That fails the run clearly rather than silently, and the next run works.
 */
export async function sendWithin<T>(
  send: (abortSignal: AbortSignal) => Promise<T>,
  options: { readonly limitMs: number; readonly what: string; readonly attempts: number; readonly signal?: AbortSignal },
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const timer = new AbortController();
    const timeout = setTimeout(() => timer.abort(new StorageError(`no answer within ${Math.round(options.limitMs / 1000)} s to ${options.what}`, 'Unreachable')), options.limitMs);
    const { signal } = options;
    try {
      return await send(signal ? AbortSignal.any([signal, timer.signal]) : timer.signal);
    } catch (err) {
      const timedOut = timer.signal.aborted && !signal?.aborted;
      if (!timedOut || attempt >= options.attempts) throw timedOut ? timer.signal.reason : err;
    } finally {
      clearTimeout(timeout);
    }
  }
}
