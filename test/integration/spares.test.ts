import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { startZstdAhead, zstdCompress, zstdDecompress } from '../../lib/core/pipeline/zstd';
import { retireSpares, sparePids, startAhead } from '../../lib/core/process/spares';
import { runTool, ToolRun } from '../../lib/core/process/tool';
import { alive, waitForExit } from '../harness/proc';

/*
 * Tools started ahead (lib/core/process/spares.ts): real zstd processes, handed out only to a call
 * that would have started exactly them, never keeping node alive, never outliving it.
 */

const LEVEL = { level: 1, threads: 1 };
const ARGS = ['-q', '-c', '-1', '-T1'];

afterEach(async () => {
  const left = sparePids();
  await retireSpares();
  expect(left.filter(alive)).toEqual([]);
});

async function roundTrip(bytes: Buffer): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from([bytes]), zstdCompress(LEVEL), zstdDecompress(), async function* (source) {
    for await (const chunk of source) out.push(chunk as Buffer);
  });
  return Buffer.concat(out);
}

test('a zstd started ahead is handed to the call that would have started it, and compresses as one started then', async () => {
  startZstdAhead(LEVEL, 3);
  const spares = sparePids();
  expect(spares).toHaveLength(3);

  const run = new ToolRun('zstd', ARGS, ['pipe', 'pipe'], {});
  expect(spares).toContain(run.child.pid);
  run.child.stdin!.end();
  await run.succeeded();
  expect(sparePids()).toHaveLength(2);

  const data = Buffer.from('tidemark '.repeat(100_000));
  expect((await roundTrip(data)).equals(data)).toBe(true);
  expect(sparePids()).toHaveLength(1);
});

test('a call with its own environment, directory or other arguments starts its own process', async () => {
  startAhead('zstd', ARGS, 2);
  const spares = sparePids();
  const runs = [
    new ToolRun('zstd', ARGS, ['pipe', 'pipe'], { env: { PATH: process.env.PATH } }),
    new ToolRun('zstd', ARGS, ['pipe', 'pipe'], { cwd: tmpdir() }),
    new ToolRun('zstd', ['-q', '-c', '-2', '-T1'], ['pipe', 'pipe'], {}),
    new ToolRun('zstd', ARGS, ['pipe', 'ignore'], {}),
  ];
  for (const run of runs) {
    expect(spares).not.toContain(run.child.pid);
    run.child.stdin!.end();
    await run.exited;
  }
  expect(sparePids()).toEqual(spares);
});

test('when the spares run out, the next call starts as many again, then twice as many, up to 16', async () => {
  startAhead('zstd', ARGS, 3);
  const runs: ToolRun[] = [];
  const take = (n: number) => {
    for (let i = 0; i < n; i++) runs.push(new ToolRun('zstd', ARGS, ['pipe', 'pipe'], {}));
  };
  take(3);
  expect(sparePids()).toHaveLength(0);
  take(1);
  expect(sparePids()).toHaveLength(2); // a batch of 3, one of them handed out
  take(2);
  take(1);
  expect(sparePids()).toHaveLength(5); // then 6
  take(5);
  take(1);
  expect(sparePids()).toHaveLength(11); // then 12
  take(11);
  take(1);
  expect(sparePids()).toHaveLength(15); // then 16, the most
  for (const run of runs) {
    run.child.stdin!.end();
    await run.succeeded();
  }
});

test('a spare of a tool that is not installed is never handed out: the call reports the missing tool', async () => {
  startAhead('tidemark-no-such-tool', [], 2);
  const run = new ToolRun('tidemark-no-such-tool', [], ['pipe', 'pipe'], {});
  expect(await run.exited).toBeNull();
  expect(run.failure().message).toBe('tidemark-no-such-tool not found: run scripts/setup.sh to install it');
});

test('spares do not keep node running, and end with it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-spares-'));
  try {
    const script = join(dir, 'spares.ts');
    writeFileSync(
      script,
      `import { startAhead, sparePids } from ${JSON.stringify(resolve('lib/core/process/spares'))};\n` +
        `startAhead('zstd', ${JSON.stringify(ARGS)}, 4);\nconsole.log(JSON.stringify(sparePids()));\n`,
    );
    const started = Date.now();
    const { stdout } = await promisify(execFile)(resolve('node_modules/.bin/tsx'), [script], { timeout: 60_000 });
    const pids = JSON.parse(stdout) as number[];
    expect(pids).toHaveLength(4);
    expect(Date.now() - started).toBeLessThan(30_000); // not held until the 30 s idle timer ended them
    expect(await waitForExit(pids, 10_000)).toEqual([]);
    expect(pids.filter(alive)).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the work that started spares ends them: none is running once what startAhead returned resolves, and none is started after', async () => {
  const endMine = startZstdAhead(LEVEL, 4);
  startAhead('zstd', ['-q', '-c', '-3', '-T1'], 2);
  const mine = sparePids();
  expect(mine).toHaveLength(6);
  await endMine();
  const others = sparePids();
  expect(others).toHaveLength(2); // another command line's spares stay
  expect(mine.filter((pid) => !others.includes(pid)).filter(alive)).toEqual([]);
  const run = new ToolRun('zstd', ARGS, ['pipe', 'pipe'], {});
  expect(sparePids()).toEqual(others); // started on its own, no new batch
  run.child.stdin!.end();
  await run.succeeded();
});

describe('runTool and an abort', () => {
  it('stops the tool, throws the abort reason once it has exited, and starts nothing when already aborted', async () => {
    const stop = new AbortController();
    const pidFile = join(mkdtempSync(join(tmpdir(), 'tidemark-runtool-')), 'pid');
    const running = runTool('sh', ['-c', `echo $$ > ${pidFile}; exec sleep 30`], { signal: stop.signal });
    await new Promise((r) => setTimeout(r, 200));
    const pid = Number(readFileSync(pidFile, 'utf8'));
    stop.abort(new Error('interrupted by SIGTERM'));
    await expect(running).rejects.toThrow('interrupted by SIGTERM');
    expect(alive(pid)).toBe(false);
    await expect(runTool('true', [], { signal: stop.signal })).rejects.toThrow('interrupted by SIGTERM');
  });
});
