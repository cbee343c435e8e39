import { execFileSync } from 'node:child_process';
import { parseConfig } from '../../lib/core/config/load';
import { planDeployments } from '../../lib/core/config/deployment';
import { BACKUP_TYPES } from '../../lib/core/engines/backup-types';
import { availableTypes, backupMethod, defaultSchedule, methodsFor, REGISTRATIONS, restoreMethod } from '../../lib/core/engines/registry';
import { UsageError } from '../../lib/core/errors';
import { ROOT } from '../harness/tidemark';

const config = parseConfig(
  JSON.stringify({
    repository: 'file:///tmp/x',
    encryption: { key: 'env:TIDEMARK_TEST_KEY' },
    aws: { account: '111111111111', region: 'eu-west-1' },
    sources: {
      app: { engine: 'postgres', url: 'postgres://u@h/app', password: 'secret:arn:aws:secretsmanager:eu-west-1:111111111111:secret:a' },
      orders: { engine: 'postgres', url: 'postgres://u@h/orders', rds: { instance: 'orders' } },
      shop: { engine: 'mysql', url: 'mysql://u@h/shop', rds: { instance: 'shop' } },
      legacy: { engine: 'mysql', url: 'mysql://u@h/legacy', schedule: { logical: '0 2 * * *' } },
    },
  }),
  'test',
);
const src = config.sources;

describe('the engine registry', () => {
  it('knows which methods take which sources, and every registered type is a declared type', () => {
    expect(methodsFor(src.app).map((m) => m.id)).toEqual(['pg-logical', 'pg-physical']);
    expect(methodsFor(src.orders).map((m) => m.id)).toEqual(['rds-snapshot', 'pg-logical']);
    expect(methodsFor(src.shop).map((m) => m.id)).toEqual(['rds-snapshot', 'mysql-logical']);
    expect(methodsFor(src.legacy).map((m) => m.id)).toEqual(['mysql-logical']);
    expect(availableTypes(src.orders)).toEqual(['full', 'logical']);
    for (const r of REGISTRATIONS) for (const t of r.types) expect(BACKUP_TYPES).toContain(t);
  });

  it('fails with what is available when no method takes the type or the target', () => {
    expect(backupMethod('app', src.app, 'logical').id).toBe('pg-logical');
    expect(backupMethod('app', src.app, 'full').id).toBe('pg-physical');
    expect(backupMethod('app', src.app, 'incr').id).toBe('pg-physical');
    // RDS gives no replication role: no pg_basebackup there.
    expect(() => backupMethod('orders', src.orders, 'incr')).toThrow(/^incr backups of source 'orders' \(postgres on RDS\) are not available \(available: .*logical \(pg_dump\)\)$/);
    expect(backupMethod('legacy', src.legacy, 'logical').id).toBe('mysql-logical');
    expect(() => backupMethod('legacy', src.legacy, 'full')).toThrow(new UsageError("full backups of source 'legacy' (mysql) are not available (available: logical (mysqldump))"));
    expect(restoreMethod('shop', src.shop, 'database').id).toBe('mysql-logical');
    expect(restoreMethod('orders', src.orders, 'database').id).toBe('pg-logical');
    expect(restoreMethod('app', src.app, 'data-dir').id).toBe('pg-physical');
    expect(() => restoreMethod('orders', src.orders, 'data-dir')).toThrow(/^source 'orders' \(postgres on RDS\) cannot be restored into a data directory by this version/);
  });

  it('gives each source the default schedule of its first method', () => {
    expect(defaultSchedule(src.app)).toEqual({ logical: '0 3 * * *' });
    expect(defaultSchedule(src.orders)).toEqual({ full: '0 3 * * *' });
    expect(defaultSchedule(src.legacy)).toEqual({ logical: '0 3 * * *' });
    expect(defaultSchedule(src.shop)).toEqual({ full: '0 3 * * *' }); // RDS sources still default to snapshots
  });

  it('the deployment plan schedules what methods take, and warns about what none takes', () => {
    const [deployment] = planDeployments(config);
    const scheduled = Object.fromEntries(deployment.schedules.flatMap((s) => s.sources.map((name) => [`${name}/${s.type}`, s.cron])));
    expect(scheduled).toEqual({ 'app/logical': '0 3 * * *', 'orders/full': '0 3 * * *', 'shop/full': '0 3 * * *', 'legacy/logical': '0 2 * * *' });
    expect(deployment.warnings).toEqual([]);
  });

  it('loads no engine code, no pg and no AWS SDK client when only the registry is imported (cdk synth, --help)', () => {
    const loaded = execFileSync(
      process.execPath,
      ['--import', 'tsx', '-e', "require('./lib/core/engines/registry'); console.log(Object.keys(require.cache).join('\\n'))"],
      { cwd: ROOT, encoding: 'utf8' },
    ).split('\n');
    expect(loaded.filter((m) => /node_modules\/(pg|@aws-sdk)\/|engines\/(postgres|mysql)\/logical-(backup|restore)/.test(m))).toEqual([]);
  });
});
