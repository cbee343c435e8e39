import { spawnSync } from 'node:child_process';
import { appendFileSync, rmSync } from 'node:fs';
import { chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Client } from 'pg';
import { ToolFailed } from '../errors';
import { startPostmaster, stopPostmaster } from '../engines/postgres/postmaster';
import { pgBin } from '../engines/postgres/tools';
import { freePort } from '../free-port';
import { childEnv } from '../secrets';
import { copyFromTemplate, makeSpare, type TemplateSpec } from './data-dir-template';
import { lookupOsUser, type OsUser } from './os-user';
import { runTool, toolVersion } from './tool';

/**
 * A throwaway server a caller may want stopped if its process ends first (lib/local's exit
 * registry and watchdog). The drill worker passes none: a worker killed mid-drill leaves its
 * server for `drill-cleanup`, which finds it by its scratch directory.
 */
export interface LiveServer {
  /** Server process id (postmaster, mariadbd). */
  pid: number;
  /** The signal that makes the server stop at once: SIGQUIT for postgres, SIGKILL for mariadbd. */
  signal: NodeJS.Signals;
  /** Root to delete once the server is gone. */
  dir: string;
  /** Stop the server synchronously and delete `dir`. Runs during process exit: must not throw. */
  stopNow(): void;
}

/** Registers a live server; returns the function that forgets it again. */
export type ServerTracker = (server: LiveServer) => () => void;

export type PostgresSettings = Record<string, string | number>;

/** A login that must prove its password over TCP: a superuser, so it can back up and restore anything. */
export interface ScramLogin {
  readonly method: 'scram-sha-256';
  readonly user: string;
  readonly password: string;
}

export interface ThrowawayPostgresOptions {
  /** Extra postgresql.conf settings, e.g. `{ wal_level: 'logical' }`. @default - none */
  settings?: PostgresSettings;
  /** pg_hba.conf lines placed before the trust rules, so they take precedence. @default - none */
  extraHba?: string[];
  /** Databases to create once the server is up. @default - only `postgres` */
  databases?: string[];
  /** fsync and synchronous_commit off: a throwaway cluster need not survive a power cut. @default true */
  fast?: boolean;
  /**
   * How TCP connections (127.0.0.1) authenticate. With a `ScramLogin`, every one of them must prove
   * a password with SCRAM, and that login is created as a superuser; `postgres` has no password, so
   * it cannot log in over TCP. The harness's own psql (sql(), createDatabase()) uses the Unix
   * socket, which stays trusted.
   * @default 'trust' - anyone connects as anyone, without a password
   */
  auth?: 'trust' | ScramLogin;
  /** initdb --data-checksums (physical backups validate page checksums when a cluster has them). @default false */
  dataChecksums?: boolean;
  /** The server's bin directory (initdb, pg_ctl, postgres, psql): a given major. @default - the newest installed */
  binDir?: string;
  /** A directory to create and use as the root instead of a new temp dir (a drill's scratch dir). @default - mkdtemp */
  dir?: string;
  /**
   * Copy an initialised data directory from this template directory instead of running initdb
   * (data-dir-template.ts; made there the first time). Every copy has the template's system
   * identifier: for throwaway instances only, never a source. @default - initdb
   */
  templates?: string;
  /**
   * With `templates`: take a spare copy of the template made ahead (a rename, not a copy) and make
   * the next spare when stopped (data-dir-template.ts, copyFromTemplate's `spare`). For a drill's instance,
   * whose start counts in its RTO and whose stop does not. @default false
   */
  spares?: boolean;
  /** Told about the running server, so it is stopped if this process dies first. @default - not tracked */
  track?: ServerTracker;
  /**
   * Start as a streaming standby of this server (pg_basebackup -R over TCP as `postgres`) instead
   * of a new cluster; `select pg_promote()` makes it a primary on the next timeline. `auth`,
   * `dataChecksums` and `databases` come from the primary. @default - a new cluster (initdb)
   */
  standbyOf?: { readonly port: number; readonly binDir: string };
}

export interface ThrowawayPostgres extends AsyncDisposable {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** Temp root, owned by the server's OS user; tests may put WAL archives and backups here. */
  readonly dir: string;
  readonly dataDir: string;
  readonly binDir: string;
  /** The server's log: what `log_statement` and friends record lands here. */
  readonly logFile: string;
  /** postgres://user[:password]@127.0.0.1:port/database; the password only when one is given. */
  url(database?: string, user?: string, password?: string): string;
  /** Runs SQL through psql; returns unaligned, tuples-only output, trimmed. */
  sql(statement: string, database?: string): Promise<string>;
  createDatabase(name: string): Promise<void>;
  /**
   * Restarts the server, first appending `settings` (later entries win in postgresql.conf).
   * `immediate` stops it the way a crash would (no checkpoint; crash recovery on start).
   */
  restart(settings?: PostgresSettings, mode?: 'fast' | 'immediate'): Promise<void>;
  /** Stops the server and deletes `dir`. Safe to call twice. */
  stop(): Promise<void>;
}

/** PostgreSQL refuses to run as root, so a root process runs every binary as `postgres`. */
function serverUser(): OsUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const ids = lookupOsUser('postgres');
  if (!ids) throw new ToolFailed('running as root needs the OS user "postgres"; run scripts/setup.sh');
  return ids;
}

// PG* variables in our environment (PGPORT, PGSERVICE, ...) must not redirect the tools, and the
// server keeps no secret of ours in its environment (childEnv).
function toolEnv(dir: string): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(childEnv()).filter(([key]) => !key.startsWith('PG')));
  return { ...env, HOME: dir };
}

function run(file: string, args: string[], dir: string, user: OsUser | undefined, input?: string): Promise<string> {
  return runTool(file, args, { cwd: dir, env: toolEnv(dir), ...user, input });
}

function confLines(settings: PostgresSettings): string {
  return Object.entries(settings)
    .map(([key, value]) => {
      if (!/^[a-z_][a-z0-9_.]*$/i.test(key)) throw new ToolFailed(`invalid postgresql.conf setting name: ${key}`);
      return `${key} = ${typeof value === 'number' ? value : `'${value.replace(/'/g, "''")}'`}\n`;
    })
    .join('');
}

const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;

class Cluster implements ThrowawayPostgres {
  readonly host = '127.0.0.1' as const;
  readonly dataDir: string;
  readonly logFile: string;
  private untrack: (() => void) | undefined;
  private stopping: Promise<void> | undefined;

  constructor(
    readonly dir: string,
    readonly binDir: string,
    readonly port: number,
    private readonly user: OsUser | undefined,
    private readonly track: ServerTracker | undefined,
    /** The template to make the next spare of once stopped (the `spares` option). */
    private readonly spareOf?: TemplateSpec,
  ) {
    this.dataDir = join(dir, 'pgdata');
    this.logFile = join(dir, 'server.log');
  }

  private bin(name: string): string {
    return join(this.binDir, name);
  }

  async start(): Promise<void> {
    // A server still starting after the timeout is stopped: it must not outlive its deleted directory.
    const pid = await startPostmaster(this.binDir, this.dataDir, { logFile: this.logFile, env: toolEnv(this.dir), timeoutSeconds: 60, ...(this.user ? { user: this.user } : {}) });
    this.untrack = this.track?.({ pid, signal: 'SIGQUIT', dir: this.dir, stopNow: () => this.stopNow() });
  }

  /** Synchronous, for process exit: immediate shutdown, no waiting on clients. */
  private stopNow(): void {
    spawnSync(this.bin('pg_ctl'), ['-D', this.dataDir, '-m', 'immediate', '-w', 'stop'], {
      cwd: this.dir,
      env: toolEnv(this.dir),
      stdio: 'ignore',
      ...this.user,
    });
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async shutdown(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    try {
      await stopPostmaster(this.dataDir, mode, { timeoutSeconds: 30 });
    } catch {
      await stopPostmaster(this.dataDir, 'immediate', { timeoutSeconds: 30 }).catch(() => undefined);
    }
    this.untrack?.();
    this.untrack = undefined;
  }

  url(database = 'postgres', user = 'postgres', password?: string): string {
    const login = password === undefined ? encodeURIComponent(user) : `${encodeURIComponent(user)}:${encodeURIComponent(password)}`;
    return `postgres://${login}@${this.host}:${this.port}/${encodeURIComponent(database)}`;
  }

  async sql(statement: string, database = 'postgres'): Promise<string> {
    // The Unix socket: trusted even when TCP wants a password (auth option).
    const args = ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-h', this.dir, '-p', String(this.port)];
    // Through stdin, so several statements run one by one (CREATE DATABASE cannot share a -c string).
    const out = await run(this.bin('psql'), [...args, '-U', 'postgres', '-d', database, '-f', '-'], this.dir, this.user, statement);
    return out.trim();
  }

  async createDatabase(name: string): Promise<void> {
    await this.sql(`CREATE DATABASE ${quoteIdent(name)}`);
  }

  async restart(settings: PostgresSettings = {}, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    appendFileSync(join(this.dataDir, 'postgresql.conf'), confLines(settings));
    await this.shutdown(mode);
    await this.start();
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.shutdown();
      await rm(this.dir, { recursive: true, force: true });
      // A spare is a head start for the next instance, never a reason for this stop to fail.
      if (this.spareOf) await makeSpare(this.spareOf).catch(() => undefined);
    })();
    return this.stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

async function initdb(initdbPath: string, dir: string, user: OsUser | undefined, fast: boolean, checksums: boolean): Promise<void> {
  const base = [initdbPath, '-D', join(dir, 'pgdata'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', ...(checksums ? ['--data-checksums'] : [])];
  const args = (locale: string) => [...base.slice(1), `--locale=${locale}`, ...(fast ? ['--no-sync'] : [])];
  try {
    await run(initdbPath, args('C.UTF-8'), dir, user);
  } catch (err) {
    // Minimal images lack C.UTF-8; initdb has already removed the half-made data directory.
    if (!/locale/i.test(String(err))) throw err;
    await run(initdbPath, args('C'), dir, user);
  }
}

/**
 * The SCRAM login, made over the Unix socket by this process (a psql started for it was ~65 ms of
 * every such start); the password goes over the socket only, never into a process list.
 */
async function createLogin(cluster: Cluster, login: ScramLogin): Promise<void> {
  const client = new Client({ host: cluster.dir, port: cluster.port, user: 'postgres', database: 'postgres', ssl: false, connectionTimeoutMillis: 30_000 });
  try {
    await client.connect();
    await client.query(`CREATE ROLE ${quoteIdent(login.user)} LOGIN SUPERUSER PASSWORD '${login.password.replace(/'/g, "''")}'`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The data-dir template of a server version (its own, from `postgres --version`) and initdb options. */
export async function postgresTemplate(root: string, binDir: string, options: { fast: boolean; dataChecksums: boolean }): Promise<TemplateSpec> {
  const user = serverUser();
  const version = /\d+(\.\d+)*/.exec(await toolVersion(join(binDir, 'postgres'), { cwd: '/', env: toolEnv('/'), ...user }))?.[0] ?? binDir;
  return {
    root,
    key: `postgres-${version}${options.dataChecksums ? '-checksums' : ''}`,
    name: 'pgdata',
    ...(user ? { user } : {}),
    make: (parent) => initdb(join(binDir, 'initdb'), parent, user, options.fast, options.dataChecksums),
  };
}

/** Starts a private PostgreSQL cluster in a temp dir on a free port; stop() removes every trace. */
export async function startThrowawayPostgres(options: ThrowawayPostgresOptions = {}): Promise<ThrowawayPostgres> {
  const { fast = true, auth = 'trust' } = options;
  const tcp = auth === 'trust' ? 'trust' : auth.method;
  const binDir = options.binDir ?? dirname(pgBin('initdb'));
  const user = serverUser();
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'tidemark-pg-')));
  if (options.dir) await mkdir(dir, { mode: 0o700 }); // its parent is the caller's, made reachable for the server's OS user
  let template: TemplateSpec | undefined;
  try {
    if (user) await chown(dir, user.uid, user.gid);
    if (options.standbyOf) {
      const { port, binDir: primaryBin } = options.standbyOf;
      await run(join(primaryBin, 'pg_basebackup'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-D', join(dir, 'pgdata'), '-R', '-X', 'stream', '--checkpoint=fast', '--no-manifest'], dir, user);
    } else if (options.templates) {
      template = await postgresTemplate(options.templates, binDir, { fast, dataChecksums: options.dataChecksums ?? false });
      await copyFromTemplate(template, dir, { spare: options.spares });
    } else {
      await initdb(join(binDir, 'initdb'), dir, user, fast, options.dataChecksums ?? false);
    }
    const cluster = new Cluster(dir, binDir, await freePort(), user, options.track, options.spares ? template : undefined);
    const settings: PostgresSettings = {
      port: cluster.port,
      listen_addresses: cluster.host,
      unix_socket_directories: dir,
      max_wal_senders: 10,
      ...(fast ? { fsync: 'off', synchronous_commit: 'off' } : {}),
      ...(auth === 'trust' ? {} : { password_encryption: auth.method }),
      ...options.settings,
    };
    appendFileSync(join(cluster.dataDir, 'postgresql.conf'), `\n# tidemark throwaway cluster\n${confLines(settings)}`);
    const hba = [
      ...(options.extraHba ?? []),
      'local all all trust',
      `host all all 127.0.0.1/32 ${tcp}`,
      'local replication all trust',
      `host replication all 127.0.0.1/32 ${tcp}`,
    ];
    if (!options.standbyOf) await writeFile(join(cluster.dataDir, 'pg_hba.conf'), hba.join('\n') + '\n');
    await cluster.start();
    try {
      if (auth !== 'trust' && !options.standbyOf) await createLogin(cluster, auth);
      for (const name of options.standbyOf ? [] : (options.databases ?? [])) await cluster.createDatabase(name);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
