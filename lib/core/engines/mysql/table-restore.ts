import { randomBytes } from 'node:crypto';
import { BackupNotFound, ToolFailed, UsageError } from '../../errors';
import type { Progress } from '../../progress';
import { ToolRun } from '../../process/tool';
import { parseTableArgument, type TableName } from './binlog/decoded';
import { quoteIdent, quoteLiteral, type MysqlToolSession } from './connection';
import { mysqlBin } from './tools';

/**
 * `restore --table db.table` for MySQL/MariaDB.
 *
 * A mysqldump file is one stream of statements for the whole database, and a binlog replay may touch
 * the table through statements about other tables (INSERT … SELECT, multi-table UPDATE, a trigger).
 * Carving one table out of either by parsing SQL would be guesswork. So the whole restore — the dump
 * and, for --time/--position/--gtid/--before-drop/--latest, the binlog replayed up to the target —
 * goes into a private scratch database on the target server, exactly as a full restore would, and
 * only then is the one table copied into the target database (definition, rows, triggers) and the
 * scratch database dropped. The cost: the target server needs room and CREATE/DROP privileges for a
 * copy of the whole source database while the restore runs.
 */

/** A private database name on the target server for the duration of one restore (≤ 64 characters). */
export function scratchDatabaseName(): string {
  return `tidemark_restore_${randomBytes(6).toString('hex')}`;
}

const SCRATCH_NAME = /^tidemark_restore_[0-9a-f]{12}$/;
/** GET_LOCK(…, 0) answers at once; a client that has not within this long is stopped (connecting has its own limit). */
const LOCK_ANSWER_MS = 120_000;

/**
 * Holds the server's named lock `name` (GET_LOCK) until the returned function is called, through a
 * client that waits on its input meanwhile: when this process ends, killed too, the client reads end
 * of input and quits, its connection closes and the server releases the lock. A restore holds the
 * lock named like its scratch database from before it creates that database until it has dropped
 * it, so a scratch database whose lock is free belongs to no running restore.
 */
export async function holdServerLock(session: MysqlToolSession, name: string): Promise<() => Promise<void>> {
  // --unbuffered: the answer is flushed at once, not when the client ends.
  const client = new ToolRun(mysqlBin('client'), [...session.connectArgs, '-N', '-B', '--unbuffered'], ['pipe', 'pipe'], { env: session.env, label: 'restore target lock' });
  const { stdin, stdout } = client.child;
  stdin!.on('error', () => undefined); // a client that died: its exit says why
  let answer = '';
  const answered = new Promise<void>((resolve) => stdout!.setEncoding('utf8').on('data', (d: string) => (answer += d).includes('\n') && resolve()));
  stdin!.write(`SELECT GET_LOCK(${quoteLiteral(name)}, 0);\n`);
  const waited = setTimeout(() => client.kill(), LOCK_ANSWER_MS);
  await Promise.race([answered, client.exited]);
  clearTimeout(waited);
  const release = async () => {
    stdin!.end();
    await client.exited;
  };
  if (answer.trim() !== '1') {
    await release();
    throw (await client.exited) === 0 ? new ToolFailed(`restore target: could not take the lock ${name}: GET_LOCK answered ${JSON.stringify(answer.trim())}`) : client.failure();
  }
  return release;
}

/**
 * Drops the scratch databases of --table restores that ended without dropping theirs (killed): those
 * whose lock (holdServerLock) no session holds. A running restore's scratch database is left alone.
 */
export async function dropAbandonedScratch(session: MysqlToolSession, progress: Progress): Promise<void> {
  const names = await session.query(`SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'tidemark\\_restore\\_%'`, 'restore target');
  for (const [name] of names) {
    if (!SCRATCH_NAME.test(name)) continue;
    const [[free]] = await session.query(`SELECT IS_FREE_LOCK(${quoteLiteral(name)})`, 'restore target');
    if (free !== '1') continue;
    await session.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}`, 'restore target');
    progress.note(`dropped scratch database ${name}, left on the target server by a --table restore that did not finish`);
  }
}

/** `--table db.table`: the database must be the one the backup holds (a dump is of one database). */
export function parseRestoreTable(value: string, backupDatabase: string, backupId: string): TableName {
  const table = parseTableArgument(value);
  if (!table) throw new UsageError(`--table ${value}: expected database.table (either may be in backquotes)`);
  if (table.database !== backupDatabase) {
    throw new UsageError(`--table ${value}: backup ${backupId} holds database ${backupDatabase}, not ${table.database}`);
  }
  return table;
}

export async function tableExists(session: MysqlToolSession, database: string, table: string): Promise<boolean> {
  const rows = await session.query(
    `SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${quoteLiteral(database)} AND TABLE_NAME = ${quoteLiteral(table)}`,
    'restore target',
  );
  return rows[0]?.[0] === '1';
}

/**
 * Copies `table` from the scratch database into `target`: its definition (SHOW CREATE TABLE keeps
 * partitions, the AUTO_INCREMENT counter, and foreign keys unqualified, so they refer to the target's
 * tables of those names), every row of its stored columns (generated ones are computed again), and
 * its triggers. Foreign key checks are off for the copy, as in a dump: the parent may be elsewhere.
 */
export async function copyTableFromScratch(session: MysqlToolSession, scratch: string, target: string, table: TableName, replace: boolean): Promise<void> {
  const kind = await session.query(
    `SELECT TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${quoteLiteral(scratch)} AND TABLE_NAME = ${quoteLiteral(table.table)}`,
    'restore scratch database',
  );
  if (kind.length === 0) throw new BackupNotFound(`table ${table.database}.${table.table} is not in the backup at that point; see: tidemark list (and list --ddl for drops)`);
  if (kind[0][0] !== 'BASE TABLE') throw new UsageError(`--table ${table.database}.${table.table} is a ${kind[0][0].toLowerCase()}, not a table; restore the whole database instead`);

  const [[, createTable]] = await session.query(`SHOW CREATE TABLE ${quoteIdent(table.table)}`, 'restore scratch database', scratch);
  const columns = (
    await session.query(
      `SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ${quoteLiteral(scratch)} AND TABLE_NAME = ${quoteLiteral(table.table)}
         AND EXTRA NOT LIKE '%GENERATED%' ORDER BY ORDINAL_POSITION`,
      'restore scratch database',
    )
  ).map(([c]) => quoteIdent(c));
  const triggers = await session.query(
    `SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ${quoteLiteral(scratch)} AND EVENT_OBJECT_TABLE = ${quoteLiteral(table.table)} ORDER BY ACTION_ORDER`,
    'restore scratch database',
  );
  const createTriggers: string[] = [];
  for (const [name] of triggers) {
    // sql_mode, statement, client charset, connection collation, database collation
    const [[, sqlMode, statement]] = await session.query(`SHOW CREATE TRIGGER ${quoteIdent(name)}`, 'restore scratch database', scratch);
    if (statement.includes(';;')) throw new UsageError(`trigger ${name} of ${table.table} contains ';;' and cannot be copied by this version; restore the whole database instead`);
    createTriggers.push(`SET SESSION sql_mode = ${quoteLiteral(sqlMode)};;\n${statement};;`);
  }

  const t = quoteIdent(table.table);
  const list = columns.join(', ');
  try {
    await session.query(
      [
        'SET FOREIGN_KEY_CHECKS = 0;',
        ...(replace ? [`DROP TABLE IF EXISTS ${t};`] : []),
        `${createTable};`,
        `INSERT INTO ${t} (${list}) SELECT ${list} FROM ${quoteIdent(scratch)}.${t};`,
        ...(createTriggers.length ? ['DELIMITER ;;', ...createTriggers, 'DELIMITER ;'] : []),
        '',
      ].join('\n'),
      'restore target',
      target,
    );
  } catch (e) {
    // The client stops at the first failing statement: what it created is not whole, and with
    // `replace` the old table is gone already. Only a table someone else created meanwhile
    // (ER_TABLE_EXISTS_ERROR at our CREATE) is not ours to drop.
    if (replace || !/ERROR 1050 /.test((e as Error).message)) {
      await session.query(`DROP TABLE IF EXISTS ${t}`, 'restore target', target).catch(() => undefined);
    }
    throw e;
  }
}
