import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { copyFromTemplate, makeSpare } from '../../lib/core/process/data-dir-template';
import { startThrowawayPostgres } from '../../lib/core/process/throwaway-postgres';
import { startThrowawayMariadb } from '../../lib/core/process/throwaway-mariadb';
import { ROOT, useTempDir } from '../harness/tidemark';
import { testWorker } from '../harness/bundles';

jest.setTimeout(180_000);

/**
 * Data-directory templates (drills' throwaway instances): made once, whole or not at all, copied
 * after that; two makers at once both end with the one template.
 */
describe('data-dir templates', () => {
  const tmp = useTempDir('tidemark-templates-');

  /** A `make` that writes a data dir of two files, slowly (failing between them when asked). */
  const slowMaker = (fail = false) => async (parent: string) => {
    mkdirSync(join(parent, 'data'));
    writeFileSync(join(parent, 'data', 'a'), 'one');
    await new Promise((r) => setTimeout(r, 50));
    if (fail) throw new Error('initdb failed');
    writeFileSync(join(parent, 'data', 'b'), 'two');
  };

  it('makes the template once, copies it after, and two makers at once leave one whole template', async () => {
    const root = join(tmp.path, 'a');
    const spec = { root, key: 'engine-1.2', name: 'data', make: slowMaker() };
    const dests = [1, 2, 3].map((i) => join(tmp.path, `dest${i}`));
    dests.forEach((d) => mkdirSync(d));
    const first = await Promise.all(dests.slice(0, 2).map((d) => copyFromTemplate(spec, d)));
    expect(first.sort()).toEqual(['copied', 'made']); // both may have made one; one rename won
    expect(await copyFromTemplate(spec, dests[2])).toBe('copied');
    for (const d of dests) expect(readdirSync(join(d, 'data')).sort()).toEqual(['a', 'b']);
    expect(readdirSync(root)).toEqual(['engine-1.2']); // no half-made directory left behind
  });

  it('a make that fails leaves nothing; a directory without the marker is refused, naming it', async () => {
    const root = join(tmp.path, 'b');
    const dest = join(tmp.path, 'dest-b');
    mkdirSync(dest);
    await expect(copyFromTemplate({ root, key: 'k', name: 'data', make: slowMaker(true) }, dest)).rejects.toThrow('initdb failed');
    expect(readdirSync(root)).toEqual([]);
    expect(existsSync(join(dest, 'data'))).toBe(false);

    mkdirSync(join(root, 'k', 'data'), { recursive: true }); // debris: no marker
    writeFileSync(join(root, 'k', 'data', 'stale'), 'x');
    await expect(copyFromTemplate({ root, key: 'k', name: 'data', make: slowMaker() }, dest)).rejects.toThrow(`data-dir template ${join(root, 'k')} is incomplete (no template-ready marker): remove it`);
    expect(readdirSync(root)).toEqual(['k']);
    expect(existsSync(join(dest, 'data'))).toBe(false);
  });

  it('a spare is taken whole by one taker, others copy; makeSpare makes one only when none waits', async () => {
    const root = join(tmp.path, 'c');
    const spec = { root, key: 'k', name: 'data', make: slowMaker() };
    const dests = [1, 2, 3].map((i) => join(tmp.path, `dest-c${i}`));
    dests.forEach((d) => mkdirSync(d));
    expect(await copyFromTemplate(spec, dests[0], { spare: true })).toBe('made'); // no template yet, so no spare either
    expect(await makeSpare(spec)).toBe(true);
    expect(await makeSpare(spec)).toBe(false); // one waits already
    expect(readdirSync(root).filter((n) => n.startsWith('k.spare-'))).toHaveLength(1);
    const taken = await Promise.all(dests.slice(1).map((d) => copyFromTemplate(spec, d, { spare: true })));
    expect(taken.sort()).toEqual(['copied', 'spare']);
    for (const d of dests) expect(readdirSync(join(d, 'data')).sort()).toEqual(['a', 'b']);
    expect(readdirSync(root)).toEqual(['k']); // the spare is gone, nothing half-made is left
  });

  it('PostgreSQL: a drill-style instance takes the spare, and its stop makes the next one', async () => {
    chmodSync(tmp.path, 0o755);
    const templates = join(tmp.path, 'pg-spares');
    const spares = () => (existsSync(templates) ? readdirSync(templates).filter((n) => n.includes('.spare-')) : []);
    const first = await startThrowawayPostgres({ templates, spares: true });
    expect(spares()).toEqual([]);
    await first.stop();
    const [spare] = spares();
    expect(spare).toBeDefined();
    const second = await startThrowawayPostgres({ templates, spares: true });
    try {
      expect(spares()).toEqual([]); // taken
      expect(await second.sql('select 1')).toBe('1');
    } finally {
      await second.stop();
    }
    expect(spares()).toHaveLength(1);
  });

  it('PostgreSQL: copies start, are separate clusters on their own ports, and share the template’s system identifier', async () => {
    chmodSync(tmp.path, 0o755); // the server's OS user (when we are root) reaches the template under it
    const templates = join(tmp.path, 'pg-templates');
    const one = await startThrowawayPostgres({ templates });
    const two = await startThrowawayPostgres({ templates });
    try {
      await one.sql('create table t (id int); insert into t values (1)');
      expect(await two.sql("select count(*) from pg_class where relname = 't'")).toBe('0');
      const id = (pg: typeof one) => pg.sql('select system_identifier from pg_control_system()');
      expect(await id(one)).toBe(await id(two));
      expect(readdirSync(templates).filter((e) => e.startsWith('postgres-'))).toHaveLength(1);
      expect(readFileSync(join(two.dataDir, 'postgresql.conf'), 'utf8')).toContain(`port = ${two.port}`);
    } finally {
      await one.stop();
      await two.stop();
    }
  });

  it('the worker’s make-templates (the image build runs it) makes what the drills’ instances then copy', async () => {
    const templates = join(tmp.path, 'image-templates');
    const run = (env: NodeJS.ProcessEnv) =>
      execFileSync(process.execPath, [testWorker(), 'make-templates'], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8' })
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { msg: string; template?: string });
    const made = run({ TIDEMARK_TEMPLATES: templates });
    expect(made.map((l) => l.msg)).toEqual(made.map(() => 'template made'));
    expect(made.map((l) => l.template).join(' ')).toMatch(/^postgres-\d+\.\d+( postgres-\S+)* mariadb-\S+$/);
    expect(run({ TIDEMARK_TEMPLATES: templates }).map((l) => l.msg)).toEqual(made.map(() => 'template already there'));
    const before = readdirSync(templates).sort();
    const pg = await startThrowawayPostgres({ templates });
    await pg.stop();
    const maria = await startThrowawayMariadb({ templates, binlog: false });
    await maria.stop();
    expect(readdirSync(templates).sort()).toEqual(before); // copied, nothing new made
    const unset = spawnSync(process.execPath, [testWorker(), 'make-templates'], { cwd: ROOT, env: { ...process.env, TIDEMARK_TEMPLATES: '' }, encoding: 'utf8' });
    expect({ status: unset.status, line: JSON.parse(unset.stdout).msg }).toEqual({ status: 2, line: 'make-templates: set TIDEMARK_TEMPLATES to the directory the templates go to' });
  });

  it('MariaDB: a copy starts and holds no data of the one before', async () => {
    const templates = join(tmp.path, 'maria-templates');
    const one = await startThrowawayMariadb({ templates, binlog: false });
    try {
      await one.sql('CREATE DATABASE x');
    } finally {
      await one.stop();
    }
    const two = await startThrowawayMariadb({ templates, binlog: false });
    try {
      expect(await two.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'x'")).toBe('0');
    } finally {
      await two.stop();
    }
  });
});
