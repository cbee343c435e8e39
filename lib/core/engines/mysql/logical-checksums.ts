import { throwIfAborted } from '../../abort';
import {
  CHECKSUM_METHOD_CRC,
  DEFAULT_EXACT_BYTES,
  planTableHashing,
  recordedHashing,
  type TableChecksum,
  type TableChecksums,
  type TableHashing,
} from '../../drill/checksums';
import { IntegrityError, ToolFailed } from '../../errors';
import { runTool } from '../../process/tool';
import { MysqlToolSession, quoteIdent, quoteLiteral } from './connection';
import { mysqlBin } from './tools';

/**
 * Row counts and checksums of a MySQL/MariaDB database for drills (drill/checksums.ts plans them).
 * mariadb-dump --single-transaction opens a snapshot we cannot join, so these run in a snapshot of
 * their own (START TRANSACTION WITH CONSISTENT SNAPSHOT) and record its binlog position (MariaDB's
 * binlog_snapshot_file/position status). When no commit came between the two snapshots the
 * position equals the dump's and the checksums describe the dump exactly; a drill compares them
 * only when the restored point is that position, and says so otherwise. Non-InnoDB tables are left
 * out: no snapshot makes them consistent.
 *
 * A row's text is every column cast to its bytes, hex-encoded (NULL as N), joined with commas: the
 * same on any server of the same version, whatever the column types. Its hash is CRC32 and CRC32C
 * side by side (64 bits; MariaDB 10.8+): md5 there costs three times as much (1.9 s against 0.6 s
 * per million rows of five columns, measured).
 */

export interface MysqlTable {
  readonly name: string;
  readonly columns: readonly string[];
  readonly bytes: number;
  readonly primaryKey: readonly string[];
  readonly integerKey: boolean;
  readonly engine: string;
}

const INTEGER_TYPES = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'bigint']);

/** Tables of `database` with their columns and primary keys, from information_schema. */
export async function mysqlTables(session: MysqlToolSession, database: string): Promise<MysqlTable[]> {
  const db = quoteLiteral(database);
  // One client run (each costs a process and a connection): rows tagged by the SELECT they come from.
  const rows = await session.query(
    [
      `SELECT 'T', TABLE_NAME, IFNULL(DATA_LENGTH, 0), IFNULL(ENGINE, '') FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${db} AND TABLE_TYPE = 'BASE TABLE' ORDER BY 2;`,
      `SELECT 'C', TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ${db} ORDER BY TABLE_NAME, ORDINAL_POSITION;`,
      `SELECT 'K', TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ${db} AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY TABLE_NAME, ORDINAL_POSITION;`,
    ].join('\n'),
    'table checksums',
  );
  const tagged = (tag: string) => rows.filter((r) => r[0] === tag).map((r) => r.slice(1));
  const [tables, columns, keys] = [tagged('T'), tagged('C'), tagged('K')];
  return tables.map(([name, bytes, engine]) => {
    const cols = columns.filter((c) => c[0] === name);
    const pk = keys.filter((k) => k[0] === name).map((k) => k[1]);
    const pkType = pk.length === 1 ? cols.find((c) => c[1] === pk[0])?.[2] : undefined;
    return { name, columns: cols.map((c) => c[1]), bytes: Number(bytes), primaryKey: pk, integerKey: pkType !== undefined && INTEGER_TYPES.has(pkType), engine };
  });
}

const text = (column: string) => `IFNULL(HEX(CAST(${quoteIdent(column)} AS BINARY)), 'N')`;

/** One SELECT giving `count<TAB>sum` for a table under its hashing (for the rows `where` selects, when given). */
export function checksumSelect(table: MysqlTable, hashing: TableHashing, where?: string): string {
  const from = `FROM ${quoteIdent(table.name)}${where ? ` WHERE ${where}` : ''}`;
  if (hashing.mode === 'count') return `SELECT COUNT(*), NULL ${from}`;
  const row = `CONCAT_WS(',', ${table.columns.map(text).join(', ')})`;
  const hash = `(CRC32(${row}) * 4294967296 + CRC32C(${row}))`;
  if (hashing.mode === 'exact') return `SELECT COUNT(*), IFNULL(SUM(${hash}), 0) ${from}`;
  if (hashing.mode === 'ranges') throw new IntegrityError(`table ${table.name}: key-range samples are PostgreSQL's; this record cannot be checked on MySQL/MariaDB`);
  const keep = hashing.byValue
    ? `${quoteIdent(hashing.key[0])} % ${hashing.modulus} = 0`
    : `CRC32(CONCAT_WS(',', ${hashing.key.map(text).join(', ')})) % ${hashing.modulus} = 0`;
  return `SELECT COUNT(*), IFNULL(SUM(IF(${keep}, ${hash}, 0)), 0) ${from}`;
}

function toChecksum(hashing: TableHashing, count: string, sum: string): TableChecksum {
  const rows = Number(count);
  if (hashing.mode === 'count') return { rows, countOnly: hashing.reason };
  if (hashing.mode === 'exact') return { rows, sum };
  if (hashing.mode === 'ranges') throw new IntegrityError('key-range samples are PostgreSQL\'s');
  return { rows, sum, sample: { key: [...hashing.key], modulus: hashing.modulus, ...(hashing.byValue ? { by: 'value' as const } : {}) } };
}

/** At backup time: every InnoDB table in one consistent snapshot, with the snapshot's binlog position. */
export async function recordMysqlChecksums(
  session: MysqlToolSession,
  database: string,
  options: { readonly exactBytes?: number; readonly signal?: AbortSignal } = {},
): Promise<TableChecksums> {
  const started = process.hrtime.bigint();
  const exactBytes = options.exactBytes ?? DEFAULT_EXACT_BYTES;
  const tables = await mysqlTables(session, database);
  throwIfAborted(options.signal);
  const skipped: Record<string, string> = {};
  const planned: { table: MysqlTable; hashing: TableHashing }[] = [];
  for (const t of tables) {
    if (t.engine.toLowerCase() !== 'innodb') skipped[`${database}.${t.name}`] = `${t.engine} is not transactional`;
    else planned.push({ table: t, hashing: planTableHashing({ name: t.name, bytes: t.bytes, primaryKey: t.primaryKey, integerKey: t.integerKey }, exactBytes) });
  }
  // One session: the snapshot, its position, then every table; rows come back tagged in order.
  const script = [
    'SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ;',
    'START TRANSACTION WITH CONSISTENT SNAPSHOT;',
    "SHOW STATUS LIKE 'binlog_snapshot_file';",
    "SHOW STATUS LIKE 'binlog_snapshot_position';",
    ...planned.map((p) => `${checksumSelect(p.table, p.hashing)};`),
    'COMMIT;',
  ].join('\n');
  const args = [...session.connectArgs, '-N', '-B', '--default-character-set=utf8mb4', '-D', database];
  const out = (await runTool(mysqlBin('client'), args, { input: script, env: session.env, label: 'table checksums', signal: options.signal })).split('\n').filter(Boolean);
  // Status names are capitalized (Binlog_snapshot_file): compared in lower case.
  const status = new Map(out.slice(0, 2).map((l) => [l.split('\t')[0].toLowerCase(), l.split('\t')[1]] as const));
  const rows = out.slice(2);
  if (rows.length !== planned.length) throw new ToolFailed(`table checksums: expected ${planned.length} result rows, got ${rows.length}`);
  const result: Record<string, TableChecksum> = {};
  planned.forEach((p, i) => {
    const [count, sum] = rows[i].split('\t');
    result[`${database}.${p.table.name}`] = toChecksum(p.hashing, count, sum);
  });
  const file = status.get('binlog_snapshot_file');
  const position = Number(status.get('binlog_snapshot_position'));
  if (!file || !Number.isInteger(position)) {
    // MySQL has no binlog_snapshot_* status, and without a binary log there is no position at all:
    // nothing ties these numbers to the dump's snapshot, so they are not recorded.
    throw new ToolFailed('the server reports no binlog position for a consistent snapshot (MariaDB with log_bin is needed): checksums could not be tied to the dump');
  }
  return {
    method: CHECKSUM_METHOD_CRC,
    exactBytes,
    tables: result,
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
    at: { binlog: { file, position } },
    ...(Object.keys(skipped).length > 0 ? { skipped } : {}),
  };
}

/** Client sessions a restored copy's checksums run in at once (CHECK TABLE runs beside them). */
const RESTORED_LANES = 2;
/** A table this large (on disk) with one integer key is hashed in one key range per lane. */
const SPLIT_BYTES = 16 * 1024 * 1024;

/** One SELECT of the restored copy's checksums: a table, or one key range of it. */
interface ChecksumPart {
  readonly name: string;
  readonly sql: string;
  readonly bytes: number;
}

/**
 * On a restored database: each recorded table hashed the same way; tables the record lacks counted.
 * The drill waits for this, so it is spread over RESTORED_LANES client sessions: every sum is a sum
 * of rows (and the count a count), so a large table with one integer key is cut into one key range
 * per lane and its parts added up. Each lane is one client run with its SELECTs in a row.
 */
export async function restoredMysqlChecksums(session: MysqlToolSession, database: string, recorded: TableChecksums, recordedDatabase: string): Promise<Record<string, TableChecksum>> {
  const tables = await mysqlTables(session, database);
  const hashingOf = new Map<string, TableHashing>();
  for (const t of tables) {
    const want = recorded.tables[`${recordedDatabase}.${t.name}`];
    hashingOf.set(t.name, want ? recordedHashing(want) : { mode: 'count', reason: 'not recorded' });
  }
  const split = tables.filter((t) => t.integerKey && t.bytes >= SPLIT_BYTES);
  const bounds = new Map<string, [bigint, bigint]>();
  if (split.length > 0) {
    const rows = await session.query(
      split.map((t) => `SELECT ${quoteLiteral(t.name)}, MIN(${quoteIdent(t.primaryKey[0])}), MAX(${quoteIdent(t.primaryKey[0])}) FROM ${quoteIdent(t.name)};`).join('\n'),
      'drill checksums',
      database,
    );
    for (const [name, min, max] of rows) if (min !== 'NULL' && max !== 'NULL') bounds.set(name, [BigInt(min), BigInt(max)]);
  }
  const parts: ChecksumPart[] = [];
  for (const t of tables) {
    const hashing = hashingOf.get(t.name)!;
    const range = bounds.get(t.name);
    if (!range || range[1] - range[0] < BigInt(RESTORED_LANES)) {
      parts.push({ name: t.name, sql: checksumSelect(t, hashing), bytes: t.bytes });
      continue;
    }
    const key = quoteIdent(t.primaryKey[0]);
    const [min, max] = range;
    const step = (max - min) / BigInt(RESTORED_LANES);
    for (let i = 0; i < RESTORED_LANES; i++) {
      // Open at both ends: every row is in exactly one range, whatever its key.
      const from = min + step * BigInt(i);
      const ranges = [...(i > 0 ? [`${key} >= ${from}`] : []), ...(i < RESTORED_LANES - 1 ? [`${key} < ${from + step}`] : [])];
      parts.push({ name: t.name, sql: checksumSelect(t, hashing, ranges.join(' AND ')), bytes: t.bytes / RESTORED_LANES });
    }
  }
  // Largest first, each to the lane with the fewest bytes so far.
  const lanes = Array.from({ length: RESTORED_LANES }, () => ({ bytes: 0, parts: [] as ChecksumPart[] }));
  for (const part of [...parts].sort((a, b) => b.bytes - a.bytes)) {
    const lane = lanes.reduce((a, b) => (b.bytes < a.bytes ? b : a));
    lane.parts.push(part);
    lane.bytes += part.bytes;
  }
  const sums = new Map<string, { rows: bigint; sum: bigint | undefined }>();
  await Promise.all(
    lanes
      .filter((lane) => lane.parts.length > 0)
      .map(async (lane) => {
        const rows = await session.query(lane.parts.map((p) => `${p.sql};`).join('\n'), 'drill checksums', database);
        if (rows.length !== lane.parts.length) throw new ToolFailed(`drill checksums: expected ${lane.parts.length} result rows, got ${rows.length}`);
        lane.parts.forEach((part, i) => {
          const [count, sum] = rows[i];
          const before = sums.get(part.name) ?? { rows: 0n, sum: undefined };
          const value = sum === 'NULL' ? undefined : BigInt(sum);
          sums.set(part.name, { rows: before.rows + BigInt(count), sum: value === undefined ? before.sum : (before.sum ?? 0n) + value });
        });
      }),
  );
  const out: Record<string, TableChecksum> = {};
  for (const t of tables) {
    const name = `${recordedDatabase}.${t.name}`;
    const { rows, sum } = sums.get(t.name)!;
    out[name] = recorded.tables[name] ? toChecksum(hashingOf.get(t.name)!, String(rows), sum === undefined ? 'NULL' : String(sum)) : { rows: Number(rows) };
  }
  return out;
}
