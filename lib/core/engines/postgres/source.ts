import { resolveSecret } from '../../secrets';
import type { SourceConfig } from '../../config/schema';
import { parsePostgresUrl, withPassword, type PgEndpoint } from './connection';

export type PostgresSource = Extract<SourceConfig, { engine: 'postgres' }>;

/** Narrows a source's config to PostgreSQL; the registry only hands PostgreSQL sources to these engines. */
export function postgresSource(config: SourceConfig): PostgresSource {
  if (config.engine !== 'postgres') throw new Error(`a ${config.engine} source reached the PostgreSQL engine`);
  return config;
}

/** The source's endpoint with its password resolved (env:, file:, secret:) at the moment of use. */
export async function sourceEndpoint(source: string, config: PostgresSource): Promise<PgEndpoint> {
  const ep = parsePostgresUrl(config.url, `sources.${source}.url`);
  return withPassword(ep, config.password ? await resolveSecret(config.password, `sources.${source}.password`) : undefined);
}
