/**
 * `npm start -- --mariadb`: the same story as `npm start`, on a throwaway MariaDB with binary
 * logging (ROW). Sample data → the nightly logical backup through the deployed backup state
 * machine → binlog streaming → changes → DROP TABLE, and writes after it → restore to just before
 * the drop into a fresh database → verification → RTO/RPO.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { runList } from '../lib/core/commands/list';
import { runRestore } from '../lib/core/commands/restore';
import { runVerify } from '../lib/core/commands/verify';
import { runStream } from '../lib/core/commands/wal';
import { loadConfig, parseConfig } from '../lib/core/config/load';
import { mysqlBinlogArchive } from '../lib/core/engines/mysql/binlog/binlog-method';
import { comparePositions } from '../lib/core/engines/mysql/binlog/names';
import { fingerprintMysqlDatabaseAt } from '../lib/core/engines/mysql/fingerprint';
import { FileStore } from '../lib/core/repository/file-store';
import { runBackupsLocally } from '../lib/local/local-backup-pipeline';
import { loadSampleMariadbData } from '../lib/local/sample-mariadb';
import { stateMachineDefinition } from '../lib/local/template-definition';
import { formatBytes, TerminalProgress } from '../lib/local/terminal-progress';
import { startThrowawayMariadb } from '../lib/local/throwaway-mariadb';
import { synthesizeOffline } from '../lib/infra/offline-synth';

const ROOT = resolve(__dirname, '..');
const WORK = join(ROOT, '.tidemark-demo', 'mariadb');
const progress = new TerminalProgress(process.stdout);
const step = (n: number, text: string) => console.log(`\n\x1b[1m${n}. ${text}\x1b[0m`);
const FLUSH_SECONDS = 1;
const ORDERS = 200_000;

async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !(await probe()); await new Promise((r) => setTimeout(r, 250))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

/** The backup state machine exactly as `cdk deploy` would create it for a mysql source, synthesized offline. */
function synthesizedBackupStateMachine(url: string): object {
  const context = JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8')).context;
  const deployed = parseConfig(
    JSON.stringify({
      repository: 'file:///unused',
      encryption: { key: 'env:TIDEMARK_DEMO_KEY' },
      aws: { account: '111111111111', region: 'eu-west-1' },
      sources: { app: { engine: 'mysql', url } },
    }),
    'demo.json',
  );
  return stateMachineDefinition(synthesizeOffline(deployed, context), 'BackupStateMachine');
}

export async function mariadbDemo(): Promise<void> {
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true });
  process.env.TIDEMARK_DEMO_KEY = randomBytes(32).toString('base64');

  step(1, 'A throwaway MariaDB (binlog on, ROW format) with sample data');
  const maria = await startThrowawayMariadb({ databases: ['app'] });
  try {
    console.log(`   MariaDB on 127.0.0.1:${maria.port}, data in ${maria.dataDir}`);
    await loadSampleMariadbData(maria.url('app'), { orders: ORDERS, noteBytes: 200 });
    console.log(`   ${ORDERS.toLocaleString('en')} orders + customers, 4-byte UTF-8, every byte value in BLOBs, DECIMAL(65,30), JSON, spatial, generated columns, partitions, a trigger, a view, a procedure, a function, an event`);

    const configPath = join(WORK, 'tidemark.config.yaml');
    const repo = join(WORK, 'repo');
    writeFileSync(
      configPath,
      [
        `repository: file://${repo}`,
        'encryption: { key: env:TIDEMARK_DEMO_KEY }',
        'sources:',
        `  app: { engine: mysql, url: "${maria.url('app')}", stream: { flushSeconds: ${FLUSH_SECONDS} } }`,
        '',
      ].join('\n'),
    );
    const { config } = await loadConfig(configPath);

    step(2, 'The nightly backup: the deployed backup state machine, run on this machine');
    const definition = synthesizedBackupStateMachine(maria.url('app'));
    console.log('   synthesized from the CDK app (the stack `cdk deploy` creates); ECS RunTask → a worker process, Lambda → in process');
    const run = await runBackupsLocally([{ source: 'app', type: 'logical' }], {
      definition,
      workerConfigJson: JSON.stringify({ repository: `file://${repo}`, encryption: { key: 'env:TIDEMARK_DEMO_KEY' }, sources: { app: { engine: 'mysql', url: maria.url('app') } } }),
      workerEnv: { TIDEMARK_DEMO_KEY: process.env.TIDEMARK_DEMO_KEY! },
      workerEntry: join(ROOT, 'containers/worker/main.ts'),
      store: new FileStore(repo),
      onStateEntered: (state) => console.log(`   → ${state}`),
    });
    if (run.status !== 'SUCCEEDED') throw new Error(`the backup state machine failed: ${run.error}: ${run.cause}`);
    const [backup] = (await runList(config, 'app')).backups;
    const metric = run.metrics[0] as { BackupStoredBytes?: number };
    console.log(`   backup ${backup.id}: ${formatBytes(backup.bytes)} dumped (mariadb-dump --single-transaction, binlog coordinates recorded) → ${formatBytes(backup.storedBytes)} stored (zstd + AES-256-GCM); metric BackupStoredBytes=${metric.BackupStoredBytes}`);

    step(3, 'Continuous binlog: tidemark stream app (mariadb-binlog --read-from-remote-server --raw --stop-never)');
    const stopStreaming = new AbortController();
    const streaming = runStream(config, 'app', { spoolDir: join(WORK, 'spool'), signal: stopStreaming.signal, write: () => undefined });
    streaming.catch(() => undefined); // awaited at the end; a failure shows as a restore that cannot reach the target
    const store = new FileStore(repo);
    const durableAt = async (pos: { file: string; position: number }) => {
      const point = await mysqlBinlogArchive.newestDurablePoint(store, 'app');
      return point?.binlog !== undefined && comparePositions(point.binlog, pos) >= 0;
    };
    const masterStatus = async () => {
      const [file, position] = (await maria.sql('SHOW MASTER STATUS')).split('\t');
      return { file, position: Number(position) };
    };
    /** The harness client runs in the server's default character set: the sample's text needs utf8mb4. */
    const sql = (statement: string) => maria.sql(`SET NAMES utf8mb4;\n${statement}`, 'app');
    try {
      const started = await masterStatus();
      await until('the streamer to archive the binlog', () => durableAt(started));
      console.log(`   streaming the binlog into the repository (the active file flushed every ${FLUSH_SECONDS} s)`);

      step(4, 'Life goes on: new transactions after the backup');
      await sql("INSERT INTO orders (customer_id, amount, status, placed, note) SELECT 1 + seq % 100, seq, 'new', NOW(6), 'after the backup' FROM seq_1_to_1000");
      await sql("UPDATE orders SET status = 'shipped' WHERE status = 'paid' AND id <= 20000");
      await sql("INSERT INTO ledger (amount, memo) VALUES (42.000000000000000000000000000001, '🦊 after the backup')");
      const lastGoodCommit = new Date(); // just after the last commit before the drop
      const beforeDrop = await fingerprintMysqlDatabaseAt(maria.url('app'));
      console.log('   1,000 new orders, 5,000 orders shipped (the trigger audits each), a ledger entry');

      step(5, 'Disaster: DROP TABLE orders — and the application keeps writing');
      await sql('DROP TABLE orders');
      const disasterAt = Date.now();
      await sql("INSERT INTO ledger (amount, memo) SELECT seq, 'after the drop' FROM seq_1_to_100");
      console.log('   100 more ledger rows written after the drop (they must not come back)');
      const end = await masterStatus();
      await until('the archive to hold the drop', () => durableAt(end));

      step(6, 'At 3 a.m.: tidemark verify app, then tidemark restore app --before-drop app.orders --to mysql://…/app_restored');
      const verified = await runVerify(config, 'app', { progress });
      console.log(`   verify: ${verified.ok ? 'every backup object, every archived binlog file, binlog continuity: ok' : 'FAILED'}`);
      const listed = await runList(config, 'app', { ddl: true });
      console.log(`   restorable window: ${listed.window?.from} … ${listed.window?.to}`);
      for (const d of listed.ddl ?? []) console.log(`   found in the binlog: ${d.time}  ${d.position}  ${d.kind} ${d.objects.join(', ')}`);
      const restore = await runRestore(config, 'app', { to: maria.url('app_restored'), beforeDrop: 'app.orders', progress });
      const rtoSeconds = (Date.now() - disasterAt) / 1000;

      step(7, 'Verification: the restored database against the database just before the drop');
      const restored = await fingerprintMysqlDatabaseAt(maria.url('app_restored'));
      const tables = Object.keys(beforeDrop.tables);
      const same = tables.filter((t) => restored.tables[t] === beforeDrop.tables[t]);
      const ok = same.length === tables.length && Object.keys(restored.tables).length === tables.length;
      console.log(`   ${same.length}/${tables.length} tables identical: rows, per-row hashes and CHECKSUM TABLE (orders is back, the 100 ledger rows written after the drop are not)`);

      const rpoSeconds = Math.max(0, (lastGoodCommit.getTime() - new Date(restore.restorePoint).getTime()) / 1000);
      step(8, 'Recovery objectives, measured');
      console.log(`   RTO ${rtoSeconds.toFixed(1)} s  (disaster → database restored to just before it)`);
      console.log(`   RPO ${rpoSeconds.toFixed(1)} s  (last change before the drop → restore point ${restore.restorePoint}; binlog times are whole seconds, the stop itself is by position)`);
      console.log(`   The nightly logical backup alone would have lost everything after ${backup.restorePoint}.`);
      console.log(`\nRepository kept in ${repo}; config in ${configPath} (its key lived only in this process).`);
      if (!ok || !verified.ok) throw new Error('verification failed: the restored database differs from the one just before the drop');
    } finally {
      stopStreaming.abort();
      await streaming.catch(() => undefined);
    }
  } finally {
    await maria.stop();
  }
}
