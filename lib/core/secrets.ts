import { readFile } from 'node:fs/promises';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SecretError } from './errors';

/**
 * Secret references (DESIGN.md §5): `env:NAME`, `file:/path`, `secret:<Secrets Manager ARN or name>`.
 * Secrets are resolved at the moment of use (§6) and no message built here ever contains one.
 */
export async function resolveSecret(ref: string, what: string): Promise<string> {
  const colon = ref.indexOf(':');
  const scheme = colon > 0 ? ref.slice(0, colon) : '';
  const rest = ref.slice(colon + 1);
  switch (scheme) {
    case 'env':
      return fromEnv(rest, what);
    case 'file':
      return fromFile(rest, what);
    case 'secret':
      return fromSecretsManager(rest, what);
    default: {
      // The ref may be a password pasted in by mistake: name its form, never its text.
      const got = /^[a-z][a-z0-9+.-]*$/i.test(scheme) ? `"${scheme}:…"` : 'a plain value (not shown)';
      throw new SecretError(`${what}: expected env:NAME, file:/path or secret:<ARN or name>, got ${got}`);
    }
  }
}

/**
 * Environment variables that hold a secret: those a secret was read from, those a loaded config
 * names (`env:` references, marked before anything runs), and AWS credentials, which no database
 * tool needs. Child processes do not inherit them.
 */
const secretVariables = new Set<string>(['AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_ACCESS_KEY_ID']);

/** Marks `env:NAME` references (the config's key and passwords): no child process gets NAME. */
export function markSecretVariables(refs: Iterable<string | undefined>): void {
  for (const ref of refs) if (ref?.startsWith('env:')) secretVariables.add(ref.slice(4));
}

/**
 * The environment for a child process (pg_dump, zstd, a throwaway server, …): ours, minus every
 * secret variable above and every TIDEMARK_* variable — Tidemark's own settings and the secrets
 * ECS injects (TIDEMARK_SECRET_*) configure Tidemark, never a tool, and a key variable this run's
 * config does not name (an old key left in the environment) is still a key. Tools get credentials
 * another way (a passfile), and a tool that dumps its environment on a crash must have none to dump.
 */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!secretVariables.has(k) && !k.startsWith('TIDEMARK_')) env[k] = v;
  }
  return { ...env, ...extra };
}

function fromEnv(name: string, what: string): string {
  secretVariables.add(name);
  const value = process.env[name];
  if (!value) throw new SecretError(`${what}: environment variable ${name} is not set`);
  return value;
}

async function fromFile(path: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    const reason = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`;
    throw new SecretError(`${what}: file ${path} ${reason}`, { cause: err });
  }
  // Editors add a final newline; only that one is dropped, so a secret may still end in whitespace.
  const value = text.replace(/\r?\n$/, '');
  if (!value) throw new SecretError(`${what}: file ${path} is empty`);
  return value;
}

const clients = new Map<string, SecretsManagerClient>();

async function fromSecretsManager(id: string, what: string): Promise<string> {
  // A full ARN names its region, which may differ from the caller's (cross-region replicas).
  const region = /^arn:[^:]+:secretsmanager:([^:]+):/.exec(id)?.[1] ?? '';
  // Loaded on first use: most runs never touch Secrets Manager, and the SDK costs startup time.
  const { GetSecretValueCommand, SecretsManagerClient } = await import('@aws-sdk/client-secrets-manager');
  let client = clients.get(region);
  if (!client) {
    client = new SecretsManagerClient(region ? { region } : {});
    clients.set(region, client);
  }
  let secret: string;
  try {
    const out = await client.send(new GetSecretValueCommand({ SecretId: id }));
    secret = out.SecretString ?? (out.SecretBinary ? Buffer.from(out.SecretBinary).toString('utf8') : '');
  } catch (err) {
    // AWS error messages describe the request (missing secret, denied action, no region), never the value.
    const { name, message } = err as Error;
    const reason = message ? `${name}: ${message.split('\n')[0]}` : name;
    throw new SecretError(`${what}: cannot read secret ${id} from Secrets Manager (${reason})`, { cause: err });
  }
  if (!secret) throw new SecretError(`${what}: secret ${id} has no value`);
  return passwordField(secret) ?? secret;
}

/** RDS-managed secrets are JSON `{ "username", "password", ... }`; the password is what we want. */
function passwordField(secret: string): string | undefined {
  if (!secret.startsWith('{')) return undefined;
  try {
    // JSON.parse errors quote the input, so they are swallowed rather than wrapped.
    const parsed: unknown = JSON.parse(secret);
    const password = (parsed as { password?: unknown } | null)?.password;
    return typeof password === 'string' ? password : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Hides the password of a connection URL (`scheme://user:password@host/...`, `?password=`), for logs
 * and error messages. Passwords are often pasted unencoded and may hold `@`, `/` or `:`, so the
 * password runs from the first `:` of the userinfo to the LAST `@`: when in doubt, hide more.
 */
export function redactUrl(url: string): string {
  let out = url;
  const start = url.indexOf('://');
  if (start >= 0) {
    const rest = url.slice(start + 3);
    const at = rest.lastIndexOf('@');
    const colon = rest.indexOf(':');
    if (at >= 0 && colon >= 0 && colon < at) {
      out = `${url.slice(0, start + 3)}${rest.slice(0, colon)}:***@${rest.slice(at + 1)}`;
    }
  }
  // libpq also takes `password=` as a query parameter or a key=value conninfo word.
  return out.replace(/(^|[?&\s])(password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^&\s]*)/gi, '$1$2***');
}
