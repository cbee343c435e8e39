import type { Client } from 'pg';
import { throwIfAborted } from '../../abort';
import { BackupNotFound, TargetNotEmpty, ToolFailed, UsageError } from '../../errors';
import type { Catalog } from '../../repository/catalog';
import type { EngineRun, RestorePlan, RestoreRequest, RestoredTarget } from '../engine';
import { databaseTarget, withTargetPassword } from '../database-target';
import { selectBackup } from '../select-backup';
import { runTool } from '../../process/tool';
import type { Progress } from '../../progress';
import type { OpenedBackup } from '../../repository/repository';
import { allOrRelease } from '../../settle';
import {
  connectPg,
  describeEndpoint,
  parsePostgresUrl,
  PgToolSession,
  quoteIdent,
  quoteLiteral,
  sqlState,
  withDatabase,
  withPg,
  type PgEndpoint,
} from './connection';
import { planGlobals } from './globals';
import type { PgLogicalDetails } from './logical-details';
import { pgBin, toolMajor } from './tools';

export interface QualifiedTable {
  readonly schema: string;
  readonly name: string;
}

/** `schema.table`, `table` (public), or with double quotes for names holding dots. */
export function parseTableName(value: string): QualifiedTable {
  const parts = [...value.matchAll(/"((?:[^"]|"")+)"|([^."]+)/g)].map((m) => (m[1] ? m[1].replace(/""/g, '"') : m[2]));
  if (parts.length === 1) return { schema: 'public', name: parts[0] };
  if (parts.length === 2) return { schema: parts[0], name: parts[1] };
  throw new UsageError(`--table ${value}: expected schema.table`);
}

/** What a database holds besides the system catalogs, as a short description, or '' when empty. */
async function contents(client: Client): Promise<string> {
  const { rows } = await client.query(`
    select (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp)') as relations,
           (select count(*) from pg_namespace where nspname not in ('public', 'pg_catalog', 'information_schema')
             and nspname !~ '^pg_') as schemas,
           (select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace
             where n.nspname not in ('pg_catalog', 'information_schema')) as functions,
           (select count(*) from pg_largeobject_metadata) as large_objects`);
  const r = rows[0];
  return Object.entries(r)
    .filter(([, n]) => Number(n) > 0)
    .map(([k, n]) => `${n} ${String(k).replace('_', ' ')}`)
    .join(', ');
}

/** Opens the target database, or reports that it does not exist yet. */
async function openTarget(ep: PgEndpoint): Promise<Client | undefined> {
  try {
    return await connectPg(ep, 'restore target');
  } catch (e) {
    if (sqlState(e) === '3D000') return undefined;
    throw e;
  }
}

function maintenance(ep: PgEndpoint): PgEndpoint {
  return withDatabase(ep, ep.database === 'postgres' ? 'template1' : 'postgres');
}

async function createDatabase(ep: PgEndpoint, details: PgLogicalDetails): Promise<void> {
  // The names were validated when the manifest was read (logical-details.ts); quoted all the same.
  const base = `CREATE DATABASE ${quoteIdent(ep.database)} TEMPLATE template0 ENCODING ${quoteLiteral(details.encoding)}`;
  await withPg(maintenance(ep), 'restore target', async (c) => {
    try {
      // The source's locale when the target has it, so sorting and case rules match.
      await c.query(`${base} LC_COLLATE ${quoteLiteral(details.collate)} LC_CTYPE ${quoteLiteral(details.ctype)}`);
    } catch (e) {
      if (sqlState(e) === '42P04') throw e;
      await c.query(base);
    }
  });
}

/** Undoes what a failed restore created, so the target is as it was. */
async function rollBack(ep: PgEndpoint, createdDatabase: boolean, roles: readonly string[]): Promise<void> {
  await withPg(maintenance(ep), 'restore target', async (c) => {
    for (let attempt = 0; createdDatabase && attempt < 20; attempt++) {
      try {
        // pg_restore's backend may take a moment to go away after we killed it.
        await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(ep.database)}`);
        break;
      } catch (e) {
        if (sqlState(e) !== '55006') throw e;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    for (const role of roles) await c.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`);
  });
}

/** A conninfo string naming only the database; host, port, user and password come from the env. */
function dbConninfo(database: string): string {
  return `dbname='${database.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** A restore of a pg-logical backup, decided: the backup opened and authenticated, the target inspected. */
export interface PgLogicalRestorePlan extends RestorePlan {
  readonly backup: OpenedBackup;
  readonly details: PgLogicalDetails;
  readonly endpoint: PgEndpoint;
  readonly table?: QualifiedTable;
  /** The target database does not exist yet: the restore creates it (and drops it on failure). */
  readonly createsDatabase: boolean;
}

/**
 * Every check a restore can make before it changes anything: the backup (chosen, its manifest
 * authenticated with its key), pg_restore's version, and the target (reachable, empty or --force).
 */
export async function planPostgresLogicalRestore(run: EngineRun, catalog: Catalog, request: RestoreRequest): Promise<PgLogicalRestorePlan> {
  const { repository, source } = run;
  const to = databaseTarget(request.to, 'postgres://user@host:port/database');
  const ep = await withTargetPassword(to, parsePostgresUrl(to.url, '--to'));
  const table = to.table === undefined ? undefined : parseTableName(to.table);
  const chosen = selectBackup(catalog, request.at, source, { summary: 'logical (pg_dump)', accepts: (m) => m.details.kind === 'pg-logical' });

  // The backup's key (a KDF or a KMS call), pg_restore's version and the target, side by side.
  const [backup, restoreMajor, existing] = await allOrRelease(
    [repository.openBackup(source, { id: chosen.id }), toolMajor(pgBin('pg_restore')), openTarget(ep)],
    [undefined, undefined, async (c) => c?.end().catch(() => undefined)],
  );
  try {
    const { manifest } = backup;
    const details = manifest.details;
    if (details.kind !== 'pg-logical' || !manifest.objects.some((o) => o.name === 'dump')) {
      throw new BackupNotFound(`backup ${manifest.id} has no dump object; it is not a PostgreSQL logical backup`);
    }
    if (restoreMajor < details.pgDumpMajor) {
      throw new ToolFailed(`pg_restore ${restoreMajor} cannot read a dump made by pg_dump ${details.pgDumpMajor}: install the PostgreSQL ${details.pgDumpMajor} client tools`);
    }
    if (existing && table) {
      const { rows } = await existing.query('select to_regclass($1) is not null as present', [`${quoteIdent(table.schema)}.${quoteIdent(table.name)}`]);
      if (rows[0].present && !request.force) {
        throw new TargetNotEmpty(`table ${table.schema}.${table.name} already exists in ${describeEndpoint(ep)}; drop or rename it, or pass --force to replace it`);
      }
    } else if (existing) {
      const holds = await contents(existing);
      if (holds && !request.force) {
        throw new TargetNotEmpty(`target database ${describeEndpoint(ep)} is not empty (${holds}); restore into a new database or pass --force to replace the objects in the backup`);
      }
    }
    return {
      method: 'pg-logical',
      chain: [manifest],
      target: to,
      force: request.force,
      restorePoint: manifest.restorePoint,
      backup,
      details,
      endpoint: ep,
      ...(table ? { table } : {}),
      createsDatabase: !existing,
    };
  } finally {
    await existing?.end().catch(() => undefined);
  }
}

export async function applyPostgresLogicalRestore(run: EngineRun, plan: PgLogicalRestorePlan): Promise<RestoredTarget> {
  const { progress, signal } = run;
  const { backup, endpoint: ep, table, force, createsDatabase } = plan;
  const { manifest } = backup;
  const dump = manifest.objects.find((o) => o.name === 'dump')!;
  const globals = manifest.objects.find((o) => o.name === 'globals.sql');
  throwIfAborted(signal);

  progress.note(`restoring backup ${manifest.id} (consistent at ${manifest.restorePoint.time}) into ${describeEndpoint(ep)}`);
  let createdRoles: readonly string[] = [];
  const session = await PgToolSession.open(ep);
  try {
    // The roles script is read (and verified) while the database is created.
    const globalsSql = globals && !table ? readText(backup, globals) : undefined;
    globalsSql?.catch(() => undefined); // awaited below, unless creating the database failed first
    if (createsDatabase) {
      progress.note(`creating database ${ep.database}`);
      await createDatabase(ep, plan.details);
    }
    if (globalsSql) createdRoles = await restoreRoles(await globalsSql, ep, session, progress);
    throwIfAborted(signal);

    const args = ['--single-transaction', '--exit-on-error', '--no-tablespaces', '--no-password', '-d', dbConninfo(ep.database)];
    if (force) args.push('--clean', '--if-exists');
    if (table) args.push('-n', table.schema, '-t', table.name);
    progress.start('restore', dump.storedBytes);
    try {
      const pgRestore = { command: pgBin('pg_restore'), args, options: { env: session.env } };
      await backup.restoreInto(dump, pgRestore, { onStoredBytes: (n) => progress.advance(n), signal });
    } finally {
      progress.stop();
    }
  } catch (e) {
    await rollBack(ep, createsDatabase, createdRoles).catch((undo) =>
      progress.note(`could not undo everything after the failure: ${(undo as Error).message}`),
    );
    throw e;
  } finally {
    await session.close();
  }
  return {
    target: describeEndpoint(ep),
    restorePoint: manifest.restorePoint,
    ...(table ? { table: `${table.schema}.${table.name}` } : {}),
    created: [...(createsDatabase ? [`database ${ep.database}`] : []), ...createdRoles.map((r) => `role ${r}`)],
  };
}

/** One object of a backup, verified, as text (small objects only: the roles script). */
async function readText(backup: OpenedBackup, object: OpenedBackup['manifest']['objects'][number]): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of await backup.read(object)) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Creates the roles the backup needs that the target lacks; returns their names. */
async function restoreRoles(globalsSql: string, ep: PgEndpoint, session: PgToolSession, progress: Progress): Promise<readonly string[]> {
  const existing = await withPg(ep, 'restore target', async (c) => (await c.query('select rolname from pg_roles')).rows.map((r) => r.rolname as string));
  const plan = planGlobals(globalsSql, new Set(existing));
  if (!plan.sql) return [];
  progress.note(`creating roles: ${plan.createdRoles.join(', ')}`);
  await runTool(pgBin('psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction', '--no-password', '-d', dbConninfo(ep.database), '-f', '-'], {
    env: session.env,
    input: plan.sql,
  });
  return plan.createdRoles;
}
