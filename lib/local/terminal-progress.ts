import { SingleBar } from 'cli-progress';
import { formatBytes } from '../core/format';
import type { Progress } from '../core/progress';

export { formatBytes };

function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds <= 0) return '--';
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/**
 * A progress bar on a terminal (bytes, rate, ETA); on anything else — a pipe, a log collector —
 * one line per step, so logs stay readable.
 */
export class TerminalProgress implements Progress {
  private bar?: SingleBar;
  private done = 0;
  private total = 0;
  private started = 0;
  private label = '';

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {}

  private get interactive(): boolean {
    return this.stream.isTTY === true;
  }

  start(label: string, totalBytes?: number): void {
    this.stop();
    this.label = label;
    this.done = 0;
    this.total = totalBytes ?? 0;
    this.started = Date.now();
    if (!this.interactive) return;
    this.bar = new SingleBar({
      stream: this.stream,
      hideCursor: true,
      clearOnComplete: true,
      barsize: 28,
      format: (_options, params) => {
        const seconds = (Date.now() - this.started) / 1000;
        const rate = seconds > 0 ? this.done / seconds : 0;
        const known = this.total > 0;
        const ratio = known ? Math.min(1, this.done / this.total) : 0;
        const bar = known ? `[${'█'.repeat(Math.round(ratio * 28)).padEnd(28, '░')}] ${String(Math.round(ratio * 100)).padStart(3)}% ` : '';
        const eta = known && rate > 0 ? ` ETA ${formatEta((this.total - this.done) / rate)}` : '';
        return `${this.label} ${bar}${formatBytes(params.value)} ${formatBytes(rate)}/s${eta}`;
      },
    });
    this.bar.start(Math.max(this.total, 1), 0);
  }

  advance(bytes: number): void {
    this.done += bytes;
    this.bar?.update(this.done);
  }

  stop(): void {
    if (!this.label) return;
    this.bar?.stop();
    this.bar = undefined;
    const seconds = (Date.now() - this.started) / 1000;
    if (this.done > 0) this.note(`${this.label}: ${formatBytes(this.done)} in ${seconds.toFixed(1)} s`);
    this.label = '';
  }

  note(message: string): void {
    this.stream.write(`${message}\n`);
  }
}
