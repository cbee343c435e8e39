import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Client } from 'pg';
import type { TableChecksums } from '../../drill/checksums';
import { keepsSpares, templatesDirFor } from '../../drill/scratch';
import { ToolFailed } from '../../errors';
import { freePort } from '../../free-port';
import { startThrowawayPostgres, type ThrowawayPostgres } from '../../process/throwaway-postgres';
import type { BackupManifest } from '../../repository/manifest';
import type { DrillDatabase, DrillInstance, DrillSupport, EngineRun } from '../engine';
import { selectBackup } from '../select-backup';
import { connectPg, parsePostgresUrl, PgToolSession, type PgEndpoint } from './connection';
import { stopPostmaster } from './postmaster';
import { restoredTableChecksums } from './logical-checksums';
import type { PgLogicalDetails } from './logical-details';
import type { PgPhysicalDetails } from './physical/details';
import { planReplay } from './physical/pitr';
import { serverBinDir } from './physical/start-cluster';
import { postgresSource, sourceEndpoint } from './source';
import { findPostgresBinDir, pgBin } from './tools';

/** pg_amcheck's connections at most, on a worker with many cores (each is a backend on the restored server). */
const AMCHECK_MAX_JOBS = 8;

/**
 * The drill side of the PostgreSQL methods (engine.ts DrillSupport): a logical backup is restored
 * into a fresh cluster initdb'd in the drill's scratch directory; a physical one is assembled in the
 * scratch directory (with PITR when the target needs it) and started there. Either way the drill
 * talks to it over a Unix socket nobody else can reach, as the bootstrap superuser.
 */

const run = promisify(execFile);

/** The superuser a logical drill restores as (the checks use the bootstrap superuser over the socket). */
const DRILL_LOGIN = 'tidemark_drill';

/** Server binaries for a backup of `major`: that major when installed, else the newest installed (a logical dump restores into newer). */
function logicalBinDir(major: number): string {
  try {
    return serverBinDir(major);
  } catch {
    const newest = findPostgresBinDir();
    if (newest.major !== 0 && newest.major < major) {
      throw new ToolFailed(`a drill of a PostgreSQL ${major} dump needs a PostgreSQL ${major} (or newer) server; the newest installed is ${newest.major}`);
    }
    return newest.dir;
  }
}

/**
 * The throwaway server a logical drill restores into is ours, lives for minutes and is never
 * replicated or archived, so it is set for a fast restore: wal_level=minimal lets pg_restore's single
 * transaction write the tables it creates without WAL (PostgreSQL ≥ 13 syncs them at commit instead,
 * which fsync=off makes free), checkpoints stay out of the way, and index builds get more memory.
 * The checks read the data; none of this changes it.
 */
const LOGICAL_DRILL_SETTINGS = {
  wal_level: 'minimal',
  max_wal_senders: 0,
  max_wal_size: '4GB',
  checkpoint_timeout: '30min',
  full_page_writes: 'off',
  autovacuum: 'off',
  maintenance_work_mem: '128MB', // twice the default; a worker task can be as small as 512 MiB
};

const isPgLogical = (m: BackupManifest) => m.details.kind === 'pg-logical';
const isPgPhysical = (m: BackupManifest) => m.details.kind === 'pg-physical';

/** A restored database someone else provisioned (RDS): over TCP, as the source's user with its password. */
async function connectRestored(run: EngineRun, endpoint: { host: string; port: number }): Promise<DrillDatabase> {
  const ep = await sourceEndpoint(run.source, postgresSource(run.config));
  return PgDrillDatabase.connect([{ ...ep, host: endpoint.host, port: endpoint.port }], findPostgresBinDir().dir);
}

export const pgLogicalDrill: DrillSupport = {
  connect: connectRestored,
  async reach(_run, catalog, at) {
    try {
      return selectBackup(catalog, at, '', { summary: 'logical (pg_dump)', accepts: isPgLogical }).restorePoint.time;
    } catch {
      return undefined;
    }
  },
  async provision(engineRun, catalog, at, scratchDir) {
    const chosen = selectBackup(catalog, at, engineRun.source, { summary: 'logical (pg_dump)', accepts: isPgLogical });
    const details = chosen.details as PgLogicalDetails;
    // pg_restore comes in over loopback TCP: with a password of its own, so no other local user can
    // in the meantime. It sits in a 0600 file in the scratch dir, handed over as a file: reference.
    const password = randomBytes(24).toString('base64url');
    const passwordFile = join(scratchDir, 'restore-password');
    await writeFile(passwordFile, password, { mode: 0o600 });
    const cluster = await startThrowawayPostgres({
      dir: join(scratchDir, 'pg'),
      binDir: logicalBinDir(details.serverMajor),
      auth: { method: 'scram-sha-256', user: DRILL_LOGIN, password },
      settings: LOGICAL_DRILL_SETTINGS,
      templates: templatesDirFor(scratchDir),
      spares: keepsSpares(),
    });
    return new LogicalInstance(cluster, details.database, `file:${passwordFile}`);
  },
};

class LogicalInstance implements DrillInstance {
  readonly target;

  constructor(
    private readonly cluster: ThrowawayPostgres,
    private readonly database: string,
    passwordRef: string,
  ) {
    this.target = { kind: 'database' as const, url: cluster.url(database, DRILL_LOGIN), passwordRef };
  }

  async open(): Promise<DrillDatabase> {
    return PgDrillDatabase.connect(socketEndpoints(this.cluster.dir, this.cluster.port, this.database, ['postgres']), this.cluster.binDir);
  }

  stop(): Promise<void> {
    return this.cluster.stop();
  }
}

export const pgPhysicalDrill: DrillSupport = {
  async reach(engineRun, catalog, at) {
    try {
      const replayed = await planReplay(engineRun, catalog, at);
      if (!replayed) return selectBackup(catalog, at, '', { summary: 'physical', accepts: isPgPhysical }).restorePoint.time;
      if (at.kind === 'time') return at.at;
      if (at.kind === 'latest') return replayed.replay.window.to;
      return replayed.base.restorePoint.time;
    } catch {
      return undefined;
    }
  },
  async provision(engineRun, catalog, at, scratchDir) {
    const replayed = await planReplay(engineRun, catalog, at);
    const base = replayed?.base ?? selectBackup(catalog, at, engineRun.source, { summary: 'physical (pg_basebackup)', accepts: isPgPhysical });
    const major = (base.details as PgPhysicalDetails).serverMajor;
    serverBinDir(major); // refuses now when the server is missing, before anything is restored
    const database = parsePostgresUrl(postgresSource(engineRun.config).url, `sources.${engineRun.source}.url`);
    // No TCP (THROWAWAY_SETTINGS): the port only names the socket in the data directory.
    return new PhysicalInstance(join(scratchDir, 'pgdata'), await freePort(), major, database.database, database.user);
  },
};

/**
 * A physical drill's instance is the restore's own output: the restore assembles the data directory
 * in the scratch dir, makes it a throwaway (start-cluster.ts makeThrowaway: fsync off, the socket
 * only) and leaves its server running, also after a WAL replay, whose server is the one checked.
 */
class PhysicalInstance implements DrillInstance {
  readonly target;

  constructor(
    private readonly dataDir: string,
    private readonly port: number,
    private readonly major: number,
    private readonly database: string,
    private readonly sourceUser: string,
  ) {
    this.target = { kind: 'data-dir' as const, path: dataDir, start: { port, throwaway: true } };
  }

  async open(): Promise<DrillDatabase> {
    return PgDrillDatabase.connect(socketEndpoints(this.dataDir, this.port, this.database, ['postgres', this.sourceUser]), serverBinDir(this.major));
  }

  async stop(): Promise<void> {
    await stopPostmaster(this.dataDir, 'fast', { timeoutSeconds: 60 }).catch(() => stopPostmaster(this.dataDir, 'immediate', { timeoutSeconds: 60 }));
  }
}

/** Where the drill reaches the restored database: candidates tried in order (the bootstrap superuser is usually `postgres`). */
function socketEndpoints(socketDir: string, port: number, database: string, users: readonly string[]): PgEndpoint[] {
  return [...new Set(users)].map((user) => ({ host: socketDir, port, user, database, options: {} }));
}

class PgDrillDatabase implements DrillDatabase {
  private constructor(
    private readonly client: Client,
    private readonly ep: PgEndpoint,
    private readonly binDir: string,
  ) {}

  /** The first endpoint that accepts us; over a socket, or over TCP with the source's password (RDS). */
  static async connect(endpoints: readonly PgEndpoint[], binDir: string): Promise<PgDrillDatabase> {
    let last: unknown;
    for (const ep of endpoints) {
      try {
        return new PgDrillDatabase(await connectPg(ep, 'the restored database'), ep, binDir);
      } catch (e) {
        last = e;
      }
    }
    throw last instanceof Error ? last : new ToolFailed(`cannot connect to the restored database ${endpoints[0]?.database}`);
  }

  async scalar(sql: string): Promise<string | null> {
    const { rows, fields } = await this.client.query({ text: sql, rowMode: 'array' });
    if (rows.length === 0 || fields.length === 0) return null;
    const value: unknown = (rows[0] as unknown[])[0];
    if (value === null || value === undefined) return null;
    return value instanceof Date ? value.toISOString() : String(value);
  }

  /** pg_amcheck over every table and B-tree index of the database (the amcheck extension installed on the copy), one job per core. */
  async verify(signal: AbortSignal): Promise<{ name: string; ok: boolean; detail: string }> {
    let amcheck = join(this.binDir, 'pg_amcheck');
    if (!existsSync(amcheck)) {
      try {
        amcheck = pgBin('pg_amcheck');
      } catch {
        return { name: 'pg_amcheck', ok: false, detail: `pg_amcheck not found in ${this.binDir}: install the PostgreSQL client tools` };
      }
    }
    // Host, user and password through the session's environment and passfile, never argv.
    const session = await PgToolSession.open(this.ep);
    try {
      // One connection per core: a table and its indexes are checked side by side (pgbench scale 50
      // on two cores: 0.47–0.54 s with two jobs against 0.87–0.92 s with one, by hand).
      const jobs = String(Math.min(availableParallelism(), AMCHECK_MAX_JOBS));
      await run(amcheck, ['--install-missing', '--no-password', '--jobs', jobs, '--database', this.ep.database], { env: session.env, signal, maxBuffer: 16 * 1024 * 1024 });
      const { rows } = await this.client.query(`select count(*)::int as n from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'm', 'i') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp)'`);
      return { name: 'pg_amcheck', ok: true, detail: `no corruption in ${rows[0].n} tables and indexes of ${this.ep.database}` };
    } catch (e) {
      const err = e as { code?: number | string; stdout?: string; stderr?: string; message: string };
      const out = `${err.stdout ?? ''}${err.stderr ?? ''}`.trim().split('\n');
      if (err.code === 2) return { name: 'pg_amcheck', ok: false, detail: `corruption found: ${out.slice(0, 3).join(' | ')}` };
      return { name: 'pg_amcheck', ok: false, detail: `pg_amcheck failed: ${out.slice(-2).join(' | ') || err.message}` };
    } finally {
      await session.close();
    }
  }

  checksums(recorded: TableChecksums) {
    return restoredTableChecksums(this.client, recorded);
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }
}
