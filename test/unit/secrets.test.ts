import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import fc from 'fast-check';
import { SecretError } from '../../lib/core/errors';
import { redactUrl, resolveSecret } from '../../lib/core/secrets';

const PASSWORD = 'correct horse battery staple';

/** Asserts that resolving `ref` fails with a SecretError whose message matches and never leaks PASSWORD. */
async function failure(ref: string, expected: string | RegExp): Promise<void> {
  const error = await resolveSecret(ref, 'sources.app.password').then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(SecretError);
  const message = (error as Error).message;
  expect(message).toMatch(expected);
  expect(message).not.toContain(PASSWORD);
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tidemark-secrets-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('env: secrets', () => {
  const name = 'TIDEMARK_TEST_SECRET';
  afterEach(() => {
    delete process.env[name];
  });

  it('reads the variable', async () => {
    process.env[name] = PASSWORD;
    await expect(resolveSecret(`env:${name}`, 'x')).resolves.toBe(PASSWORD);
  });

  it('treats unset and empty alike', async () => {
    await failure(`env:${name}`, `sources.app.password: environment variable ${name} is not set`);
    process.env[name] = '';
    await failure(`env:${name}`, `sources.app.password: environment variable ${name} is not set`);
  });
});

describe('file: secrets', () => {
  it('trims exactly one trailing newline', async () => {
    const path = join(dir, 'pw');
    await writeFile(path, `${PASSWORD}\n`);
    await expect(resolveSecret(`file:${path}`, 'x')).resolves.toBe(PASSWORD);
    await writeFile(path, `${PASSWORD} \n\n`);
    await expect(resolveSecret(`file:${path}`, 'x')).resolves.toBe(`${PASSWORD} \n`);
  });

  it('names a missing or unreadable file', async () => {
    const missing = join(dir, 'missing');
    await failure(`file:${missing}`, `sources.app.password: file ${missing} does not exist`);
    await failure(`file:${dir}`, `sources.app.password: file ${dir} cannot be read (EISDIR)`);
    if (process.getuid?.() !== 0) {
      const locked = join(dir, 'locked');
      await writeFile(locked, PASSWORD);
      await chmod(locked, 0o000);
      await failure(`file:${locked}`, `file ${locked} cannot be read (EACCES)`);
    }
  });
});

describe('secret: (AWS Secrets Manager)', () => {
  const sm = mockClient(SecretsManagerClient);
  beforeEach(() => sm.reset());
  afterAll(() => sm.restore());

  const arn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1234-AbCdEf';

  it('returns the password field of an RDS-managed JSON secret', async () => {
    sm.on(GetSecretValueCommand, { SecretId: arn }).resolves({
      SecretString: JSON.stringify({ username: 'backup', password: PASSWORD }),
    });
    await expect(resolveSecret(`secret:${arn}`, 'x')).resolves.toBe(PASSWORD);
  });

  it('returns a plain string secret whole', async () => {
    sm.on(GetSecretValueCommand, { SecretId: 'prod/app-db' }).resolves({ SecretString: PASSWORD });
    await expect(resolveSecret('secret:prod/app-db', 'x')).resolves.toBe(PASSWORD);
  });

  it('returns malformed JSON whole, without quoting it in an error', async () => {
    sm.on(GetSecretValueCommand).resolves({ SecretString: `{${PASSWORD}` });
    await expect(resolveSecret('secret:s', 'x')).resolves.toBe(`{${PASSWORD}`);
  });

  it('names the secret and the AWS error when it cannot be read', async () => {
    sm.on(GetSecretValueCommand).rejects(Object.assign(new Error('not authorized'), { name: 'AccessDeniedException' }));
    await failure(
      'secret:prod/app-db',
      'sources.app.password: cannot read secret prod/app-db from Secrets Manager (AccessDeniedException: not authorized)',
    );
  });
});

describe('bad references', () => {
  it('names the form but never echoes a literal value', async () => {
    await failure(PASSWORD, /expected env:NAME, file:\/path or secret:<ARN or name>, got a plain value \(not shown\)$/);
    await failure('vault:db/app', /, got "vault:…"$/);
  });
});

describe('redactUrl', () => {
  it('hides the password and keeps the rest', () => {
    expect(redactUrl('postgres://backup:hunter2@db:5432/app')).toBe('postgres://backup:***@db:5432/app');
    expect(redactUrl('mysql://root:p@ss/w:rd@db:3306')).toBe('mysql://root:***@db:3306');
    expect(redactUrl('postgres://h/app?sslmode=require&password=hunter2')).toBe(
      'postgres://h/app?sslmode=require&password=***',
    );
    expect(redactUrl("host=db password='a b' user=x")).toBe('host=db password=*** user=x');
  });

  it('leaves URLs without a password alone', () => {
    for (const url of ['postgres://backup@db:5432/app', 'file:///var/backups', 's3://bucket/prefix']) {
      expect(redactUrl(url)).toBe(url);
    }
  });

  it('never leaks a non-trivial password, encoded or not', () => {
    const scheme = fc.constantFrom('postgres', 'postgresql', 'mysql', 'mariadb', 'http');
    fc.assert(
      fc.property(scheme, fc.string(), fc.string({ minLength: 4 }), fc.string(), fc.boolean(), (s, user, pw, host, enc) => {
        const [u, p] = enc ? [encodeURIComponent(user), encodeURIComponent(pw)] : [user, pw];
        const out = redactUrl(`${s}://${u}:${p}@${host}:5432/db`);
        // A password that also occurs in the parts we keep cannot be told apart from them.
        fc.pre(!`${s}://${u}:***@${host}:5432/db`.includes(p));
        expect(out).not.toContain(p);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('childEnv', () => {
  it('hides from child processes every variable a secret was read from, and every TIDEMARK_* variable', async () => {
    const { childEnv, resolveSecret } = await import('../../lib/core/secrets');
    process.env.APP_CHILD_TEST_PASSWORD = 'a-secret-value';
    process.env.TIDEMARK_SECRET_APP = 'injected-by-ecs';
    process.env.TIDEMARK_OLD_KEY = 'a key no config names';
    process.env.APP_HARMLESS = 'visible';
    await resolveSecret('env:APP_CHILD_TEST_PASSWORD', 'test');
    const env = childEnv({ PGHOST: 'db' });
    expect(env.APP_CHILD_TEST_PASSWORD).toBeUndefined();
    expect(env.TIDEMARK_SECRET_APP).toBeUndefined();
    expect(env.TIDEMARK_OLD_KEY).toBeUndefined();
    expect(env.APP_HARMLESS).toBe('visible');
    expect(env.PGHOST).toBe('db');
  });

  it('hides the variables a loaded config names, previous keys included, before any secret is read', async () => {
    const { childEnv } = await import('../../lib/core/secrets');
    const { parseConfig } = await import('../../lib/core/config/load');
    Object.assign(process.env, { ROTATED_NEW: 'n', ROTATED_OLD: 'o', SOURCE_PW: 'p' });
    parseConfig(
      [
        'repository: { url: "file:///tmp/r" }',
        'encryption: { key: "env:ROTATED_NEW", previousKeys: ["env:ROTATED_OLD"] }',
        'sources: { app: { engine: postgres, url: "postgres://app@db/app", password: "env:SOURCE_PW" } }',
      ].join('\n'),
      'rotated.yaml',
    );
    const env = childEnv();
    expect([env.ROTATED_NEW, env.ROTATED_OLD, env.SOURCE_PW]).toEqual([undefined, undefined, undefined]);
  });
});
