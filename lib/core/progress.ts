/**
 * How long work reports itself. The engine calls these; the CLI draws a progress bar on a TTY,
 * the worker writes log lines, tests pass `silentProgress`.
 */
export interface Progress {
  /** A long step begins; `totalBytes` when known (an estimate is fine: bars cap at 100 %). */
  start(label: string, totalBytes?: number): void;
  advance(bytes: number): void;
  stop(): void;
  /** A one-line status message between steps. */
  note(message: string): void;
}

export const silentProgress: Progress = {
  start: () => undefined,
  advance: () => undefined,
  stop: () => undefined,
  note: () => undefined,
};
