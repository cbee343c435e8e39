/**
 * `npm start`: Tidemark on the embedded default, end to end, on a throwaway PostgreSQL and a folder
 * as the repository. Sample data → the nightly backup through the deployed state machine → WAL
 * streaming and a physical backup → changes → DROP TABLE, and writes after it → restore to just
 * before the drop → verification → RTO/RPO → the drill state machine restoring the same point into a
 * throwaway server and checking it.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { runBackup } from '../lib/core/commands/backup';
import { runList } from '../lib/core/commands/list';
import { runRestore } from '../lib/core/commands/restore';
import { runVerify } from '../lib/core/commands/verify';
import { runStream } from '../lib/core/commands/wal';
import { loadConfig, parseConfig } from '../lib/core/config/load';
import { fingerprintDatabaseAt } from '../lib/core/engines/postgres/fingerprint';
import { pgBin } from '../lib/core/engines/postgres/tools';
import { WalArchive } from '../lib/core/engines/postgres/wal/wal-archive';
import { parseLsn } from '../lib/core/engines/postgres/wal/wal-names';
import { freePort } from '../lib/core/free-port';
import { runTool } from '../lib/core/process/tool';
import { Repository } from '../lib/core/repository/repository';
import { FileStore } from '../lib/core/repository/file-store';
import { runBackupsLocally } from '../lib/local/local-backup-pipeline';
import { runConfiguredDrill } from '../lib/local/local-drill-pipeline';
import { loadSampleData } from '../lib/local/sample-postgres';
import { stateMachineDefinition } from '../lib/local/template-definition';
import { formatBytes, TerminalProgress } from '../lib/local/terminal-progress';
import { startThrowawayPostgres } from '../lib/local/throwaway-postgres';
import { serverUserWhenRoot } from '../lib/core/process/os-user';
import { synthesizeOffline } from '../lib/infra/offline-synth';

const ROOT = resolve(__dirname, '..');
const WORK = join(ROOT, '.tidemark-demo');
const progress = new TerminalProgress(process.stdout);
const step = (n: number, text: string) => console.log(`\n\x1b[1m${n}. ${text}\x1b[0m`);
const FLUSH_SECONDS = 1;

async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !(await probe()); await new Promise((r) => setTimeout(r, 250))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

/** As root, restored servers run as `postgres` (PostgreSQL refuses root). */
const serverUser = () => serverUserWhenRoot('postgres');

/**
 * The backup state machine exactly as `cdk deploy` would create it for this source, synthesized
 * offline (no AWS account is touched), as Amazon States Language.
 */
function synthesizedTemplate(url: string): object {
  const context = JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8')).context;
  const deployed = parseConfig(
    JSON.stringify({
      repository: 'file:///unused',
      encryption: { key: 'env:TIDEMARK_DEMO_KEY' },
      aws: { account: '111111111111', region: 'eu-west-1' },
      sources: { app: { engine: 'postgres', url } },
    }),
    'demo.json',
  );
  return synthesizeOffline(deployed, context);
}

async function main(): Promise<void> {
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true });
  process.env.TIDEMARK_DEMO_KEY = randomBytes(32).toString('base64');

  step(1, 'A throwaway PostgreSQL with sample data');
  const pg = await startThrowawayPostgres({ databases: ['app'], settings: { wal_level: 'replica', max_wal_senders: 10, max_replication_slots: 10 } });
  try {
    console.log(`   PostgreSQL on 127.0.0.1:${pg.port}, data in ${pg.dataDir}`);
    await loadSampleData(pg.url('app'), { pgbenchScale: 5, toastMegabytes: 20 });
    console.log('   pgbench scale 5 + enum, jsonb, arrays, bytea, partitions, a materialized view, large objects, 20 MB of TOAST');

    const configPath = join(WORK, 'tidemark.config.yaml');
    writeFileSync(
      configPath,
      [
        `repository: file://${join(WORK, 'repo')}`,
        'encryption: { key: env:TIDEMARK_DEMO_KEY }',
        'sources:',
        `  app: { engine: postgres, url: "${pg.url('app')}", stream: { flushSeconds: ${FLUSH_SECONDS} } }`,
        '',
      ].join('\n'),
    );
    const { config } = await loadConfig(configPath);

    step(2, 'The nightly backup: the deployed backup state machine, run on this machine');
    const template = synthesizedTemplate(pg.url('app'));
    const definition = stateMachineDefinition(template, 'BackupStateMachine');
    console.log('   synthesized from the CDK app (the stack `cdk deploy` creates); ECS RunTask → a worker process, Lambda → in process');
    const run = await runBackupsLocally([{ source: 'app', type: 'logical' }], {
      definition,
      workerConfigJson: JSON.stringify({ repository: `file://${join(WORK, 'repo')}`, encryption: { key: 'env:TIDEMARK_DEMO_KEY' }, sources: { app: { engine: 'postgres', url: pg.url('app') } } }),
      workerEnv: { TIDEMARK_DEMO_KEY: process.env.TIDEMARK_DEMO_KEY! },
      workerEntry: join(ROOT, 'containers/worker/main.ts'),
      store: new FileStore(join(WORK, 'repo')),
      onStateEntered: (state) => console.log(`   → ${state}`),
    });
    if (run.status !== 'SUCCEEDED') throw new Error(`the backup state machine failed: ${run.error}: ${run.cause}`);
    const [backup] = (await runList(config, 'app')).backups;
    const metric = run.metrics[0] as { BackupStoredBytes?: number };
    console.log(`   backup ${backup.id}: ${formatBytes(backup.bytes)} dumped → ${formatBytes(backup.storedBytes)} stored (zstd + AES-256-GCM); metric BackupStoredBytes=${metric.BackupStoredBytes}`);

    step(3, 'Continuous WAL and a physical base backup: tidemark stream app, tidemark backup app --type full');
    const stopStreaming = new AbortController();
    const streaming = runStream(config, 'app', { spoolDir: join(WORK, 'spool'), signal: stopStreaming.signal, write: () => undefined });
    streaming.catch(() => undefined); // awaited at the end; a failure shows as a restore that cannot reach the target
    try {
      await until('the streamer to hold its replication slot', async () => (await pg.sql("select count(*) from pg_replication_slots where active")) !== '0');
      const full = await runBackup(config, 'app', { type: 'full', progress });
      console.log(`   streaming WAL into the repository (flushed every ${FLUSH_SECONDS} s); full backup ${full.id}: ${formatBytes(full.bytes)} → ${formatBytes(full.storedBytes)} stored`);

      step(4, 'Life goes on: new transactions after the backups');
      await pg.sql("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) SELECT 1, 1, g, g, now() FROM generate_series(1, 1000) g", 'app');
      await pg.sql("UPDATE pgbench_accounts SET abalance = abalance + 42 WHERE aid <= 5000", 'app');
      const lastGoodCommit = new Date(); // just after the last commit before the drop
      const beforeDrop = await fingerprintDatabaseAt(pg.url('app'));
      console.log('   1,000 new rows in pgbench_history, 5,000 accounts updated');

      step(5, 'Disaster: DROP TABLE pgbench_accounts — and the application keeps writing');
      await pg.sql('DROP TABLE pgbench_accounts CASCADE', 'app');
      const disasterAt = Date.now();
      await pg.sql("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) SELECT 2, 2, g, g, now() FROM generate_series(1, 100) g", 'app');
      console.log('   100 more rows written after the drop (they must not come back)');
      const lsn = await pg.sql('select pg_current_wal_lsn()', 'app');
      await until('the archive to hold the drop', async () => {
        const point = await new WalArchive(await Repository.open(config), 'app').newestDurablePoint();
        return point !== undefined && parseLsn(point.lsn) >= parseLsn(lsn);
      });

      step(6, 'At 3 a.m.: tidemark verify app, then tidemark restore app --before-drop public.pgbench_accounts --to … --start');
      const verified = await runVerify(config, 'app', { progress });
      console.log(`   verify: ${verified.ok ? 'every backup object, every archived WAL segment, WAL continuity: ok' : 'FAILED'}`);
      const listed = await runList(config, 'app');
      console.log(`   restorable window: ${listed.window?.from} … ${listed.window?.to}`);
      const restoreDir = join(mkdtempSync(join(tmpdir(), 'tidemark-demo-')), 'restored');
      chmodSync(dirname(restoreDir), 0o755); // the restored server runs as postgres when we are root
      const port = await freePort();
      const restore = await runRestore(config, 'app', { to: restoreDir, beforeDrop: 'public.pgbench_accounts', start: true, port, progress });
      const restoredUrl = `postgres://${process.getuid?.() === 0 ? 'postgres' : userInfo().username}@127.0.0.1:${port}/app`;
      try {
        const rtoSeconds = (Date.now() - disasterAt) / 1000;

        step(7, 'Verification: the restored cluster against the database just before the drop');
        const restored = await fingerprintDatabaseAt(restoredUrl);
        const tables = Object.keys(beforeDrop.tables);
        const same = tables.filter((t) => restored.tables[t] === beforeDrop.tables[t]);
        const ok = same.length === tables.length && JSON.stringify(restored.sequences) === JSON.stringify(beforeDrop.sequences);
        console.log(`   ${same.length}/${tables.length} tables identical (pgbench_accounts is back, the 100 rows written after the drop are not), sequences ${JSON.stringify(restored.sequences) === JSON.stringify(beforeDrop.sequences) ? 'identical' : 'DIFFER'}`);

        const rpoSeconds = Math.max(0, (lastGoodCommit.getTime() - new Date(restore.restorePoint).getTime()) / 1000);
        step(8, 'Recovery objectives, measured');
        console.log(`   RTO ${rtoSeconds.toFixed(1)} s  (disaster → cluster restored to just before it, started)`);
        console.log(`   RPO ${rpoSeconds.toFixed(1)} s  (last change before the drop → restore point ${restore.restorePoint})`);
        console.log(`   The nightly logical backup alone would have lost everything after ${backup.restorePoint}.`);

        step(9, 'The drill that proves it every week: the deployed drill state machine, to the same point');
        const drill = await runConfiguredDrill(config, 'app', template, { at: restore.restorePoint, onStateEntered: (state) => console.log(`   → ${state}`) });
        const report = drill.report;
        if (!report) throw new Error(`the drill state machine wrote no report: ${drill.error ?? ''} ${drill.cause ?? ''}`);
        for (const check of report.checks) console.log(`   ${check.ok ? 'ok  ' : 'FAIL'} ${check.name}: ${check.detail}`);
        console.log(`   drill ${report.ok ? 'passed' : 'FAILED'}: RTO ${report.rtoSeconds?.toFixed(1) ?? '–'} s, RPO ${report.rpoSeconds?.toFixed(1) ?? '–'} s; report ${join(WORK, 'repo', 'app', 'drills', `${report.id}.json`)}`);
        if (!report.ok) throw new Error(`the drill failed: ${report.error ?? report.checks.filter((c) => !c.ok).map((c) => c.name).join(', ')}`);
        console.log(`\nRepository kept in ${join(WORK, 'repo')}; config in ${configPath} (its key lived only in this process).`);
        if (!ok || !verified.ok) throw new Error('verification failed: the restored database differs from the one just before the drop');
      } finally {
        await runTool(pgBin('pg_ctl'), ['-D', restoreDir, '-m', 'fast', '-w', 'stop'], { cwd: restoreDir, ...serverUser() }).catch(() => undefined);
      }
    } finally {
      stopStreaming.abort();
      await streaming.catch(() => undefined);
    }
  } finally {
    await pg.stop();
  }
}

// `npm start -- --mariadb`: the same story on MariaDB (scripts/demo-mariadb.ts).
const demo = process.argv.includes('--mariadb') ? async () => (await import('./demo-mariadb')).mariadbDemo() : main;
demo().catch((e) => {
  console.error(`demo failed: ${(e as Error).message}`);
  process.exit(1);
});
