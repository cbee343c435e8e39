import type { NarratedLine } from './execution-history';
import type { ExecutionStatus, ExecutionWatcher } from './follow-execution';

const SPINNER = ['|', '/', '-', '\\'];

const BAR_WIDTH = 20;

/**
 * Shows a followed execution on stderr: every state line as it happens and, on a terminal, a live
 * last line redrawn between polls: a bar of the Map iterations ended (a backup's sources) when the
 * execution has a Map, else a spinner; what is running, states done, elapsed. On a pipe or in a log
 * collector only the state lines appear, so logs stay readable.
 */
export class TerminalExecutionWatcher implements ExecutionWatcher {
  private statusText = '';
  private frame = 0;

  constructor(private readonly stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr) {}

  line(line: NarratedLine): void {
    this.clearStatus();
    this.stream.write(`${line.text}\n`);
    this.drawStatus();
  }

  status(status: ExecutionStatus): void {
    if (this.stream.isTTY !== true) return;
    const running = status.running.length === 0 ? 'waiting' : status.running.length === 1 ? status.running[0] : `${status.running.length} states: ${status.running.join(', ')}`;
    const s = Math.round(status.elapsedSeconds);
    const elapsed = `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
    const { done, total } = status.iterations;
    const filled = total > 0 ? Math.round((Math.min(done, total) / total) * BAR_WIDTH) : 0;
    const head = total > 0 ? `[${'█'.repeat(filled).padEnd(BAR_WIDTH, '░')}] ${done}/${total}` : SPINNER[this.frame++ % SPINNER.length];
    this.statusText = `${head} ${running} · ${status.completedStates} states done · ${elapsed}`;
    const width = (this.stream as { columns?: number }).columns ?? 100;
    if (this.statusText.length > width - 1) this.statusText = `${this.statusText.slice(0, width - 2)}…`;
    this.clearStatus();
    this.drawStatus();
  }

  /** Removes the live line (call before printing the result). */
  done(): void {
    this.clearStatus();
    this.statusText = '';
  }

  private clearStatus(): void {
    if (this.stream.isTTY === true && this.statusText) this.stream.write('\r\x1b[K');
  }

  private drawStatus(): void {
    if (this.stream.isTTY === true && this.statusText) this.stream.write(this.statusText);
  }
}
