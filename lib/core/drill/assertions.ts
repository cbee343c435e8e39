import type { DrillDatabase } from '../engines/engine';
import type { DrillCheck } from './report';

export interface Assertion {
  readonly name: string;
  readonly sql: string;
  readonly expect: string | number | boolean | null;
}

/** Booleans come back as `t`/`true`/`1` depending on engine and driver: all mean true. */
export function assertionMatches(actual: string | null, expect: Assertion['expect']): boolean {
  if (expect === null) return actual === null;
  if (actual === null) return false;
  if (typeof expect === 'boolean') return (['t', 'true', '1'].includes(actual.toLowerCase())) === expect && ['t', 'true', '1', 'f', 'false', '0'].includes(actual.toLowerCase());
  if (typeof expect === 'number') return Number(actual) === expect;
  return actual === expect;
}

/** The source's SQL assertions (`drill.assertions`) on the restored database, one check each. */
export async function runAssertions(db: DrillDatabase, assertions: readonly Assertion[]): Promise<DrillCheck[]> {
  const checks: DrillCheck[] = [];
  for (const a of assertions) {
    try {
      const actual = await db.scalar(a.sql);
      const ok = assertionMatches(actual, a.expect);
      checks.push({ name: `assertion: ${a.name}`, ok, detail: ok ? `= ${JSON.stringify(a.expect)}` : `got ${JSON.stringify(actual)}, expected ${JSON.stringify(a.expect)}` });
    } catch (e) {
      checks.push({ name: `assertion: ${a.name}`, ok: false, detail: `query failed: ${(e as Error).message.split('\n')[0]}` });
    }
  }
  return checks;
}
