import { installedServerBinDirs } from '../engines/postgres/tools';
import { mysqlBin } from '../engines/mysql/tools';
import { ensureTemplate, makeSpare } from '../process/data-dir-template';
import { mariadbTemplate } from '../process/throwaway-mariadb';
import { postgresTemplate } from '../process/throwaway-postgres';

/**
 * Makes the data-dir templates drills copy (data-dir-template.ts) for every installed PostgreSQL
 * server and the MariaDB server, with the options the drills' instances use: what the worker
 * image runs at build time (`make-templates`), so a drill on Fargate starts its server from a copy.
 * With `spares`, also one spare of each PostgreSQL template, as a machine that has run drills
 * before has them (scratch.ts, keepsSpares).
 */
export async function makeDrillTemplates(root: string, { spares = false } = {}): Promise<{ key: string; made: boolean }[]> {
  const postgres = await Promise.all(installedServerBinDirs().map((binDir) => postgresTemplate(root, binDir, { fast: true, dataChecksums: false })));
  const specs = [...postgres, ...(hasMariadbServer() ? [await mariadbTemplate(root, { binlog: false })] : [])];
  const done: { key: string; made: boolean }[] = [];
  for (const spec of specs) done.push({ key: spec.key, made: (await ensureTemplate(spec)).made });
  if (spares) for (const spec of postgres) await makeSpare(spec);
  return done;
}

function hasMariadbServer(): boolean {
  try {
    mysqlBin('server');
    mysqlBin('installDb');
    return true;
  } catch {
    return false;
  }
}
