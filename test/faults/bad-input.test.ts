import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { main } from '../../bin/tidemark';
import { toEventBridgeCron } from '../../lib/core/config/cron';
import { parseConfig } from '../../lib/core/config/load';
import { ROOT, runCli, TEST_KEY, useTempDir } from '../harness/tidemark';

/**
 * Issue 11, bad input: generated and mutated configs, backup ids, recovery targets and URLs, run
 * through the CLI's own code path (`main` of bin/tidemark.ts, in process, so hundreds of cases take
 * seconds; a handful through the real process at the end). Every case must end in exactly one line
 * on stderr that names the problem — never a stack trace or the "unexpected error" of a bug, never
 * a secret — and leave the repository byte-identical. Invalid configs exit 2.
 *
 * The repository is the committed format-v1 fixture (one logical backup of `shop`), copied: no
 * database is needed, because every case must be refused before one would be reached.
 * TIDEMARK_SOAK=1 runs many more cases.
 */

const SOAK = process.env.TIDEMARK_SOAK === '1';
const RUNS = SOAK ? 1500 : 60;
const SEED = Number(process.env.TIDEMARK_SEED ?? 20261201);
const FIXTURE = join(ROOT, 'test/fixtures/repository-v1/repo');
const BACKUP = '20261201T002925.780Z-304e75';
/** Port 1: nothing listens there, so a case that got as far as a database would fail fast. */
const DB = 'postgres://backup@127.0.0.1:1/shop';

interface Outcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The CLI in process, its output captured; `process.exitCode` is the CLI's, so it is reset. */
async function cli(args: string[]): Promise<Outcome> {
  let stdout = '';
  let stderr = '';
  const out = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((stdout += String(chunk)), true));
  const err = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true));
  // Jest runs test files one after another in the same process: an exit code left by an earlier
  // file (a timed-out test's work running on) must not pass for this run's.
  process.exitCode = undefined;
  try {
    return { code: await main(['node', 'tidemark', ...args]), stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
    process.exitCode = undefined;
  }
}

/** The promise for every refusal: non-zero, one line naming the problem, no trace of a bug, no secret. */
function expectOneLineRefusal(outcome: Outcome, what: string, code?: number): void {
  const context = `${what}\nexit ${outcome.code}\nstderr: ${JSON.stringify(outcome.stderr.slice(0, 2000))}`;
  try {
    if (code !== undefined) expect(outcome.code).toBe(code);
    expect(outcome.code).not.toBe(0);
    expect(outcome.code).not.toBe(70); // the CLI's code for a bug
    expect(outcome.stderr).toMatch(/^tidemark: [^\n]+\n$/);
    expect(outcome.stderr.length).toBeLessThan(1000);
    expect(outcome.stderr).not.toMatch(/\n\s+at |unexpected error|\b(TypeError|ReferenceError|RangeError|SyntaxError|AssertionError)\b/);
    expect(outcome.stderr).not.toContain(TEST_KEY);
    expect(outcome.stdout).toBe('');
  } catch (e) {
    (e as Error).message = `${context}\n${(e as Error).message}`;
    throw e;
  }
}

/** SHA-256 over every path and its bytes under `dir`: any write, rename or new file changes it. */
function treeHash(dir: string): string {
  const hash = createHash('sha256');
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const path = join(d, name);
      const st = statSync(path);
      hash.update(`${relative(dir, path)}\0${st.isDirectory() ? 'd' : 'f'}\0`);
      if (st.isDirectory()) walk(path);
      else hash.update(readFileSync(path));
    }
  };
  walk(dir);
  return hash.digest('hex');
}

const throws = (f: () => unknown) => {
  try {
    f();
    return false;
  } catch {
    return true;
  }
};

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Mutation = { readonly kind: string; readonly apply: (config: Record<string, Json>) => void };

const at = (config: Record<string, Json>, path: readonly string[]): Record<string, Json> =>
  path.reduce<Record<string, Json>>((o, k) => o[k] as Record<string, Json>, config);

/** Sets (or, with `undefined`, deletes) the key at `path`. */
function setAt(config: Record<string, Json>, path: readonly string[], value: Json | undefined): void {
  const parent = at(config, path.slice(0, -1));
  const key = path[path.length - 1];
  if (value === undefined) delete parent[key];
  else parent[key] = value;
}

describe('bad input: one clear line, never a stack trace, never a changed repository', () => {
  const tmp = useTempDir('tidemark-bad-input-');
  let repo = '';
  let before = '';
  let good: Record<string, Json>;
  let n = 0;

  /** A config for this case, in a file of its own. */
  const configFile = (text: string | Buffer, ext = 'yaml'): string => {
    const path = join(tmp.path, `case-${++n}.${ext}`);
    writeFileSync(path, text);
    return path;
  };
  const goodConfig = () => configFile(stringify(good));
  const mutated = (m: Mutation): Record<string, Json> => {
    const config = structuredClone(good);
    m.apply(config);
    return config;
  };

  beforeAll(() => {
    repo = join(tmp.path, 'repo');
    cpSync(FIXTURE, repo, { recursive: true });
    before = treeHash(repo);
    good = {
      repository: `file://${repo}`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      compression: { level: 3, threads: 1 },
      retention: { full: 4, logical: 7 },
      sources: {
        shop: {
          engine: 'postgres',
          url: DB,
          password: 'env:TIDEMARK_BAD_INPUT_PW',
          schedule: { logical: '0 3 * * *' },
          rpo: '1d',
        },
      },
    };
    // The baseline: this config works, so a refusal below is the mutation's doing.
    expect(() => parseConfig(stringify(good), 'good.yaml')).not.toThrow();
  });

  afterEach(() => {
    expect(treeHash(repo)).toBe(before);
  });

  it('the unmutated config lists the fixture backup (the baseline the mutations start from)', async () => {
    const outcome = await cli(['-c', goodConfig(), 'list', 'shop']);
    expect(outcome.stderr).toBe('');
    expect([outcome.code, outcome.stdout]).toEqual([0, expect.stringContaining(BACKUP)]);
  });

  describe('configs', () => {
    // Keys whose value is a string, a number or a mapping in the good config, for wrong types.
    const leaves: readonly (readonly string[])[] = [
      ['repository'],
      ['encryption'],
      ['encryption', 'key'],
      ['compression', 'level'],
      ['retention', 'full'],
      ['sources'],
      ['sources', 'shop'],
      ['sources', 'shop', 'engine'],
      ['sources', 'shop', 'url'],
      ['sources', 'shop', 'password'],
      ['sources', 'shop', 'schedule'],
      ['sources', 'shop', 'schedule', 'logical'],
      ['sources', 'shop', 'rpo'],
    ];
    const wrongValue = (path: readonly string[]): fc.Arbitrary<Json> => {
      const isMapping = ['encryption', 'sources', 'shop', 'schedule'].includes(path[path.length - 1]);
      const isNumber = ['level', 'full'].includes(path[path.length - 1]);
      return fc.oneof(
        fc.constantFrom<Json>(null, true, false, [], [1, 2], 1.5, -1, 0),
        isNumber ? fc.string() : fc.integer(),
        isMapping ? fc.string() : fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { minKeys: 1, maxKeys: 2 }),
      ).filter((v) => !(isNumber && typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 19));
    };
    const wrongType: fc.Arbitrary<Mutation> = fc
      .constantFrom(...leaves)
      .chain((path) => wrongValue(path).map((v): Mutation => ({ kind: `${path.join('.')} = ${JSON.stringify(v)}`, apply: (c) => setAt(c, path, v) })));

    const objects: readonly (readonly string[])[] = [[], ['encryption'], ['compression'], ['retention'], ['sources', 'shop'], ['sources', 'shop', 'schedule']];
    const unknownKey: fc.Arbitrary<Mutation> = fc
      .tuple(
        fc.constantFrom(...objects),
        fc.oneof(fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'retension', 'Repository', 'keys', 'url '), fc.string({ minLength: 1, maxLength: 12 })),
        fc.jsonValue({ maxDepth: 1 }) as fc.Arbitrary<Json>,
      )
      .map(([path, key, v]): Mutation => ({
        kind: `unknown key ${JSON.stringify(key)} in ${path.join('.') || 'the top level'}`,
        // defineProperty: `__proto__` must become a key of the mapping, not its prototype.
        apply: (c) => Object.defineProperty(at(c, path), key, { value: v, enumerable: true, writable: true, configurable: true }),
      }))
      // A key the schema knows (an optional one the good config leaves out) is not unknown.
      .filter((m) => throws(() => parseConfig(stringify(mutated(m)), 'x.yaml')));

    const required: readonly (readonly string[])[] = [['repository'], ['encryption'], ['encryption', 'key'], ['sources'], ['sources', 'shop', 'engine'], ['sources', 'shop', 'url']];
    const missing: fc.Arbitrary<Mutation> = fc.constantFrom(...required).map((path): Mutation => ({ kind: `no ${path.join('.')}`, apply: (c) => setAt(c, path, undefined) }));

    const badRepositoryUrl = fc.oneof(
      fc.constantFrom(
        '',
        'file://',
        'file://relative/folder',
        'file://remote-host/backups',
        'file:/tmp/x',
        '/tmp/plain/path',
        's3://',
        's3:///prefix',
        's3://UPPER/prefix',
        's3://ab',
        's3://user:hunter2-secret@bucket/x',
        's3://bucket/../escape',
        's3://bucket/a//b',
        'http://bucket.example/x',
        'gs://bucket/x',
        'file:///tmp/%zz',
        'file:///tmp/a%00b',
      ),
      fc.string().filter((s) => !/^(file|s3):\/\//.test(s)),
    );
    const badSourceUrl = fc.oneof(
      fc.constantFrom('', 'postgres://', 'postgres:///shop', 'mysql://u@h/db', 'http://h/db', 'postgres:/h/db', 'backup@127.0.0.1:5432/shop'),
      fc.string().filter((s) => !/^postgres(ql)?:\/\/[^/]+/.test(s)),
    );
    const badEndpoint = fc.oneof(fc.constantFrom('', 'not a url', 'localhost:4568', '://x'), fc.string().filter((s) => throws(() => new URL(s))));
    const urls: fc.Arbitrary<Mutation> = fc.oneof(
      badRepositoryUrl.map((u): Mutation => ({ kind: `repository: ${JSON.stringify(u)}`, apply: (c) => (c.repository = u) })),
      badRepositoryUrl.map((u): Mutation => ({ kind: `repository.url: ${JSON.stringify(u)}`, apply: (c) => (c.repository = { url: u }) })),
      badEndpoint.map((e): Mutation => ({ kind: `repository.endpoint: ${JSON.stringify(e)}`, apply: (c) => (c.repository = { url: 's3://bucket/x', endpoint: e }) })),
      badSourceUrl.map((u): Mutation => ({ kind: `sources.shop.url: ${JSON.stringify(u)}`, apply: (c) => setAt(c, ['sources', 'shop', 'url'], u) })),
    );

    const badCron = fc
      .oneof(
        fc.constantFrom('', '* * * *', '0 3 * * * *', '60 3 * * *', '0 24 * * *', '0 3 32 * *', '0 3 * 13 *', '0 3 * * 8', '0 3 1 * 1', '*/0 * * * *', '0 3 * * MON-SUN-', 'daily', '@daily', '0 3 * * 5-1'),
        fc.array(fc.oneof(fc.constantFrom('*', '*/5', '1-3', '99', 'x', '-', ',', '?', 'L', '#'), fc.nat(100).map(String)), { minLength: 1, maxLength: 7 }).map((f) => f.join(' ')),
        fc.string(),
      )
      .filter((s) => throws(() => toEventBridgeCron(s)));
    const crons: fc.Arbitrary<Mutation> = badCron.map((cron): Mutation => ({ kind: `schedule.logical: ${JSON.stringify(cron)}`, apply: (c) => setAt(c, ['sources', 'shop', 'schedule', 'logical'], cron) }));

    const badDuration = fc.oneof(
      fc.constantFrom('', '5', '5x', '-1h', '1.5h', ' 5m', '5 m', '5M', 'PT5M', '1h30m', '0x10s', '١٢h'),
      fc.string().filter((s) => !/^\d+(s|m|h|d)$/.test(s)),
    );
    const durations: fc.Arbitrary<Mutation> = badDuration.map((d): Mutation => ({ kind: `rpo: ${JSON.stringify(d)}`, apply: (c) => setAt(c, ['sources', 'shop', 'rpo'], d) }));

    const badKeyRef = fc.oneof(
      fc.constantFrom('', 'env:', 'env:1ABC', 'env:A-B', 'file:', 'kms:', 'secret:arn:aws:secretsmanager:eu-west-1:111111111111:secret:k', 'TIDEMARK_TEST_KEY', TEST_KEY, `key:${TEST_KEY}`),
      fc.string().filter((s) => !/^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+|kms:.+)$/.test(s)),
    );
    const badSecretRef = fc.oneof(fc.constantFrom('', 'env:', 'hunter2-literal-password', 'kms:alias/x', 'file:'), fc.string().filter((s) => !/^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+|secret:.+)$/.test(s)));
    const keys: fc.Arbitrary<Mutation> = fc.oneof(
      badKeyRef.map((k): Mutation => ({ kind: 'encryption.key: a bad reference', apply: (c) => setAt(c, ['encryption', 'key'], k) })),
      badSecretRef.map((k): Mutation => ({ kind: 'sources.shop.password: a bad reference', apply: (c) => setAt(c, ['sources', 'shop', 'password'], k) })),
    );

    const mutation = fc.oneof(wrongType, unknownKey, missing, urls, crons, durations, keys);

    it('a mutated config (wrong types, unknown keys, missing keys, bad URLs, crons, durations, key references) exits 2 with one line, for every command', async () => {
      await fc.assert(
        fc.asyncProperty(mutation, fc.constantFrom(...commands()), async (m, command) => {
          const outcome = await cli(['-c', configFile(stringify(mutated(m))), ...command]);
          expectOneLineRefusal(outcome, `${m.kind}; ${command.join(' ')}`, 2);
        }),
        { numRuns: RUNS, seed: SEED },
      );
    });

    it('YAML and JSON syntax errors: mutated text either still means a valid config or exits 2 with one line', async () => {
      const text = stringify(good);
      const json = JSON.stringify(good, null, 2);
      const insertion = fc.constantFrom('\t', '{', '}', '[', ']', '"', "'", ':', ': :', '- ', '&a', '*nope', '!env ', '%YAML 1.1\n', '@', '`', '|', '>', '? ', '\n  ', '\u0000', '\uFEFF', ',', '#');
      const edit = fc.record({ json: fc.boolean(), at: fc.nat(), insert: insertion, remove: fc.nat(3) });
      await fc.assert(
        fc.asyncProperty(edit, async ({ json: asJson, at: pos, insert, remove }) => {
          const original = asJson ? json : text;
          const i = pos % original.length;
          const mutated = original.slice(0, i) + insert + original.slice(i + remove);
          const path = configFile(mutated, asJson ? 'json' : 'yaml');
          const valid = !throws(() => parseConfig(mutated, path));
          const outcome = await cli(['-c', path, 'list', 'shop']);
          if (valid && outcome.code === 0) return; // the edit did not change the meaning (inside a string, say)
          expectOneLineRefusal(outcome, `${asJson ? 'JSON' : 'YAML'} edit at ${i}: insert ${JSON.stringify(insert)}, remove ${remove}`, valid ? undefined : 2);
        }),
        { numRuns: RUNS, seed: SEED },
      );
    });

    it.each<[string, () => string | Buffer, string?]>([
      ['an empty file', () => ''],
      ['only whitespace and comments', () => '\n  \n# nothing\n'],
      ['a scalar', () => 'just a string\n'],
      ['a list', () => '- repository\n- sources\n'],
      ['2 MB of one character', () => 'a'.repeat(2 * 1024 * 1024)],
      ['2 MB of one line of YAML mapping', () => `x: ${'a'.repeat(2 * 1024 * 1024)}\n`],
      ['a billion laughs (alias bomb)', () => ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 9 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(', ')}]`)].join('\n')],
      ['2 000 nested lists', () => `${'['.repeat(2_000)}${']'.repeat(2_000)}`],
      ['2 000 nested mappings', () => `${'{a: '.repeat(2_000)}1${'}'.repeat(2_000)}`],
      ['100 000 nested JSON arrays', () => `${'['.repeat(100_000)}${']'.repeat(100_000)}`, 'json'],
      ['binary bytes', () => Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) % 256))],
      ['UTF-16 with a BOM', () => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('repository: file:///x\n', 'utf16le')])],
      ['a duplicate key', () => `${stringify(good)}repository: file:///elsewhere\n`],
      ['an unknown tag', () => stringify(good).replace('env:TIDEMARK_TEST_KEY', '!env TIDEMARK_TEST_KEY')],
      ['a merge key to a missing anchor', () => `<<: *defaults\n${stringify(good)}`],
      ['a literal key where a reference belongs', () => stringify(good).replace('env:TIDEMARK_TEST_KEY', TEST_KEY)],
      ['JSON that is not an object', () => '"repository"', 'json'],
      ['JSON with a trailing comma', () => `${JSON.stringify(good).slice(0, -1)},}`, 'json'],
      // `ext` has a default so the function's length stays 2: a third declared parameter would be jest's `done`.
    ])('%s exits 2 with one line', async (name, content, ext = 'yaml') => {
      const outcome = await cli(['-c', configFile(content(), ext), 'list', 'shop']);
      expectOneLineRefusal(outcome, name, 2);
    });

    it.each<[string, () => string]>([
      ['a config path that does not exist', () => join(tmp.path, 'no-such.yaml')],
      ['a directory as the config', () => tmp.path],
      ['a config under a file', () => join(goodConfig(), 'x.yaml')],
      ['an empty config path', () => ''],
      ['a config path with a newline', () => join(tmp.path, 'two\nlines.yaml')],
    ])('%s exits 2 with one line', async (name, path) => {
      const outcome = await cli(['-c', path(), 'list', 'shop']);
      expectOneLineRefusal(outcome, name, 2);
    });

    it('key references that resolve to nothing, or to a wrong or short key, fail in one line before anything is read', async () => {
      const keyFile = configFile('short\n', 'key');
      mkdirSync(join(tmp.path, 'key-dir'));
      process.env.TIDEMARK_BAD_INPUT_SHORT = 'too-short';
      process.env.TIDEMARK_BAD_INPUT_WRONG = 'a-different-key-0123456789abcdefghijklmnopq';
      for (const key of ['env:TIDEMARK_BAD_INPUT_UNSET', 'env:TIDEMARK_BAD_INPUT_SHORT', 'env:TIDEMARK_BAD_INPUT_WRONG', `file:${join(tmp.path, 'no-key')}`, `file:${keyFile}`, `file:${join(tmp.path, 'key-dir')}`]) {
        // list reads only manifests, which need no key: a wrong key is found by the commands that decrypt.
        const reads = key.endsWith('_WRONG') ? [] : [['list', 'shop']];
        for (const command of [...reads, ['verify', 'shop'], ['restore', 'shop', '--to', DB], ['backup', 'shop', '--type', 'logical']]) {
          const config = structuredClone(good);
          setAt(config, ['encryption', 'key'], key);
          const outcome = await cli(['-c', configFile(stringify(config)), ...command]);
          expectOneLineRefusal(outcome, `encryption.key ${key}; ${command.join(' ')}`);
          expect(outcome.stderr).not.toContain(process.env.TIDEMARK_BAD_INPUT_WRONG);
        }
      }
    });
  });

  /** Commands that read the config; the bad config must stop each of them. */
  function commands(): string[][] {
    return [
      ['list', 'shop'],
      ['verify', 'shop'],
      ['backup', 'shop', '--type', 'logical'],
      ['restore', 'shop', '--to', DB],
      ['retention', '--all', '--apply'],
      ['status'],
    ];
  }

  describe('backup ids', () => {
    const nearMiss = fc
      .tuple(fc.nat(BACKUP.length - 1), fc.constantFrom('x', 'Z', '.', '-', '/', ' ', '\n', '0', 'F', ''))
      .map(([i, c]) => BACKUP.slice(0, i) + c + BACKUP.slice(i + 1))
      .filter((id) => !/^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}$/.test(id)); // a well-formed id is the next test's
    const badId = fc.oneof(
      nearMiss,
      fc.constantFrom('', ' ', 'latest', '..', '../..', `${BACKUP}/../..`, `../shop/backups/${BACKUP}`, `${BACKUP}\n`, '20261201T002925.780Z-30', '*', '%2e%2e', BACKUP.toLowerCase().replace('t', 't')),
      fc.string({ unit: 'binary' }),
    );
    const wellFormedButAbsent = fc.date({ min: new Date('2000-01-01'), max: new Date('2099-01-01'), noInvalidDate: true }).chain((d) =>
      fc.stringMatching(/^[0-9a-f]{6}$/).map((hex) => `${d.toISOString().replace(/[-:]/g, '')}-${hex}`),
    ).filter((id) => id !== BACKUP);

    it('malformed ids (near misses, traversal, binary) exit 2 with one line, in verify and restore', async () => {
      await fc.assert(
        fc.asyncProperty(badId, fc.boolean(), async (id, restore) => {
          const args = restore ? ['restore', 'shop', '--to', DB, '--backup', id] : ['verify', 'shop', '--backup', id];
          expectOneLineRefusal(await cli(['-c', goodConfig(), ...args]), `--backup ${JSON.stringify(id)}`, 2);
        }),
        { numRuns: RUNS, seed: SEED },
      );
    });

    it('a well-formed id that is not in the repository exits 1 with one line naming it', async () => {
      await fc.assert(
        fc.asyncProperty(wellFormedButAbsent, fc.boolean(), async (id, restore) => {
          const args = restore ? ['restore', 'shop', '--to', DB, '--backup', id] : ['verify', 'shop', '--backup', id];
          const outcome = await cli(['-c', goodConfig(), ...args]);
          expectOneLineRefusal(outcome, `--backup ${id}`, 1);
          expect(outcome.stderr).toContain(id);
        }),
        { numRuns: Math.ceil(RUNS / 6), seed: SEED },
      );
    });
  });

  describe('recovery targets', () => {
    const FLAGS = ['--time', '--lsn', '--xid', '--position', '--gtid', '--before-drop', '--backup', '--latest'] as const;
    const junk = fc.oneof(fc.string(), fc.string({ unit: 'binary', maxLength: 40 }), fc.constantFrom('', ' ', '-1', '--', 'now', 'latest', '\n', '0/0/0', 'x:y', ':1', 'f:', 'f:-1', 'f:1e3', 'f:99999999999999999999', '0-1-', 'a b', '2026-13-45T25:61:61Z'));
    const malformed = fc.oneof(
      junk.filter((s) => !/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/.test(s)).map((v) => ['--time', v]),
      fc.constantFrom('2026-12-01 02:14', '2026-12-01T02:14:00', '2026-02-30T00:00:00Z', '2026-12-01T24:00:00Z', '2026-12-01T02:14:00+25:00', '99999-12-01T02:14:00Z', '2026-12-01T02:14:00.1234567890Z').map((v) => ['--time', v]),
      junk.filter((s) => !/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i.test(s)).map((v) => ['--lsn', v]),
      junk.filter((s) => !/^\d{1,20}$/.test(s)).map((v) => ['--xid', v]),
      junk.filter((s) => !/^[^:\s]+:\d{1,19}$/.test(s)).map((v) => ['--position', v]),
      junk.filter((s) => !/^[\w:,.-]+$/.test(s)).map((v) => ['--gtid', v]),
    );
    const combination = fc.uniqueArray(fc.constantFrom(...FLAGS), { minLength: 2, maxLength: 4 }).map((flags) =>
      flags.flatMap((f) => (f === '--latest' ? [f] : [f, { '--time': '2026-12-01T00:00:00Z', '--lsn': '0/1', '--xid': '7', '--position': 'b.000001:4', '--gtid': '0-1-2', '--before-drop': 'public.t', '--backup': BACKUP }[f]])),
    );
    // Well-formed, but this source cannot reach them: outside the window, or needing an archive it lacks.
    const unreachable = fc.oneof(
      fc.date({ min: new Date('1970-01-01'), max: new Date('2026-11-30'), noInvalidDate: true }).map((d) => ['--time', d.toISOString()]),
      fc.date({ min: new Date('2026-12-02'), max: new Date('9999-12-31'), noInvalidDate: true }).map((d) => ['--time', d.toISOString()]),
      fc.constantFrom(['--lsn', '0/1A2B3C'], ['--xid', '12345'], ['--position', 'mariadb-bin.000001:4'], ['--gtid', '0-1-42'], ['--before-drop', 'public.orders'], ['--before-drop', 'x']),
    );

    it('malformed values and combinations exit 2 with one line', async () => {
      await fc.assert(
        fc.asyncProperty(fc.oneof(malformed, combination), async (target) => {
          expectOneLineRefusal(await cli(['-c', goodConfig(), 'restore', 'shop', '--to', DB, ...target]), target.join(' '), 2);
        }),
        { numRuns: RUNS, seed: SEED },
      );
    });

    it('well-formed targets this repository cannot reach are refused in one line, before the target database is touched', async () => {
      await fc.assert(
        fc.asyncProperty(unreachable, async (target) => {
          const outcome = await cli(['-c', goodConfig(), 'restore', 'shop', '--to', DB, ...target]);
          expectOneLineRefusal(outcome, target.join(' '), 2);
          expect(outcome.stderr).not.toMatch(/127\.0\.0\.1:1\b|ECONNREFUSED/); // refused on the plan, not on the connection
        }),
        { numRuns: Math.ceil(RUNS / 4), seed: SEED },
      );
    });
  });

  describe('URLs on the command line', () => {
    const badTarget = fc.oneof(
      // Never a URL a server could answer: no empty host (libpq's default is localhost:5432, the
      // machine's own server), only port 1 or nonsense.
      fc.constantFrom('postgres://', 'postgres://u:@127.0.0.1:1', 'mysql://u@127.0.0.1:1/x', 'postgres://u@[::1/x', 'postgres://u@127.0.0.1:99999/x', 'postgres://u@127.0.0.1:-1/x', 'postgres://u@127.0.0.1:port/x', 'ftp://127.0.0.1:1/x', 'postgres://u@127.0.0.1:1/x?sslmode=bogus', 'postgres://u@127.0.0.1:1/%zz', 'postgres://u%zz@127.0.0.1:1/x', 'postgres://u:p%zz@127.0.0.1:1/x'),
      fc.string().map((s) => `postgres://u@127.0.0.1:1/${s}`),
    );

    it('a restore target URL that is malformed, of another engine or unreachable fails in one line without naming a password', async () => {
      await fc.assert(
        fc.asyncProperty(badTarget, async (to) => {
          const outcome = await cli(['-c', goodConfig(), 'restore', 'shop', '--to', to]);
          expectOneLineRefusal(outcome, `--to ${JSON.stringify(to)}`);
        }),
        { numRuns: Math.ceil(RUNS / 2), seed: SEED },
      );
    });

    it('a password in --to is never echoed', async () => {
      const outcome = await cli(['-c', goodConfig(), 'restore', 'shop', '--to', 'postgres://u:hunter2-in-url@127.0.0.1:1/x']);
      expectOneLineRefusal(outcome, '--to with a password');
      expect(outcome.stderr).not.toContain('hunter2-in-url');
    });

    it('unknown sources, options and commands exit 2 with one line', async () => {
      const args = fc.oneof(
        fc.string({ minLength: 1 }).filter((s) => s !== 'shop' && !s.startsWith('-')).map((s) => ['list', s]),
        fc.string({ minLength: 1 }).map((s) => ['list', 'shop', `--${s.replace(/^-+/, '')}x`]),
        fc.string({ minLength: 1 }).filter((s) => !/^-/.test(s)).map((s) => [`${s}zz`]),
        fc.constantFrom(['backup', 'shop', '--type', 'weekly'], ['backup', 'shop'], ['restore', 'shop'], ['wal-fetch'], ['run', 'backup', 'shop'], ['run', 'backup', 'shop', '--aws', '--poll', '-1'], ['restore', 'shop', '--to', DB, '--port', '5432'], ['restore', 'shop', '--to', '/tmp/x', '--start', '--port', 'NaN'], ['list', 'shop', 'extra']),
      );
      await fc.assert(
        fc.asyncProperty(args, async (a) => {
          expectOneLineRefusal(await cli(['-c', goodConfig(), ...a]), a.join(' '), 2);
        }),
        { numRuns: Math.ceil(RUNS / 2), seed: SEED },
      );
    });
  });

  describe('through the real process (tsx), a handful', () => {
    it.each<[string, () => string[], number]>([
      ['a mutated config', () => ['-c', configFile(stringify(good).replace('rpo: 1d', 'rpo: 1 day')), 'list', 'shop'], 2],
      ['binary config', () => ['-c', configFile(Buffer.from([0, 1, 2, 255, 254, 10, 58, 32])), 'list', 'shop'], 2],
      ['a malformed backup id', () => ['-c', goodConfig(), 'verify', 'shop', '--backup', `${BACKUP}\n../x`], 2],
      ['a malformed time', () => ['-c', goodConfig(), 'restore', 'shop', '--to', DB, '--time', 'yesterday'], 2],
      ['an unknown option', () => ['-c', goodConfig(), 'list', 'shop', '--since', 'x'], 2],
    ])('%s', async (name, args, code) => {
      const outcome = await runCli(args());
      expectOneLineRefusal({ code: outcome.code ?? -1, stdout: outcome.stdout, stderr: outcome.stderr }, name, code);
    });
  });
});
