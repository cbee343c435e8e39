import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { ROOT } from '../harness/tidemark';

/**
 * `npm start -- --mariadb` end to end, as a user runs it: the demo checks its own restore (per-table
 * fingerprints against the database just before the drop) and exits non-zero when they differ.
 */
describe('npm start -- --mariadb (scripts/demo-mariadb.ts)', () => {
  it('tells the whole story on a throwaway MariaDB and verifies the restore: every table identical, RTO and RPO printed', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/demo.ts'), '--mariadb'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, 'close')) as [number | null];
    expect({ code, stderr: code === 0 ? '' : stderr, tail: code === 0 ? '' : stdout.slice(-2000) }).toEqual({ code: 0, stderr: '', tail: '' });
    const plain = stdout.replace(/\x1b\[[0-9;]*m/g, '');
    expect(plain).toMatch(/→ Run backup worker\n[\s\S]*→ All sources backed up/);
    expect(plain).toMatch(/verify: every backup object, every archived binlog file, binlog continuity: ok/);
    expect(plain).toMatch(/found in the binlog: \S+Z {2}mariadb-bin\.\d+:\d+ {2}drop-table app\.orders/);
    expect(plain).toMatch(/ {3}(\d+)\/\1 tables identical/);
    expect(plain).toMatch(/RTO \d+\.\d s[\s\S]*RPO \d+\.\d s/);
  }, 300_000);
});
