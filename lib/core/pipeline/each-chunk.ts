import type { Readable } from 'node:stream';
import { abortReason } from '../abort';
import { IntegrityError, TidemarkError } from '../errors';

/**
 * Hands `stream`'s chunks to `handle` one at a time, the stream paused while one is handled: 'data'
 * events hand over the chunks as they were pushed, where an async iterator would read() whatever is
 * buffered into one new Buffer (a copy of every byte). Settles only once no handler is running,
 * whatever ended it; on any failure (the stream's, a handler's, `signal`) the stream is destroyed.
 * `what` names the stream when it closes before its end ("the pack stream closed before its end").
 */
export function eachChunk(stream: Readable, what: string, handle: (chunk: Buffer) => Promise<void>, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    let running: Promise<void> = Promise.resolve();
    let failed = false;
    const fail = (e: unknown) => {
      if (failed) return;
      failed = true;
      signal?.removeEventListener('abort', onAbort);
      stream.destroy();
      void running.finally(() => reject(e instanceof TidemarkError || !signal?.aborted ? e : abortReason(signal)));
    };
    const onAbort = () => fail(abortReason(signal!));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    stream.on('data', (chunk: Buffer) => {
      stream.pause();
      running = handle(chunk).then(
        () => void (failed || stream.resume()),
        (e: unknown) => fail(e),
      );
    });
    stream.once('error', fail);
    stream.once('close', () => {
      if (!stream.readableEnded) fail(new IntegrityError(`the ${what} stream closed before its end`));
    });
    stream.once('end', () => {
      signal?.removeEventListener('abort', onAbort);
      void running.then(() => (failed ? undefined : resolve()));
    });
  });
}
