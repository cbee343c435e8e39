import { pgBin } from '../../lib/core/engines/postgres/tools';
import { runTool } from '../../lib/core/process/tool';
import {
  startThrowawayPostgres,
  type ThrowawayPostgres,
  type ThrowawayPostgresOptions,
} from '../../lib/local/throwaway-postgres';
import { testTemplates } from './templates';

const HOOK_TIMEOUT_MS = 120_000;

/** One statement through psql against a postgres:// URL (any server, a restored one too): its output, trimmed. */
export const psql = (url: string, sql: string): Promise<string> => runTool(pgBin('psql'), ['-X', '-A', '-t', '-d', url, '-c', sql]).then((out) => out.trim());

/**
 * A throwaway PostgreSQL cluster for the enclosing describe block: started in beforeAll, stopped in
 * afterAll (which jest runs even when tests or beforeAll fail). The returned handle forwards to the
 * live cluster, so `const pg = usePostgres()` at describe level and `await pg.sql(...)` in tests.
 * Copied from the run's data-dir template (templates.ts) unless `templates` is given.
 */
export function usePostgres(options?: ThrowawayPostgresOptions): ThrowawayPostgres {
  let cluster: ThrowawayPostgres | undefined;
  beforeAll(async () => {
    cluster = await startThrowawayPostgres({ templates: testTemplates(), ...options });
  }, HOOK_TIMEOUT_MS);
  afterAll(async () => {
    await cluster?.stop();
    cluster = undefined;
  }, HOOK_TIMEOUT_MS);
  return new Proxy({} as ThrowawayPostgres, {
    get(_target, property) {
      if (property === 'then') return undefined; // so an accidental `await handle` does not throw
      if (!cluster) throw new Error('usePostgres(): the cluster exists only inside tests and hooks, after beforeAll');
      const value: unknown = Reflect.get(cluster, property, cluster);
      return typeof value === 'function' ? value.bind(cluster) : value;
    },
  });
}
