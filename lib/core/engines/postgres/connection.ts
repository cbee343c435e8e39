import { Client } from 'pg';
import { DatabaseUnreachable, UsageError } from '../../errors';
import { SecretFile } from '../../process/secret-file';
import { childEnv } from '../../secrets';
import { decodeUrlPart } from '../../url-part';

/** Seconds to wait for a server before declaring it unreachable. */
export const CONNECT_TIMEOUT_SECONDS = 5;

/** Where a PostgreSQL server is and who we are there. The password stays in memory only. */
export interface PgEndpoint {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
  readonly password?: string;
  /** libpq options from the URL query (sslmode, sslrootcert, ...). */
  readonly options: Readonly<Record<string, string>>;
}

/** Parses postgres://user[:password]@host[:port]/database[?sslmode=...]; `what` names it in errors. */
export function parsePostgresUrl(url: string, what: string): PgEndpoint {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`${what}: not a URL (expected postgres://user@host:port/database)`);
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new UsageError(`${what}: expected a postgres:// URL, got ${u.protocol}//`);
  }
  const database = decodeUrlPart(u.pathname.replace(/^\//, ''), what, 'database');
  if (!database) throw new UsageError(`${what}: the URL names no database (postgres://user@host:port/database)`);
  const options: Record<string, string> = {};
  u.searchParams.forEach((v, k) => (options[k] = v));
  return {
    host: decodeUrlPart(u.hostname, what, 'host') || options.host || 'localhost',
    port: u.port ? Number(u.port) : 5432,
    user: decodeUrlPart(u.username, what, 'user') || 'postgres',
    database,
    password: u.password ? decodeUrlPart(u.password, what, 'password') : undefined,
    options,
  };
}

export function withDatabase(ep: PgEndpoint, database: string): PgEndpoint {
  return { ...ep, database };
}

export function withPassword(ep: PgEndpoint, password: string | undefined): PgEndpoint {
  return password === undefined ? ep : { ...ep, password };
}

/** user@host:port/database — for messages; never includes the password. */
export function describeEndpoint(ep: PgEndpoint): string {
  return `${ep.user}@${ep.host}:${ep.port}/${ep.database}`;
}

/**
 * Connects with a short timeout; connection failures become DatabaseUnreachable naming the server.
 * `replication: 'database'` opens a walsender connection that also takes SQL (IDENTIFY_SYSTEM and
 * selects, simple protocol only), and proves the REPLICATION privilege a base backup needs.
 */
export async function connectPg(ep: PgEndpoint, what: string, options: { replication?: 'database' } = {}): Promise<Client> {
  const client = new Client({
    ...(options.replication ? { replication: options.replication } : {}),
    host: ep.host,
    port: ep.port,
    user: ep.user,
    database: ep.database,
    password: ep.password,
    connectionTimeoutMillis: CONNECT_TIMEOUT_SECONDS * 1000,
    application_name: 'tidemark',
    ssl: sslOption(ep.options.sslmode),
  });
  client.on('error', () => undefined); // a dropped connection surfaces on the next query
  try {
    await client.connect();
    return client;
  } catch (e) {
    await client.end().catch(() => undefined);
    throw unreachable(e, ep, what);
  }
}

function sslOption(mode: string | undefined): boolean | { rejectUnauthorized: boolean } | undefined {
  if (!mode || mode === 'disable' || mode === 'allow' || mode === 'prefer') return undefined;
  return { rejectUnauthorized: mode === 'verify-ca' || mode === 'verify-full' };
}

/** SQLSTATE of a server error, if it is one. */
export function sqlState(e: unknown): string | undefined {
  return (e as { code?: string })?.code;
}

function unreachable(e: unknown, ep: PgEndpoint, what: string): DatabaseUnreachable | Error {
  const code = sqlState(e);
  if (code === '3D000') return e as Error; // database does not exist: callers decide
  const msg = (e as Error).message ?? String(e);
  const reason =
    code === 'ECONNREFUSED'
      ? 'connection refused'
      : /timeout/i.test(msg)
        ? `no answer within ${CONNECT_TIMEOUT_SECONDS} s`
        : // node-postgres's words for a SCRAM challenge with no password to answer it
          /client password must be a (non-empty )?string/.test(msg)
          ? 'the server asks for a password and none was given'
          : msg.replace(/\s+/g, ' ');
  return new DatabaseUnreachable(`${what}: cannot connect to ${ep.host}:${ep.port} as ${ep.user}: ${reason}`, { cause: e });
}

export async function withPg<T>(ep: PgEndpoint, what: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = await connectPg(ep, what);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Double-quotes an identifier for SQL. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Single-quotes a string literal for SQL (standard_conforming_strings, on since PostgreSQL 9.1). */
export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * Environment for libpq tools (pg_dump, pg_restore, psql). The password goes into a private
 * passfile that lives only as long as the session — never into argv, where `ps` would show it,
 * nor into a PGPASSWORD that child processes inherit.
 */
export class PgToolSession {
  private constructor(
    readonly env: NodeJS.ProcessEnv,
    private readonly passfile?: SecretFile,
  ) {}

  static async open(ep: PgEndpoint): Promise<PgToolSession> {
    const env: NodeJS.ProcessEnv = childEnv({
      PGHOST: ep.host,
      PGPORT: String(ep.port),
      PGUSER: ep.user,
      PGDATABASE: ep.database,
      PGCONNECT_TIMEOUT: String(CONNECT_TIMEOUT_SECONDS),
      PGAPPNAME: 'tidemark',
    });
    for (const [k, v] of Object.entries(ep.options)) {
      const name = LIBPQ_ENV[k];
      if (name) env[name] = v;
    }
    if (ep.password === undefined) return new PgToolSession(env);
    delete env.PGPASSWORD;
    const escape = (s: string) => s.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
    const passfile = await SecretFile.write('pgpass', 'pgpass', `${escape(ep.host)}:${ep.port}:*:${escape(ep.user)}:${escape(ep.password)}\n`);
    env.PGPASSFILE = passfile.path;
    return new PgToolSession(env, passfile);
  }

  async close(): Promise<void> {
    await this.passfile?.remove();
  }
}

const LIBPQ_ENV: Record<string, string> = {
  sslmode: 'PGSSLMODE',
  sslrootcert: 'PGSSLROOTCERT',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  target_session_attrs: 'PGTARGETSESSIONATTRS',
};
