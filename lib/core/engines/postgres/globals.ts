/**
 * Which parts of `pg_dumpall --globals-only` a restore may apply. A restore target is someone's
 * server: roles that already exist there are theirs, so we only create the roles the backup needs
 * and the target lacks (with their attributes, settings, comments and memberships), and we never
 * touch tablespaces (a logical restore puts everything in the target's default tablespace).
 */

export interface GlobalsPlan {
  /** SQL to run, in one transaction. */
  readonly sql: string;
  /** Roles this plan creates (dropped again if the restore fails). */
  readonly createdRoles: readonly string[];
  /** Statements left out, for the log. */
  readonly skipped: number;
}

/**
 * Splits SQL into statements at semicolons outside quotes and comments. A psql meta-command
 * (`\restrict …`, one line) is a statement of its own.
 */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let start = 0;
  let i = 0;
  while (i < sql.length) {
    const c = sql[i];
    if (c === '\\' && sql.slice(start, i).trim() === '') {
      const nl = sql.indexOf('\n', i);
      const end = nl < 0 ? sql.length : nl;
      out.push(sql.slice(i, end).trim());
      start = i = end;
    } else if (c === "'" || c === '"') {
      i = skipQuoted(sql, i, c);
    } else if (c === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      if (i === start || sql.slice(start, i).trim() === '') start = nl < 0 ? sql.length : nl + 1;
      i = nl < 0 ? sql.length : nl + 1;
    } else if (c === ';') {
      const stmt = sql.slice(start, i).trim();
      if (stmt) out.push(stmt);
      start = ++i;
    } else {
      i++;
    }
  }
  const rest = sql.slice(start).trim();
  if (rest) out.push(rest);
  return out;
}

/** Index just past the quoted token starting at `i` ('' or "" inside means a literal quote). */
function skipQuoted(sql: string, i: number, q: string): number {
  let j = i + 1;
  while (j < sql.length) {
    if (sql[j] === q) {
      if (sql[j + 1] === q) j += 2;
      else return j + 1;
    } else j++;
  }
  return j;
}

const IDENT = String.raw`("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)`;
const ROLE_STATEMENT = new RegExp(
  String.raw`^(?:CREATE ROLE|ALTER ROLE|COMMENT ON ROLE|SECURITY LABEL FOR \S+ ON ROLE)\s+${IDENT}`,
  'i',
);
const MEMBERSHIP = new RegExp(String.raw`^GRANT\s+${IDENT}\s+TO\s+${IDENT}`, 'i');

/** The role name an identifier denotes: quoted as written, unquoted folded to lower case. */
export function unquoteIdent(ident: string): string {
  return ident.startsWith('"') ? ident.slice(1, -1).replace(/""/g, '"') : ident.toLowerCase();
}

export function planGlobals(globalsSql: string, existingRoles: ReadonlySet<string>): GlobalsPlan {
  const statements = splitStatements(globalsSql);
  const created = new Set<string>();
  for (const s of statements) {
    const m = /^CREATE ROLE\s+/i.test(s) ? ROLE_STATEMENT.exec(s) : null;
    if (m && !existingRoles.has(unquoteIdent(m[1]))) created.add(unquoteIdent(m[1]));
  }
  const kept: string[] = [];
  let skipped = 0;
  for (const s of statements) {
    const role = ROLE_STATEMENT.exec(s);
    const member = MEMBERSHIP.exec(s);
    const keep = /^SET\s/i.test(s)
      ? true
      : role
        ? created.has(unquoteIdent(role[1]))
        : member
          ? created.has(unquoteIdent(member[1])) || created.has(unquoteIdent(member[2]))
          : false;
    if (keep) kept.push(`${s};`);
    else skipped++;
  }
  const anyRoleWork = kept.some((s) => !/^SET\s/i.test(s));
  return { sql: anyRoleWork ? `${kept.join('\n')}\n` : '', createdRoles: [...created], skipped };
}
