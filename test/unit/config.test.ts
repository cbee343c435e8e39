import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { EXAMPLE_CONFIG_YAML, writeExampleConfig } from '../../lib/core/config/example';
import { configJsonSchemaText } from '../../lib/core/config/json-schema';
import { loadConfig, parseConfig, sourceConfig } from '../../lib/core/config/load';
import { ConfigError, UsageError } from '../../lib/core/errors';

const VALID = `
repository: file:///var/backups/tidemark
encryption: { key: env:TIDEMARK_KEY }
sources:
  app:
    engine: postgres
    url: postgres://backup@10.0.1.5:5432/app
    password: env:APP_DB_PASSWORD
`;

/** The ConfigError message `parseConfig` throws for `text`; it must be a single line. */
function errorOf(text: string, origin = 'tidemark.config.yaml'): string {
  try {
    parseConfig(text, origin);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error('expected a ConfigError');
}

/** VALID with one source whose body is `source` (YAML lines, indented under the source name). */
const withSource = (source: string) =>
  `repository: file:///r\nencryption: { key: env:K }\nsources:\n  app:\n${source.replace(/^/gm, '    ')}\n`;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tidemark-config-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('parseConfig', () => {
  it('accepts the minimal config of DESIGN.md §5 and fills defaults', () => {
    const config = parseConfig(VALID, 'tidemark.config.yaml');
    expect(config.sources.app).toEqual({
      engine: 'postgres',
      url: 'postgres://backup@10.0.1.5:5432/app',
      password: 'env:APP_DB_PASSWORD',
    });
    expect(config.compression).toEqual({ level: 1, threads: 0 });
  });

  it('accepts the same config as JSON', () => {
    const json = JSON.stringify({
      repository: { url: 's3://bucket/prefix', endpoint: 'http://127.0.0.1:4568' },
      encryption: { key: 'kms:alias/tidemark' },
      sources: { shop: { engine: 'mysql', url: 'mysql://backup@db:3306/shop' } },
    });
    expect(parseConfig(json, 'tidemark.config.json').sources.shop.engine).toBe('mysql');
  });

  it('parses the example config that `tidemark init` writes', () => {
    const config = parseConfig(EXAMPLE_CONFIG_YAML, 'example.yaml');
    expect(config.repository).toBe('file:///var/backups/tidemark');
    expect(config.encryption.key).toBe('env:TIDEMARK_KEY');
    expect(Object.keys(config.sources)).toEqual(['app']);
    expect(EXAMPLE_CONFIG_YAML).toMatch(/#\s+engine: mysql/);
    expect(EXAMPLE_CONFIG_YAML).toMatch(/#\s+url: s3:\/\//);
  });

  it('reports a YAML syntax error with file, line and column', () => {
    expect(errorOf('repository: file:///r\nsources: [a, b\nencryption: x\n')).toMatch(
      /^tidemark\.config\.yaml:3:1: .*end with a \]$/,
    );
  });

  it('rejects duplicate keys, naming the key and its line', () => {
    expect(errorOf(`${VALID}repository: file:///other\n`)).toBe(
      "tidemark.config.yaml:9:1: duplicate key 'repository'",
    );
  });

  it('reports a JSON syntax error with its position', () => {
    expect(errorOf('{\n  "repository": "file:///r",\n}', 'c.json')).toMatch(/^c\.json:3:1: /);
  });

  it('rejects an unknown engine, listing the known ones', () => {
    expect(errorOf(withSource('engine: oracle\nurl: oracle://h/db'))).toBe(
      'tidemark.config.yaml: sources.app.engine: expected postgres or mysql, got "oracle"',
    );
  });

  it('names an unknown key and suggests the close one', () => {
    expect(errorOf(withSource('engine: postgres\nurl: postgres://h/db\npasword: env:PW'))).toBe(
      "tidemark.config.yaml: sources.app.pasword: unknown key, did you mean 'password'?",
    );
    expect(errorOf(`${VALID}retention: 7d\n`)).toBe('tidemark.config.yaml: retention: expected a mapping, got "7d"');
    expect(errorOf(`${VALID}retension: {}\n`)).toBe("tidemark.config.yaml: retension: unknown key, did you mean 'retention'?");
  });

  it('rejects a repository that is not file:// or s3://', () => {
    expect(errorOf(VALID.replace('file:///var/backups/tidemark', 'http://example.com/backups'))).toBe(
      'tidemark.config.yaml: repository: expected a file:// or s3:// URL, got "http://example.com/backups"',
    );
    expect(errorOf(VALID.replace('file:///var/backups/tidemark', '42'))).toMatch(
      /^tidemark\.config\.yaml: repository: expected a file:\/\/ or s3:\/\/ URL, or a mapping .*, got 42$/,
    );
  });

  it('requires at least one source', () => {
    expect(errorOf('repository: file:///r\nencryption: { key: env:K }\nsources: {}\n')).toBe(
      'tidemark.config.yaml: sources: at least one source is required, got {}',
    );
  });

  it('rejects a secret reference of the wrong form without echoing a literal password', () => {
    expect(errorOf(withSource('engine: postgres\nurl: postgres://h/db\npassword: vault:db/app'))).toBe(
      'tidemark.config.yaml: sources.app.password: expected env:NAME, file:/path or secret:<Secrets Manager ARN or name>, got a literal value (not shown)',
    );
    expect(errorOf(withSource('engine: postgres\nurl: postgres://h/db\npassword: hunter2'))).not.toContain('hunter2');
    expect(errorOf(withSource('engine: postgres\nurl: postgres://h/db\npassword: 12345'))).not.toContain('12345');
  });

  it('reports a missing key and an empty file', () => {
    expect(errorOf('repository: file:///r\nsources: { a: { engine: mysql, url: "mysql://h" } }\n')).toBe(
      'tidemark.config.yaml: encryption: required key is missing',
    );
    expect(errorOf('# nothing yet\n')).toMatch(/^tidemark\.config\.yaml: the config is empty/);
  });

  it('shortens long values and hides URL passwords in them', () => {
    const url = `http://user:s3cret@${'h'.repeat(100)}/`;
    const message = errorOf(VALID.replace('file:///var/backups/tidemark', url));
    expect(message).not.toContain('s3cret');
    expect(message).toMatch(/, got "http:\/\/user:\*\*\*@h+\.\.\.$/);
    expect(message.length).toBeLessThan(200);
  });

  it('reports the first problem and counts the rest', () => {
    const text = 'repository: ftp://x\nencryption: { key: plain }\nsources: { a: { engine: oracle } }\nextra: 1\n';
    expect(errorOf(text)).toBe(
      'tidemark.config.yaml: repository: expected a file:// or s3:// URL, got "ftp://x" (and 3 more problems)',
    );
    expect(errorOf(`${VALID}extra: 1\nmore: 2\n`)).toMatch(/extra: unknown key \(and 1 more problem\)$/);
  });

  it('quotes source names that are not plain words', () => {
    expect(errorOf(withSource('engine: mysql\nurl: x').replace('  app:', '  "db.prod":'))).toBe(
      'tidemark.config.yaml: sources["db.prod"].url: expected mysql://user@host:port[/database], got "x"',
    );
  });
});

describe('loadConfig', () => {
  it('reads YAML and JSON files', async () => {
    const yamlPath = join(dir, 'tidemark.config.yaml');
    await writeFile(yamlPath, VALID);
    const loaded = await loadConfig(yamlPath);
    expect(loaded.path).toBe(yamlPath);
    expect(loaded.config.sources.app.engine).toBe('postgres');

    const jsonPath = join(dir, 'tidemark.config.json');
    await writeFile(jsonPath, JSON.stringify(loaded.config));
    expect((await loadConfig(jsonPath)).config).toEqual(loaded.config);
  });

  it('says how to create a missing config file', async () => {
    const path = join(dir, 'absent.yaml');
    const error = loadConfig(path);
    await expect(error).rejects.toThrow(ConfigError);
    await expect(error).rejects.toThrow(`config file not found: ${path} (create one with: tidemark init)`);
  });

  it('prefixes validation errors with the file path', async () => {
    const path = join(dir, 'bad.yaml');
    await writeFile(path, `${VALID}extra: 1\n`);
    await expect(loadConfig(path)).rejects.toThrow(`${path}: extra: unknown key`);
  });
});

describe('sourceConfig', () => {
  const config = parseConfig(`${VALID}  shop:\n    engine: mysql\n    url: mysql://h\n`, 'c.yaml');

  it('returns the named source', () => {
    expect(sourceConfig(config, 'shop').engine).toBe('mysql');
  });

  it('names the configured sources when the name is unknown', () => {
    expect(() => sourceConfig(config, 'x')).toThrow(UsageError);
    expect(() => sourceConfig(config, 'x')).toThrow("unknown source 'x' (configured: app, shop)");
    expect(() => sourceConfig(config, 'toString')).toThrow(UsageError);
  });
});

describe('writeExampleConfig', () => {
  it('writes the example with an absolute repository beside it, and never overwrites without force', async () => {
    const path = join(dir, 'init.yaml');
    await writeExampleConfig(path, {});
    const written = (await loadConfig(path)).config;
    expect(written.repository).toBe(pathToFileURL(join(dir, 'tidemark-repo')).href);
    expect({ ...written, repository: 'file:///var/backups/tidemark' }).toEqual(parseConfig(EXAMPLE_CONFIG_YAML, 'e.yaml'));

    await writeFile(path, 'mine');
    await expect(writeExampleConfig(path, {})).rejects.toThrow(ConfigError);
    await expect(writeExampleConfig(path, {})).rejects.toThrow(path);
    expect(await readFile(path, 'utf8')).toBe('mine');

    await writeExampleConfig(path, { force: true });
    expect((await loadConfig(path)).config).toEqual(written);
  });
});

describe('docs/tidemark.config.schema.json', () => {
  it('is what `npm run schema` generates from the zod schema (run it after changing schema.ts)', async () => {
    const committed = await readFile(join(__dirname, '../../docs/tidemark.config.schema.json'), 'utf8');
    expect(committed).toBe(configJsonSchemaText());
  });
});
