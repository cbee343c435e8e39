import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ToolFailed } from '../errors';
import { mysqlBin } from '../engines/mysql/tools';
import { freePort } from '../free-port';
import { childEnv } from '../secrets';
import type { ServerTracker } from './throwaway-postgres';
import { copyFromTemplate, type TemplateSpec } from './data-dir-template';
import { lookupOsUser, type OsUser } from './os-user';
import { runTool, toolVersion } from './tool';

export type MariadbSettings = Record<string, string | number>;

export interface ThrowawayMariadbOptions {
  /** Extra [mariadbd] settings, e.g. `{ max_connections: 20 }`. @default - none */
  settings?: MariadbSettings;
  /** Binary log on (ROW format, server_id=1), as point-in-time recovery needs. @default true */
  binlog?: boolean;
  /** Relaxed flushing (innodb_flush_log_at_trx_commit=2, sync_binlog=0): throwaway data. @default true */
  fast?: boolean;
  /** Databases to create once the server is up. @default - none */
  databases?: string[];
  /** A directory to create and use as the root instead of a new temp dir (a drill's scratch dir). @default - mkdtemp */
  dir?: string;
  /** Told about the running server, so it is stopped if this process dies first. @default - not tracked */
  track?: ServerTracker;
  /**
   * Copy an initialised data directory from this template directory instead of running
   * mariadb-install-db (data-dir-template.ts; made there the first time). @default - install-db
   */
  templates?: string;
}

export interface ThrowawayMariadb extends AsyncDisposable {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** Temp root, owned by the server's OS user; holds my.cnf, the data, binlogs, socket and log. */
  readonly dir: string;
  readonly dataDir: string;
  readonly socket: string;
  /** Option file with a [client] section: pass `--defaults-file=<this>` to client tools. */
  readonly defaultsFile: string;
  url(database?: string): string;
  /** Runs SQL through the client in batch mode (-N -B); returns the output, trimmed. */
  sql(statement: string, database?: string): Promise<string>;
  createDatabase(name: string): Promise<void>;
  /** Stops the server (SHUTDOWN, or SIGKILL as a crash would) and starts it again on the same port and data. */
  restart(mode?: 'clean' | 'kill'): Promise<void>;
  /** Stops the server and deletes `dir`. Safe to call twice. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 60_000;

/** mariadbd drops privileges itself (--user), but install-db must chown files to that user. */
function serverUserName(): string | undefined {
  if (process.getuid?.() !== 0) return undefined;
  if (!lookupOsUser('mysql')) throw new ToolFailed('running as root needs the OS user "mysql"; run scripts/setup.sh');
  return 'mysql';
}

function osIds(name: string): OsUser {
  const ids = lookupOsUser(name);
  if (!ids) throw new ToolFailed(`no OS user "${name}"; run scripts/setup.sh`);
  return ids;
}

function cnfLines(settings: MariadbSettings): string[] {
  return Object.entries(settings).map(([key, value]) => {
    if (!/^[a-z_][a-z0-9_-]*$/i.test(key) || /[\r\n]/.test(String(value))) {
      throw new ToolFailed(`invalid MariaDB setting: ${key}=${value}`);
    }
    return `${key}=${value}`;
  });
}

const lastLines = (text: string, lines: number) => text.trimEnd().split('\n').slice(-lines).join('\n');

async function logTail(path: string, lines = 25): Promise<string> {
  return lastLines(await readFile(path, 'utf8').catch(() => '(no server log)'), lines);
}

const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;

class Server implements ThrowawayMariadb {
  readonly host = '127.0.0.1' as const;
  readonly dataDir: string;
  readonly socket: string;
  readonly defaultsFile: string;
  readonly log: string;
  private child: ChildProcess | undefined;
  private untrack: (() => void) | undefined;
  private stopping: Promise<void> | undefined;
  private user: string | undefined;

  constructor(
    readonly dir: string,
    readonly port: number,
    private readonly track: ServerTracker | undefined,
  ) {
    this.dataDir = join(dir, 'data');
    this.socket = join(dir, 'mariadb.sock');
    this.defaultsFile = join(dir, 'my.cnf');
    this.log = join(dir, 'server.log');
  }

  async start(user: string | undefined): Promise<void> {
    this.user = user;
    const args = [`--defaults-file=${this.defaultsFile}`, ...(user ? [`--user=${user}`] : [])];
    // Detached with its output in log-error: the server must not die with our terminal's Ctrl-C
    // before stop() or the exit registry has shut it down cleanly.
    const child = spawn(mysqlBin('server'), args, { detached: true, stdio: 'ignore', env: childEnv() });
    child.on('error', () => undefined);
    child.unref();
    this.child = child;
    if (child.pid !== undefined) {
      const pid = child.pid;
      this.untrack = this.track?.({ pid, signal: 'SIGKILL', dir: this.dir, stopNow: () => this.stopNow(pid) });
    }
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (exited(child)) break;
      if (await answers(this.socket)) return;
      if (Date.now() > deadline) break;
      await sleep(10);
    }
    const why = exited(child) ? `exited with ${child.exitCode ?? child.signalCode}` : `not answering after ${START_TIMEOUT_MS / 1000} s`;
    const tail = await logTail(this.log);
    await this.stop();
    throw new ToolFailed(`MariaDB in ${this.dataDir} did not start (${why}):\n${tail}`);
  }

  /** Synchronous, for process exit: nothing to preserve, so no graceful shutdown. */
  private stopNow(pid: number): void {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  url(database = ''): string {
    return `mysql://root@${this.host}:${this.port}/${encodeURIComponent(database)}`;
  }

  async sql(statement: string, database?: string): Promise<string> {
    const args = [`--defaults-file=${this.defaultsFile}`, '-N', '-B', ...(database ? ['-D', database] : [])];
    return (await runTool(mysqlBin('client'), args, { input: statement })).trim();
  }

  async createDatabase(name: string): Promise<void> {
    await this.sql(`CREATE DATABASE \`${name.replace(/`/g, '``')}\``);
  }

  async restart(mode: 'clean' | 'kill' = 'clean'): Promise<void> {
    await this.shutdown(mode);
    await this.start(this.user);
  }

  private async shutdown(mode: 'clean' | 'kill' = 'clean'): Promise<void> {
    const child = this.child;
    if (!child) return;
    const gone = new Promise<void>((resolve) => (exited(child) ? resolve() : child.once('exit', () => resolve())));
    child.ref(); // unref'd at start; without this Node may exit while we wait
    if (mode === 'kill' && !exited(child)) child.kill('SIGKILL');
    // SIGTERM is mariadbd's normal shutdown, as SQL SHUTDOWN is (without a client process for it);
    // mariadb-admin shutdown polls the pid file once a second.
    if (!exited(child) && mode === 'clean') child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await gone;
    clearTimeout(timer);
    this.untrack?.();
    this.untrack = undefined;
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.shutdown();
      await rm(this.dir, { recursive: true, force: true });
    })();
    return this.stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/**
 * Whether a server answers on the Unix socket: it sends its handshake (protocol 10) to every new
 * connection once it accepts them, or an error packet (too many connections, ...), which is an
 * answer too. A socket connect every 10 ms instead of a `mariadb-admin ping` process every 100 ms.
 */
function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = connect(socket);
    const done = (ok: boolean) => {
      conn.destroy();
      resolve(ok);
    };
    conn.setTimeout(1_000, () => done(false));
    conn.once('error', () => done(false));
    conn.once('close', () => done(false));
    // A packet: 3 bytes of length, a sequence number, then the payload's first byte.
    let got = Buffer.alloc(0);
    conn.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length >= 5) done(got[4] === 0x0a || got[4] === 0xff);
    });
  });
}

function myCnf(server: Server, options: ThrowawayMariadbOptions): string {
  const { binlog = true, fast = true } = options;
  const mariadbd = cnfLines({
    datadir: server.dataDir,
    port: server.port,
    'bind-address': server.host,
    socket: server.socket,
    'pid-file': join(server.dir, 'mariadb.pid'),
    'log-error': server.log,
    // Its own temp dir: servers bootstrapping side by side in a shared /tmp have tripped over each
    // other's temporary tables (install-db failed with "Unknown table 'mysql.tmp_user_sys'").
    tmpdir: join(server.dir, 'tmp'),
    server_id: 1,
    ...(binlog ? { log_bin: join(server.dir, 'binlog', 'mariadb-bin'), binlog_format: 'ROW' } : {}),
    // A small redo log makes install-db noticeably quicker; tests needing more can override it.
    ...(fast ? { innodb_flush_log_at_trx_commit: 2, sync_binlog: 0, innodb_doublewrite: 0, innodb_log_file_size: '16M' } : {}),
    ...options.settings,
  });
  const client = cnfLines({ port: server.port, socket: server.socket, user: 'root' });
  return ['[mariadbd]', ...mariadbd, '', '[client]', ...client, ''].join('\n');
}

/** The data-dir template of the installed server's version and the options install-db's data depends on (not port or paths). */
export async function mariadbTemplate(root: string, options: ThrowawayMariadbOptions): Promise<TemplateSpec> {
  const user = serverUserName();
  const { binlog = true, fast = true } = options;
  // The redo log's size is not the data's: InnoDB (10.5+) resizes the log at start when the setting
  // differs, so a template made with the small log serves a server that asks for a big one.
  const { innodb_log_file_size: _redo, ...settings } = options.settings ?? {};
  const version = /\d+(\.\d+)+/.exec(await toolVersion(mysqlBin('server'), { env: childEnv() }))?.[0] ?? 'unknown';
  const optionsHash = createHash('sha256').update(JSON.stringify({ binlog, fast, settings })).digest('hex').slice(0, 12);
  return {
    root,
    key: `mariadb-${version}-${optionsHash}`,
    name: 'data',
    ...(user ? { user: osIds(user) } : {}),
    make: async (parent) => installDb(await prepareServer(parent, 0, { ...options, settings }, user), user),
  };
}

/** The server's own directories and option file in `dir`, owned by its OS user; no data yet. */
async function prepareServer(dir: string, port: number, options: ThrowawayMariadbOptions, user: string | undefined): Promise<Server> {
  const server = new Server(dir, port, options.track);
  const ownDirs = [dir, join(dir, 'binlog'), join(dir, 'tmp')];
  await Promise.all(ownDirs.slice(1).map((path) => mkdir(path)));
  await writeFile(server.defaultsFile, myCnf(server, options));
  if (user) {
    const { uid, gid } = osIds(user);
    await Promise.all(ownDirs.map((path) => chown(path, uid, gid)));
  }
  return server;
}

async function installDb(server: Server, user: string | undefined): Promise<void> {
  await runTool(mysqlBin('installDb'), [
    `--defaults-file=${server.defaultsFile}`,
    ...(user ? [`--user=${user}`] : []),
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
  ]).catch(async (err: unknown) => {
    // Its own output is mostly generic advice; the reason is in the server log.
    throw new ToolFailed(`mariadb-install-db failed in ${server.dir}:\n${await logTail(server.log)}`, { cause: err });
  });
}

/** Starts a private MariaDB server in a temp dir on a free port; stop() removes every trace. */
export async function startThrowawayMariadb(options: ThrowawayMariadbOptions = {}): Promise<ThrowawayMariadb> {
  const user = serverUserName();
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'tidemark-maria-')));
  if (options.dir) await mkdir(dir, { mode: 0o700 }); // its parent is the caller's, made reachable for the server's OS user
  try {
    const server = await prepareServer(dir, await freePort(), options, user);
    if (options.templates) {
      await copyFromTemplate(await mariadbTemplate(options.templates, options), dir);
    } else {
      await installDb(server, user);
    }
    await server.start(user);
    try {
      for (const name of options.databases ?? []) await server.createDatabase(name);
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
