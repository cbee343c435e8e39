/**
 * Drops and truncates as the WAL records them, for `restore --before-drop` and `list --ddl`.
 *
 * A transaction that removes a relation's files lists them in its commit record; pg_waldump prints
 *
 *   rmgr: Transaction len (rec/tot): 1245/1245, tx: 729, lsn: 0/0153C878, prev 0/0153C840,
 *   desc: COMMIT 2026-12-01 04:42:12.755065 UTC; rels: base/5/16384 base/5/16387; dropped stats:
 *   2/5/16389 2/5/16384; inval msgs: …
 *
 * `rels` are the files (database oid / relfilenode) the commit unlinks: the table's, its indexes',
 * its TOAST table's. From PostgreSQL 15 on, `dropped stats` names the relations whose statistics
 * went with them, as kind/database/object-oid, kind 2 being a relation: a DROP TABLE lists the
 * table's own oid there, while a TRUNCATE, VACUUM FULL, CLUSTER or rewriting ALTER TABLE gives the
 * table new files and drops none (so `rels` without a dropped relation reads "truncate or rewrite").
 * Which name an oid had is not in the WAL; the caller finds it in the restored catalog.
 */

export interface RelFile {
  /** Database oid (0 for shared catalogs). */
  readonly database: number;
  readonly relfilenode: number;
}

export interface DdlCommit {
  readonly xid: string;
  /** The commit record's LSN. */
  readonly lsn: string;
  /** Commit time, ISO 8601 in UTC. */
  readonly time: string;
  /** 'drop' when a relation was dropped; 'truncate' when only files were replaced. */
  readonly kind: 'drop' | 'truncate';
  readonly files: readonly RelFile[];
  /** Oids of the relations dropped (tables, indexes, TOAST), per database (PostgreSQL 15+). */
  readonly droppedRelations: readonly { readonly database: number; readonly oid: number }[];
}

const COMMIT_LINE =
  /^rmgr: Transaction\b.*?\btx:\s*(\d+), lsn: ([0-9A-F]+\/[0-9A-F]+),.*?desc: COMMIT (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?) (UTC|[+-]\d{2}(?::?\d{2})?)(.*)$/;

/** `2026-12-01 04:42:12.755065` + `UTC` → ISO 8601 (microseconds kept). */
function isoTime(local: string, zone: string): string {
  const [date, clock] = local.split(' ');
  const [hms, fraction = ''] = clock.split('.');
  const offset = zone === 'UTC' ? 'Z' : zone.length === 3 ? `${zone}:00` : zone.includes(':') ? zone : `${zone.slice(0, 3)}:${zone.slice(3)}`;
  const base = new Date(`${date}T${hms}${offset}`).toISOString().slice(0, 19);
  return `${base}.${fraction.padEnd(6, '0').slice(0, 6)}Z`;
}

function field(rest: string, name: string): string | undefined {
  const m = new RegExp(`; ${name}: ([^;]*)`).exec(rest);
  return m?.[1].trim();
}

/** The path's last two components are the database oid and the relfilenode (global/ is database 0). */
function relFile(path: string): RelFile | undefined {
  const m = /^(?:global\/(\d+)|(?:base|pg_tblspc\/\d+\/[^/]+)\/(\d+)\/(\d+))$/.exec(path);
  if (!m) return undefined;
  return m[1] !== undefined ? { database: 0, relfilenode: Number(m[1]) } : { database: Number(m[2]), relfilenode: Number(m[3]) };
}

/** Parses one line of `pg_waldump -r Transaction`; undefined for anything but a commit that removed files. */
export function parseDdlCommit(line: string): DdlCommit | undefined {
  const m = COMMIT_LINE.exec(line.trim());
  if (!m) return undefined;
  const [, xid, lsn, local, zone, rest] = m;
  const rels = field(rest, 'rels');
  if (!rels) return undefined;
  const files = rels
    .split(/\s+/)
    .map(relFile)
    .filter((f): f is RelFile => f !== undefined);
  if (files.length === 0) return undefined;
  const droppedRelations = (field(rest, 'dropped stats') ?? '')
    .split(/\s+/)
    .map((s) => /^2\/(\d+)\/(\d+)$/.exec(s))
    .filter((s): s is RegExpExecArray => s !== null)
    .map((s) => ({ database: Number(s[1]), oid: Number(s[2]) }));
  return { xid, lsn, time: isoTime(local, zone), kind: droppedRelations.length > 0 ? 'drop' : 'truncate', files, droppedRelations };
}

/** Every commit that removed files, in WAL order. */
export function parseDdlCommits(waldumpOutput: string): DdlCommit[] {
  return waldumpOutput.split('\n').flatMap((line) => parseDdlCommit(line) ?? []);
}
