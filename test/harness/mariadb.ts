import {
  startThrowawayMariadb,
  type ThrowawayMariadb,
  type ThrowawayMariadbOptions,
} from '../../lib/local/throwaway-mariadb';
import { testTemplates } from './templates';

const HOOK_TIMEOUT_MS = 120_000;

/**
 * A throwaway MariaDB server for the enclosing describe block: started in beforeAll, stopped in
 * afterAll (which jest runs even when tests or beforeAll fail). The returned handle forwards to the
 * live server, so `const db = useMariadb()` at describe level and `await db.sql(...)` in tests.
 * Copied from the run's data-dir template (templates.ts) unless `templates` is given.
 */
export function useMariadb(options?: ThrowawayMariadbOptions): ThrowawayMariadb {
  let server: ThrowawayMariadb | undefined;
  beforeAll(async () => {
    server = await startThrowawayMariadb({ templates: testTemplates(), ...options });
  }, HOOK_TIMEOUT_MS);
  afterAll(async () => {
    await server?.stop();
    server = undefined;
  }, HOOK_TIMEOUT_MS);
  return new Proxy({} as ThrowawayMariadb, {
    get(_target, property) {
      if (property === 'then') return undefined; // so an accidental `await handle` does not throw
      if (!server) throw new Error('useMariadb(): the server exists only inside tests and hooks, after beforeAll');
      const value: unknown = Reflect.get(server, property, server);
      return typeof value === 'function' ? value.bind(server) : value;
    },
  });
}
