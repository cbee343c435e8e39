import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { NEVER_ABORTED } from '../abort';
import { sourceConfig } from '../config/load';
import type { SourceConfig, TidemarkConfig } from '../config/schema';
import { archiveFor, type ArchiveRegistration } from '../engines/continuous-archive';
import { UsageError } from '../errors';
import { jsonLine, type LogFields, type LogLevel } from '../log';
import { emitMetrics, type MetricValue } from '../metrics';
import { silentProgress } from '../progress';
import { Repository } from '../repository/repository';

/**
 * `tidemark stream`: continuous archiving (WAL, binlog) through the archive registry. Streaming
 * logs JSON lines (lib/core/log.ts) and metrics (EMF) to `write`, so the worker and the CLI print
 * the same thing. (The pg-wal branch has this as the first half of commands/wal.ts; keep one.)
 */
function archiveOf(source: string, config: SourceConfig): ArchiveRegistration {
  const archive = archiveFor(config);
  if (!archive) throw new UsageError(`source '${source}' (${config.engine}${config.rds ? ' on RDS' : ''}) has no continuous archive in this version`);
  return archive;
}

/** Where a streamer keeps what it received and has not archived yet; it should survive restarts. */
export function defaultSpoolDir(source: string, stream: string): string {
  return join(process.env.TIDEMARK_SPOOL ?? join(tmpdir(), 'tidemark-spool'), source, stream);
}

export interface StreamCommandOptions {
  readonly spoolDir?: string;
  readonly slot?: string;
  readonly signal?: AbortSignal;
  /** Where JSON log lines and EMF metrics go. @default stdout */
  readonly write?: (line: string) => void;
}

export async function runStream(config: TidemarkConfig, source: string, options: StreamCommandOptions = {}): Promise<void> {
  const src = sourceConfig(config, source);
  const registration = archiveOf(source, src);
  const write = options.write ?? ((line: string) => void process.stdout.write(line));
  const fields = { source, command: 'stream' };
  const log = (level: LogLevel, msg: string, extra: LogFields = {}) => write(jsonLine(level, msg, { ...fields, ...extra }));
  const metrics = (values: Readonly<Record<string, MetricValue>>) => emitMetrics('Tidemark', { Source: source }, values, (line) => write(`${line}\n`));
  const [repository, archive] = await Promise.all([Repository.open(config), registration.load()]);
  await archive.stream(
    {
      repository,
      source,
      config: src,
      compression: config.compression,
      progress: silentProgress,
      signal: options.signal ?? NEVER_ABORTED,
    },
    {
      spoolDir: resolve(options.spoolDir ?? defaultSpoolDir(source, registration.stream)),
      ...(options.slot ? { slot: options.slot } : {}),
      flushSeconds: src.stream?.flushSeconds ?? 10,
      log,
      metrics,
    },
  );
}
