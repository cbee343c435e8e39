import { appendFileSync } from 'node:fs';
import { statOf } from './proc';
import { scanText } from './secret-scan';

/**
 * setupFilesAfterEach of every test file: the local runtime's executions (state-machine definition,
 * input, output, failure cause, history) pass through the secrets scan. The module is wrapped
 * lazily, so a test file that never runs a state machine never loads it.
 */
jest.mock('../../lib/local/state-machine-runner', () => {
  const actual = jest.requireActual<typeof import('../../lib/local/state-machine-runner')>('../../lib/local/state-machine-runner');
  return {
    ...actual,
    runStateMachine: async (...args: Parameters<typeof actual.runStateMachine>) => {
      const [definition, input] = args;
      scanText('a state-machine definition run locally', definition);
      scanText('the input of a local execution', input);
      const result = await actual.runStateMachine(...args);
      scanText('the output, error, cause or history of a local execution', result);
      return result;
    },
  };
});

/*
 * Where the suite's time goes (TIDEMARK_CPU_LOG=<file>): each test file's CPU in its jest process —
 * module loading and transforms included — and in the children it waited for (spawned CLIs, tools,
 * clients; not database servers, which daemonize), appended as one JSON line.
 */
const cpuLog = process.env.TIDEMARK_CPU_LOG;
if (cpuLog) {
  // cutime + cstime (the children waited for), in clock ticks (100 a second).
  const childTicks = () => {
    const { fields } = statOf('self')!;
    return Number(fields[13]) + Number(fields[14]);
  };
  const started = { cpu: process.cpuUsage(), children: childTicks(), at: Date.now() };
  afterAll(() => {
    const { user, system } = process.cpuUsage(started.cpu);
    const file = expect.getState().testPath ?? '?';
    const line = {
      file: file.replace(/.*\/test\//, 'test/'),
      cpuSeconds: (user + system) / 1e6,
      childCpuSeconds: (childTicks() - started.children) / 100,
      wallSeconds: (Date.now() - started.at) / 1000,
    };
    appendFileSync(cpuLog, `${JSON.stringify(line)}\n`);
  });
}
