import type { SourceConfig } from '../../config/schema';
import { UsageError } from '../../errors';
import { resolveSecret } from '../../secrets';
import { parseMysqlUrl, withPassword, type MysqlEndpoint } from './connection';

export type MysqlSource = Extract<SourceConfig, { engine: 'mysql' }>;

/** Narrows a source's config to MySQL; the registry only hands MySQL sources to these engines. */
export function mysqlSource(config: SourceConfig): MysqlSource {
  if (config.engine !== 'mysql') throw new Error(`a ${config.engine} source reached the MySQL engine`);
  return config;
}

/** The source's endpoint with its password resolved (env:, file:, secret:) at the moment of use. */
export async function sourceEndpoint(source: string, config: MysqlSource): Promise<MysqlEndpoint> {
  const ep = parseMysqlUrl(config.url, `sources.${source}.url`);
  if (!ep.database) throw new UsageError(`sources.${source}.url names no database: a logical backup dumps one (mysql://user@host:port/database)`);
  return withPassword(ep, config.password ? await resolveSecret(config.password, `sources.${source}.password`) : undefined);
}
