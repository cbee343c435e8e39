import type { Readable } from 'node:stream';

/**
 * Every long run takes an AbortSignal (Ctrl-C, SIGTERM from ECS, a drill's timeout). These are the
 * few helpers that make waiting and streaming respect it.
 */

/** Where an abort came from, as the caller gave it (or a standard AbortError). */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortReason(signal);
}

/** Waits for `ms`, or rejects with the abort reason as soon as `signal` fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal as AbortSignal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A controller that aborts when `outer` does (with its reason) and can also be aborted on its own,
 * e.g. to stop a sibling when one of two streams fails. `dispose()` detaches it from `outer`.
 */
export function linkedAbort(outer: AbortSignal | undefined): { readonly controller: AbortController; dispose(): void } {
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(outer?.reason);
  if (outer?.aborted) onAbort();
  else outer?.addEventListener('abort', onAbort, { once: true });
  return { controller, dispose: () => outer?.removeEventListener('abort', onAbort) };
}

/**
 * `promise`, or the abort reason as soon as `signal` fires: an await that cannot outlive an abort,
 * whether or not the work behind it listens to the signal.
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortReason(signal));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * Destroys `stream` with the abort reason as soon as `signal` fires, which wakes a read waiting on a
 * stalled producer. The reason also goes to whoever awaits the work, so the 'error' event is ours to
 * absorb: at the moment of the abort nobody may be reading `stream` (read to its end already, or not
 * yet begun), and an 'error' event without a listener would end the process (an uncaught exception
 * on SIGTERM). Returns the function that stops listening.
 */
export function destroyOnAbort(stream: Readable, signal: AbortSignal | undefined): () => void {
  if (!signal) return () => undefined;
  const onAbort = (): void => {
    if (stream.destroyed) return;
    stream.on('error', () => undefined);
    stream.destroy(abortReason(signal) as Error);
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

/** A signal that never fires, for callers that have none. */
export const NEVER_ABORTED: AbortSignal = new AbortController().signal;
