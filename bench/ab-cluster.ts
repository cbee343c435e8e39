import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pgBin } from '../lib/core/engines/postgres/tools';
import { startThrowawayPostgres, type ThrowawayPostgres } from '../lib/local/throwaway-postgres';

/** What an A/B script of two CLI builds works with: a pgbench cluster and a folder repository's config. */
export interface AbCluster {
  readonly pg: ThrowawayPostgres;
  /** psql/pg_basebackup connection options for the cluster. */
  readonly conn: readonly string[];
  /** The work folder (0755: restored servers run as postgres). */
  readonly work: string;
  /** A config whose source `app` is the cluster's pgbench database and whose repository is `<work>/repo`. */
  readonly config: string;
}

/**
 * Runs `body` with a throwaway cluster holding pgbench data at `scale` (the A/B scripts: backup-ab.ts,
 * restore-ab.ts), then stops the cluster and removes the work folder, whatever happened; a failure
 * is printed as one line and sets the exit code.
 */
export function withPgbenchCluster(name: string, options: { scale: string; dataChecksums?: boolean }, body: (cluster: AbCluster) => Promise<void>): void {
  const main = async () => {
    process.env.TIDEMARK_BENCH_KEY = `${name}-bench-key-0123456789abcdef`;
    const work = mkdtempSync(join(tmpdir(), `tidemark-${name}-`));
    chmodSync(work, 0o755);
    const pg = await startThrowawayPostgres({ dataChecksums: options.dataChecksums ?? false, settings: { wal_level: 'replica', max_wal_size: '4GB' } });
    try {
      await pg.createDatabase('app');
      const conn = ['-h', '127.0.0.1', '-p', String(pg.port), '-U', 'postgres'];
      execFileSync(pgBin('pgbench'), ['-i', '-q', '-s', options.scale, ...conn, 'app'], { stdio: 'ignore' });
      const config = join(work, 'tidemark.yaml');
      writeFileSync(config, `repository: file://${join(work, 'repo')}\nencryption: { key: env:TIDEMARK_BENCH_KEY }\nsources:\n  app: { engine: postgres, url: "postgres://postgres@127.0.0.1:${pg.port}/app" }\n`);
      await body({ pg, conn, work, config });
    } finally {
      await pg.stop();
      rmSync(work, { recursive: true, force: true });
    }
  };
  main().catch((e: unknown) => {
    console.error((e as Error).message);
    process.exitCode = 1;
  });
}
