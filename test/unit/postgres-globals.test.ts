import fc from 'fast-check';
import { planGlobals, splitStatements, unquoteIdent } from '../../lib/core/engines/postgres/globals';

/** Quotes a role name the way pg_dumpall (fmtId) does: bare only when it is a plain lower-case word. */
function fmtId(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

function globalsFor(roles: string[], memberships: [string, string][]): string {
  const lines = [
    '--',
    '-- PostgreSQL database cluster dump',
    '--',
    '',
    '\\restrict abcDEF123',
    '',
    'SET default_transaction_read_only = off;',
    "SET client_encoding = 'UTF8';",
    '',
    '--',
    '-- Roles',
    '--',
    '',
  ];
  for (const r of roles) {
    lines.push(`CREATE ROLE ${fmtId(r)};`);
    lines.push(`ALTER ROLE ${fmtId(r)} WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;`);
    lines.push(`COMMENT ON ROLE ${fmtId(r)} IS 'owner; of ''things''\nacross lines';`);
  }
  for (const [a, b] of memberships) lines.push(`GRANT ${fmtId(a)} TO ${fmtId(b)} GRANTED BY postgres;`);
  lines.push("CREATE TABLESPACE fast OWNER postgres LOCATION '/mnt/fast';");
  lines.push('', '\\unrestrict abcDEF123', '');
  return lines.join('\n');
}

const roleName = fc.oneof(
  fc.stringMatching(/^[a-z_][a-z0-9_]{0,10}$/),
  fc.string({ minLength: 1, maxLength: 12 }).filter((s) => !s.includes('\0') && s.trim() === s && s.length > 0),
);

describe('planGlobals', () => {
  it('creates exactly the roles the target lacks, with their statements and memberships', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(roleName, { minLength: 1, maxLength: 8 }),
        fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
        fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 5 }),
        (roles, present, pairs) => {
          const existing = new Set(roles.filter((_, i) => present[i]));
          const memberships = pairs.map(([a, b]) => [roles[a % roles.length], roles[b % roles.length]] as [string, string]);
          const plan = planGlobals(globalsFor(roles, memberships), existing);
          const missing = roles.filter((r) => !existing.has(r));
          expect([...plan.createdRoles].sort()).toEqual([...missing].sort());
          const statements = splitStatements(plan.sql);
          for (const r of roles) {
            const touched = statements.filter((s) => new RegExp(`^(CREATE|ALTER|COMMENT ON) ROLE ${fmtId(r).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}( |$)`).test(s));
            expect(touched.length).toBe(existing.has(r) ? 0 : 3);
          }
          const grants = statements.filter((s) => s.startsWith('GRANT'));
          const expectedGrants = memberships.filter(([a, b]) => !existing.has(a) || !existing.has(b));
          expect(grants).toHaveLength(expectedGrants.length);
          expect(plan.sql).not.toMatch(/TABLESPACE|\\restrict/);
        },
      ),
    );
  });

  it('does nothing when every role exists', () => {
    const plan = planGlobals(globalsFor(['postgres', 'app'], [['app', 'postgres']]), new Set(['postgres', 'app']));
    expect(plan).toEqual({ sql: '', createdRoles: [], skipped: expect.any(Number) });
  });

  it('reads quoted and unquoted identifiers as PostgreSQL does', () => {
    expect(unquoteIdent('"Weird ""name"""')).toBe('Weird "name"');
    expect(unquoteIdent('App')).toBe('app');
  });

  it('keeps semicolons inside strings and identifiers', () => {
    expect(splitStatements(`COMMENT ON ROLE "a;b" IS 'x; y';\nSET a = 1;`)).toEqual([`COMMENT ON ROLE "a;b" IS 'x; y'`, 'SET a = 1']);
  });
});
