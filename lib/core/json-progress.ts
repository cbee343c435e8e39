import { jsonLine, type LogFields } from './log';
import type { Progress } from './progress';

/**
 * Progress as JSON lines, for log collectors (CloudWatch Logs through the awslogs driver): one
 * object per line, `level` and `msg` first, then the fields every line of this run carries
 * (`source`, `type`). Byte counts advance often; lines about them are throttled so an hour-long
 * dump writes a few hundred lines, not millions.
 */


export interface JsonProgressOptions {
  /** Receives each finished line. */
  readonly write: (line: string) => void;
  /** Carried by every line, e.g. `{ source, type }`. @default - none */
  readonly fields?: LogFields;
  /** Least time between two progress lines of a step. @default 10_000 ms */
  readonly intervalMs?: number;
  /** Clock, for tests. @default Date.now */
  readonly now?: () => number;
}

export class JsonProgress implements Progress {
  private readonly write: (line: string) => void;
  private readonly fields: LogFields;
  private readonly intervalMs: number;
  private readonly now: () => number;
  private step?: { label: string; total?: number; started: number; done: number; lastLine: number };

  constructor(options: JsonProgressOptions) {
    this.write = options.write;
    this.fields = options.fields ?? {};
    this.intervalMs = options.intervalMs ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  start(label: string, totalBytes?: number): void {
    this.stop();
    const now = this.now();
    this.step = { label, total: totalBytes, started: now, done: 0, lastLine: now };
    this.line(`${label} started`, { step: label, ...(totalBytes !== undefined ? { totalBytes } : {}) });
  }

  advance(bytes: number): void {
    const step = this.step;
    if (!step) return;
    step.done += bytes;
    const now = this.now();
    if (now - step.lastLine < this.intervalMs) return;
    step.lastLine = now;
    const seconds = (now - step.started) / 1000;
    this.line(`${step.label} progress`, {
      step: step.label,
      bytes: step.done,
      ...(step.total ? { totalBytes: step.total, percent: Math.min(100, Math.round((step.done / step.total) * 100)) } : {}),
      bytesPerSecond: seconds > 0 ? Math.round(step.done / seconds) : 0,
    });
  }

  stop(): void {
    const step = this.step;
    if (!step) return;
    this.step = undefined;
    const seconds = (this.now() - step.started) / 1000;
    this.line(`${step.label} ended`, { step: step.label, bytes: step.done, seconds: Math.round(seconds * 10) / 10 });
  }

  note(message: string): void {
    this.line(message, {});
  }

  private line(msg: string, extra: LogFields): void {
    this.write(jsonLine('info', msg, { ...this.fields, ...extra }));
  }
}
