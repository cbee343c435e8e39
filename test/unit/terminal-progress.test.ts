import { PassThrough } from 'node:stream';
import { TerminalProgress } from '../../lib/local/terminal-progress';

/** A stream that says it is a terminal, collecting what is drawn on it. */
function fakeTerminal(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  const stream = new PassThrough() as unknown as NodeJS.WriteStream & PassThrough;
  Object.assign(stream, { isTTY, columns: 120, cursorTo: () => true, clearLine: () => true, moveCursor: () => true });
  let out = '';
  stream.on('data', (d: Buffer) => (out += d.toString()));
  return { stream, text: () => out };
}

describe('TerminalProgress', () => {
  it('draws bytes, rate and ETA on a terminal', async () => {
    const { stream, text } = fakeTerminal(true);
    const progress = new TerminalProgress(stream);
    progress.start('dump', 100 * 1024 * 1024);
    for (let i = 0; i < 5; i++) {
      progress.advance(10 * 1024 * 1024);
      await new Promise((r) => setTimeout(r, 120));
    }
    progress.stop();
    expect(text()).toMatch(/dump \[█+░+\]\s+\d+% \d+\.\d MiB \d+\.\d (MiB|GiB)\/s ETA \d+s/);
    expect(text()).toMatch(/dump: 50\.0 MiB in \d+\.\d s\n$/);
  });

  it('writes one plain line per step when stderr is not a terminal (logs, pipes)', () => {
    const { stream, text } = fakeTerminal(false);
    const progress = new TerminalProgress(stream);
    progress.note('backup 1: starting');
    progress.start('dump', 1000);
    progress.advance(2048);
    progress.stop();
    expect(text()).toMatch(/^backup 1: starting\ndump: 2\.0 KiB in \d+\.\d s\n$/);
  });
});
