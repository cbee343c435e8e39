import { DatabaseUnreachable, ToolFailed, UsageError } from '../../errors';
import { SecretFile } from '../../process/secret-file';
import { runTool } from '../../process/tool';
import { childEnv } from '../../secrets';
import { mysqlBin } from './tools';
import { decodeUrlPart } from '../../url-part';

/** Seconds to wait for a server before declaring it unreachable. */
export const CONNECT_TIMEOUT_SECONDS = 5;

/** Where a MySQL/MariaDB server is and who we are there. The password stays in memory only. */
export interface MysqlEndpoint {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** '' when the URL names none. */
  readonly database: string;
  readonly password?: string;
}

/** Parses mysql://user[:password]@host[:port][/database] (mariadb:// too); `what` names it in errors. */
export function parseMysqlUrl(url: string, what: string): MysqlEndpoint {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`${what}: not a URL (expected mysql://user@host:port/database)`);
  }
  if (u.protocol !== 'mysql:' && u.protocol !== 'mariadb:') throw new UsageError(`${what}: expected a mysql:// URL, got ${u.protocol}//`);
  return {
    host: decodeUrlPart(u.hostname, what, 'host') || 'localhost',
    port: u.port ? Number(u.port) : 3306,
    user: decodeUrlPart(u.username, what, 'user') || 'root',
    database: decodeUrlPart(u.pathname.replace(/^\//, ''), what, 'database'),
    password: u.password ? decodeUrlPart(u.password, what, 'password') : undefined,
  };
}

export function withPassword(ep: MysqlEndpoint, password: string | undefined): MysqlEndpoint {
  return password === undefined ? ep : { ...ep, password };
}

/** user@host:port/database — for messages; never includes the password. */
export function describeEndpoint(ep: MysqlEndpoint): string {
  return `${ep.user}@${ep.host}:${ep.port}/${ep.database}`;
}

/** Backquotes an identifier for SQL. */
export function quoteIdent(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}

/** Single-quotes a string literal for SQL (backslashes escaped: NO_BACKSLASH_ESCAPES is off by default). */
export function quoteLiteral(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** A value in an option file: quoted, with the escapes the option-file reader understands. */
function optionValue(value: string): string {
  if (/[\n\r]/.test(value)) throw new UsageError('a MySQL password cannot contain a line break');
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * Connection settings for the client tools (mariadb, mariadb-dump). Everything, the password
 * included, goes into a private option file (mode 0600) passed as --defaults-file and removed on
 * close — never into argv, where `ps` would show it, nor into a MYSQL_PWD that children inherit.
 * --defaults-file also keeps the user's ~/.my.cnf and /etc/mysql from changing what we connect to.
 */
export class MysqlToolSession {
  readonly env: NodeJS.ProcessEnv;

  private constructor(
    readonly endpoint: MysqlEndpoint,
    private readonly optionFile: SecretFile,
  ) {
    this.env = childEnv();
    delete this.env.MYSQL_PWD;
  }

  static async open(ep: MysqlEndpoint): Promise<MysqlToolSession> {
    const lines = [
      '[client]',
      `host=${optionValue(ep.host)}`,
      `port=${ep.port}`,
      `user=${optionValue(ep.user)}`,
      'protocol=TCP',
      ...(ep.password === undefined ? [] : [`password=${optionValue(ep.password)}`]),
      // Only the client knows this option; the dump tool refuses unknown ones in [client].
      '[mysql]',
      `connect-timeout=${CONNECT_TIMEOUT_SECONDS}`,
      '',
    ];
    return new MysqlToolSession(ep, await SecretFile.write('mycnf', 'my.cnf', lines.join('\n')));
  }

  get defaultsFile(): string {
    return this.optionFile.path;
  }

  /** Arguments every tool of this session starts with (--defaults-file must come first). */
  get connectArgs(): string[] {
    return [`--defaults-file=${this.defaultsFile}`];
  }

  /**
   * Runs SQL through the client in batch mode and returns the rows, columns split at tabs
   * (batch mode escapes tabs, newlines and backslashes inside values: unescaped here).
   */
  async query(sql: string, what: string, database?: string): Promise<string[][]> {
    const args = [...this.connectArgs, '-N', '-B', '--default-character-set=utf8mb4', ...(database ? ['-D', database] : [])];
    let out: string;
    try {
      out = await runTool(mysqlBin('client'), args, { input: sql, env: this.env });
    } catch (e) {
      const msg = (e as Error).message;
      // `ERROR 2003 (HY000): Can't connect …`: the code comes before the SQL state. A connection
      // lost in the handshake (a server that accepts and never answers) is one never made.
      if (/\bERROR (1045|2002|2003|2005)\b|Can't connect|Access denied|Lost connection to server at 'handshake/.test(msg)) {
        throw new DatabaseUnreachable(`${what}: cannot connect to ${this.endpoint.host}:${this.endpoint.port} as ${this.endpoint.user}: ${msg}`, { cause: e });
      }
      throw e instanceof ToolFailed ? e : new ToolFailed(msg, { cause: e });
    }
    return out
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => line.split('\t').map(unescapeBatch));
  }

  async close(): Promise<void> {
    await this.optionFile.remove();
  }
}

function unescapeBatch(value: string): string {
  return value.replace(/\\([\\nt0])/g, (_m, c: string) => ({ '\\': '\\', n: '\n', t: '\t', '0': '\0' })[c]!);
}
