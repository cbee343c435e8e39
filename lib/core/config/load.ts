import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError, UsageError } from '../errors';
import { echoInput } from '../format';
import { markSecretVariables, redactUrl } from '../secrets';
import { TidemarkConfigSchema, type SourceConfig, type TidemarkConfig } from './schema';

export interface LoadedConfig {
  path: string;
  config: TidemarkConfig;
}

/** Reads and validates a config file; every failure is a one-line ConfigError naming file and key. */
export async function loadConfig(path: string): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new ConfigError(`config file not found: ${path} (create one with: tidemark init)`, { cause: err });
    }
    const reason = code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : code;
    throw new ConfigError(`cannot read config file ${path}: ${reason ?? String(err)}`, { cause: err });
  }
  return { path, config: parseConfig(text, path) };
}

/** Parses config text; `origin` names it in errors, and a `.json` origin selects JSON syntax. */
export function parseConfig(text: string, origin: string): TidemarkConfig {
  const body = text.replace(/^\uFEFF/, '');
  const raw = /\.json$/i.test(origin) ? parseJson(body, origin) : parseYaml(body, origin);
  // The schema and its messages recurse: a pathological document must not reach them.
  if (depth(raw) > MAX_DEPTH) throw new ConfigError(`${origin}: nested more than ${MAX_DEPTH} levels deep; a config is a few levels of mappings`);
  const result = TidemarkConfigSchema.safeParse(raw);
  if (result.success) {
    // From here on no tool inherits the variables the key and the passwords come from.
    const { key, previousKeys = [] } = result.data.encryption;
    markSecretVariables([key, ...previousKeys, ...Object.values(result.data.sources).map((s) => s.password)]);
    return result.data;
  }
  const [first, ...more] = problems(result.error.issues, raw, []);
  const tail = more.length ? ` (and ${more.length} more problem${more.length > 1 ? 's' : ''})` : '';
  throw new ConfigError(`${origin}: ${first}${tail}`, { cause: result.error });
}

const MAX_DEPTH = 32;

/** How deeply mappings and lists nest (iterative: the value may be deeper than the stack). */
function depth(value: unknown): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    deepest = Math.max(deepest, d + 1);
    if (deepest > MAX_DEPTH) return deepest;
    for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return deepest;
}

export function sourceConfig(config: TidemarkConfig, name: string): SourceConfig {
  const source = Object.hasOwn(config.sources, name) ? config.sources[name] : undefined;
  if (!source) {
    const names = Object.keys(config.sources).join(', ');
    throw new UsageError(`unknown source '${echoInput(name)}' (configured: ${names})`);
  }
  return source;
}

function parseYaml(text: string, origin: string): unknown {
  // `merge` lets several sources share settings through `<<: *defaults`.
  // logLevel: warnings are errors below; the library must not print them to stderr itself.
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, merge: true, logLevel: 'error' });
  // Warnings count: an unknown tag such as `!env` would otherwise be silently dropped.
  const err = doc.errors[0] ?? doc.warnings[0];
  if (err) {
    const reason =
      err.code === 'DUPLICATE_KEY' ? `duplicate key '${keyAt(text, err.pos[0])}'` : /call stack/i.test(err.message) ? 'nested too deeply' : err.message;
    throw new ConfigError(`${at(origin, text, err.pos[0])}: ${reason}`, { cause: err });
  }
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    const message = (e as Error).message;
    throw new ConfigError(`${origin}: ${/call stack/i.test(message) ? 'nested too deeply' : message.split('\n')[0]}`, { cause: e });
  }
}

/** The (unquoted) mapping key that starts at `offset`. */
function keyAt(text: string, offset: number): string {
  const token = /^("[^"]*"|'[^']*'|[^:,}\n]*)/.exec(text.slice(offset))?.[1] ?? '';
  return token.trim().replace(/^["']|["']$/g, '');
}

function parseJson(text: string, origin: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const message = (e as Error).message;
    const pos = /at position (\d+)/.exec(message);
    // V8 quotes the input in some messages; the position is enough to find the spot.
    const reason = message.replace(/,? ".*" is not valid JSON$/s, '').replace(/ in JSON at position.*$/s, '');
    throw new ConfigError(`${pos ? at(origin, text, Number(pos[1])) : origin}: ${reason}`, { cause: e });
  }
}

/** `file:line:col` for a character offset, as editors and terminals link them. */
function at(origin: string, text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return `${origin}:${line}:${offset - before.lastIndexOf('\n')}`;
}

type Issue = z.core.$ZodIssue;
type Path = readonly PropertyKey[];

/** Turns zod issues into messages `key: problem, got value`, one per distinct problem. */
function problems(issues: readonly Issue[], raw: unknown, base: Path): string[] {
  return issues.flatMap((iss): string[] => {
    const path = [...base, ...iss.path];
    const value = valueAt(raw, path);
    const line = (problem: string, where: Path = path) => (where.length ? `${dotted(where)}: ${problem}` : problem);
    const got = (problem: string) => line(`${problem}, got ${show(value, path)}`);
    switch (iss.code) {
      case 'unrecognized_keys':
        return iss.keys.map((key) => line(unknownKey(key, path), [...path, key]));
      case 'invalid_union': {
        if ('options' in iss && iss.options?.length) {
          return [value === undefined ? line(`missing, ${expected(iss.options)}`) : got(expected(iss.options))];
        }
        // Branches that failed only on the type at the union itself did not apply to this value.
        const applied = iss.errors.filter((branch) => !branch.every((b) => b.code === 'invalid_type' && !b.path.length));
        return applied.length === 1 ? problems(applied[0], raw, path) : [got(iss.message)];
      }
      case 'invalid_key':
        return [line(`${iss.issues[0]?.message ?? 'invalid key'}, got ${JSON.stringify(String(path.at(-1)))}`)];
      case 'invalid_type':
        if (!path.length && value == null) return ['the config is empty: expected repository, encryption and sources'];
        if (!path.length) return [got('expected a mapping with repository, encryption and sources')];
        if (value === undefined) return [line('required key is missing')];
        return [got(`expected ${article(iss.expected)}`)];
      case 'invalid_value':
        return [got(expected(iss.values))];
      case 'too_small':
        if (iss.origin === 'string') return [got('must not be empty')];
        return [got(`expected at least ${String(iss.minimum)}`)];
      case 'too_big':
        return [got(`expected at most ${String(iss.maximum)}`)];
      case 'invalid_format':
        return [got(iss.format === 'regex' ? iss.message : `expected a valid ${iss.format === 'url' ? 'URL' : iss.format}`)];
      default:
        return [got(iss.message)];
    }
  });
}

function unknownKey(key: string, objectPath: Path): string {
  const known = knownKeys(TidemarkConfigSchema, objectPath);
  const best = known
    .map((k) => ({ k, d: editDistance(key.toLowerCase(), k.toLowerCase()) }))
    .filter(({ d }) => d <= 2 && d < key.length)
    .sort((a, b) => a.d - b.d)[0];
  return best ? `unknown key, did you mean '${best.k}'?` : 'unknown key';
}

/** Keys the schema accepts for the object at `path` (all union branches together). */
function knownKeys(schema: z.core.$ZodType, path: Path): string[] {
  const def = schema._zod.def as z.core.$ZodTypeDef & Record<string, unknown>;
  switch (def.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
      return knownKeys(def.innerType as z.core.$ZodType, path);
    case 'pipe':
      return knownKeys(def.in as z.core.$ZodType, path);
    case 'union':
      return [...new Set((def.options as z.core.$ZodType[]).flatMap((o) => knownKeys(o, path)))];
    case 'record':
      return path.length ? knownKeys(def.valueType as z.core.$ZodType, path.slice(1)) : [];
    case 'object': {
      const shape = def.shape as Record<string, z.core.$ZodType>;
      if (!path.length) return Object.keys(shape);
      const next = shape[String(path[0])];
      return next ? knownKeys(next, path.slice(1)) : [];
    }
    default:
      return [];
  }
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}

function valueAt(raw: unknown, path: Path): unknown {
  let v = raw;
  for (const key of path) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, key)) return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

/** `sources.app.url`, with brackets for names that are not plain words (`sources["db.prod"]`). */
function dotted(path: Path): string {
  return path
    .map((k, i) => {
      if (typeof k === 'number') return `[${k}]`;
      const s = String(k);
      return /^[A-Za-z_][A-Za-z0-9_-]*$/.test(s) ? (i ? `.${s}` : s) : `[${JSON.stringify(s)}]`;
    })
    .join('');
}

const SECRET_KEYS = new Set(['password', 'key']);

/** The offending value as short JSON; literal secrets are never echoed, URLs lose their password. */
function show(value: unknown, path: Path): string {
  if (value === undefined) return 'nothing';
  const isRef = typeof value === 'string' && /^(env|file|secret|kms):/.test(value);
  if (SECRET_KEYS.has(String(path.at(-1))) && !isRef) return 'a literal value (not shown)';
  let text: string;
  try {
    text = JSON.stringify(typeof value === 'string' ? redactUrl(value) : value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function expected(options: readonly unknown[]): string {
  const names = options.map(String);
  const list = names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}` : names[0];
  return `expected ${list}`;
}

function article(type: string): string {
  const names: Record<string, string> = { object: 'a mapping', array: 'a list', boolean: 'true or false' };
  return names[type] ?? `a ${type}`;
}
