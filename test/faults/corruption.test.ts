import { cpSync, existsSync, readdirSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBackup } from '../../lib/core/commands/backup';
import { runList } from '../../lib/core/commands/list';
import { runRestore } from '../../lib/core/commands/restore';
import { runVerify } from '../../lib/core/commands/verify';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import type { PgPhysicalDetails } from '../../lib/core/engines/postgres/physical/details';
import { WalArchive } from '../../lib/core/engines/postgres/wal/wal-archive';
import { pushWalFile } from '../../lib/core/engines/postgres/wal/wal-push';
import { TidemarkError } from '../../lib/core/errors';
import { silentProgress as progress } from '../../lib/core/progress';
import type { BackupManifest } from '../../lib/core/repository/manifest';
import { Repository } from '../../lib/core/repository/repository';
import { usePostgres } from '../harness/postgres';
import { useTempDir, writeConfig } from '../harness/tidemark';

/**
 * Issue 11, corruption: every kind of stored object × every kind of damage. For each, `verify`
 * reports the damaged backup (or archive object) naming it, a restore of it fails with one line
 * naming it and leaves its target as it was, and the other backups still verify.
 *
 * Object kinds: a logical backup's dump, globals.sql and manifest; a physical incremental's pack,
 * block index and manifest; a WAL segment. Damage: one bit flipped in the middle and in the header,
 * truncated, deleted, swapped with the same-named object of another backup of the same source (two
 * segments for WAL). Then whole backup folders copied in from other repositories: one with another
 * key, one with the same key (the hard case).
 */
jest.setTimeout(120_000);

const OTHER_KEY_ENV = 'TIDEMARK_CORRUPTION_OTHER_KEY';
process.env[OTHER_KEY_ENV] = 'another-repository-key-0123456789abcdefghijkl';

type Damage = 'flip-middle' | 'flip-header' | 'truncate' | 'delete' | 'swap';
const DAMAGES: readonly Damage[] = ['flip-middle', 'flip-header', 'truncate', 'delete', 'swap'];

/** The object a row damages, where its twin lives, and what an error about it must name. */
interface Row {
  readonly kind: 'logical' | 'physical' | 'wal';
  /** Repository-relative path of the object, and of the same-named object of another backup. */
  readonly path: string;
  readonly twin: string;
  /** Every error about it must contain all of these (the backup id and the object's name, or its path). */
  readonly names: readonly string[];
}

/** Flips one bit of `bytes` at `at`: in a manifest, the low bit of a checksum's hex digit stays a hex digit. */
function flipped(bytes: Buffer, at: number): Buffer {
  const out = Buffer.from(bytes);
  out[at] ^= 0x01;
  return out;
}

describe('corruption: verify finds it and restore refuses it, naming the object', () => {
  const pg = usePostgres({ settings: { wal_level: 'replica' } });
  const tmp = useTempDir('tidemark-corruption-');
  let config: TidemarkConfig;
  const repo = () => join(tmp.path, 'repo');
  const ids = { logical: '', logical2: '', full: '', incr: '' };
  let manifests: Record<keyof typeof ids, BackupManifest>;
  let segments: string[] = [];
  let restores = 0;

  const configFor = (name: string, key: string) =>
    writeConfig(tmp.path, `${name}.yaml`, {
      repository: `file://${join(tmp.path, name)}`,
      encryption: { key },
      sources: { app: { engine: 'postgres', url: pg.url('app') } },
    }).config;

  beforeAll(async () => {
    await pg.createDatabase('app');
    // About 2 MiB compressed: the dump spans several 1 MiB AEAD segments, so "the middle" is one.
    await pg.sql("create table notes (id int primary key, body text); insert into notes select g, md5(g::text) || md5((g * 7)::text) from generate_series(1, 60000) g", 'app');
    config = configFor('repo', 'env:TIDEMARK_TEST_KEY');
    ids.logical = (await runBackup(config, 'app', { type: 'logical', progress })).id;
    await pg.sql('update notes set body = upper(body) where id % 10 = 0', 'app');
    ids.logical2 = (await runBackup(config, 'app', { type: 'logical', progress })).id;
    ids.full = (await runBackup(config, 'app', { type: 'full', progress })).id;
    await pg.sql('update notes set body = lower(body) where id % 10 = 0', 'app');
    ids.incr = (await runBackup(config, 'app', { type: 'incr', progress })).id;
    const repository = await Repository.open(config);
    const open = async (id: string) => (await repository.openBackup('app', { id })).manifest;
    manifests = { logical: await open(ids.logical), logical2: await open(ids.logical2), full: await open(ids.full), incr: await open(ids.incr) };
    // Two closed WAL segments in the archive, as wal-push (archive_command) stores them.
    for (let i = 0; i < 2; i++) {
      await pg.sql(`insert into notes select g, 'wal' from generate_series(${100000 + i * 1000}, ${100999 + i * 1000}) g`, 'app');
      const segment = await pg.sql('select pg_walfile_name(pg_switch_wal())', 'app');
      await pushWalFile(repository, 'app', join(pg.dataDir, 'pg_wal', segment), config.compression);
      segments.push(segment);
    }
    segments = segments.sort();
  }, 180_000);

  const objectOf = (m: BackupManifest, name: string) => {
    const object = m.objects.find((o) => o.name === name);
    if (!object) throw new Error(`backup ${m.id} has no ${name}`);
    return object.key;
  };

  function rows(): Record<string, Row> {
    const { logical, logical2, full, incr } = manifests;
    const incrDetails = incr.details as PgPhysicalDetails;
    const pack = incr.objects.find((o) => o.name.startsWith('pack-') && full.objects.some((f) => f.name === o.name));
    const walKey = (s: string) => `app/wal/00000001/${s}`;
    return {
      'logical dump': { kind: 'logical', path: objectOf(logical, 'dump'), twin: objectOf(logical2, 'dump'), names: [logical.id, 'dump'] },
      'logical globals.sql': { kind: 'logical', path: objectOf(logical, 'globals.sql'), twin: objectOf(logical2, 'globals.sql'), names: [logical.id, 'globals.sql'] },
      'logical manifest': { kind: 'logical', path: `app/backups/${logical.id}/manifest.json`, twin: `app/backups/${logical2.id}/manifest.json`, names: [logical.id] },
      'physical pack': { kind: 'physical', path: pack!.key, twin: objectOf(full, pack!.name), names: [incr.id, pack!.name] },
      'physical block index': { kind: 'physical', path: objectOf(incr, incrDetails.index), twin: objectOf(full, incrDetails.index), names: [incr.id, incrDetails.index] },
      'physical manifest': { kind: 'physical', path: `app/backups/${incr.id}/manifest.json`, twin: `app/backups/${full.id}/manifest.json`, names: [incr.id] },
      'WAL segment': { kind: 'wal', path: walKey(segments[0]), twin: walKey(segments[1]), names: [walKey(segments[0])] },
    };
  }

  /** Applies `damage` to `row`'s object, runs `check`, then puts every byte back. */
  async function withDamage(row: Row, damage: Damage, check: () => Promise<void>): Promise<void> {
    const path = join(repo(), row.path);
    const twin = join(repo(), row.twin);
    const good = readFileSync(path);
    const goodTwin = readFileSync(twin);
    const isManifest = row.path.endsWith('manifest.json');
    switch (damage) {
      case 'flip-middle':
        writeFileSync(path, flipped(good, isManifest ? good.indexOf('"storedSha256"') + 20 : Math.floor(good.length / 2)));
        break;
      case 'flip-header':
        // The AEAD header's salt (bytes 16-31); the archive header's magic; the manifest's first key.
        writeFileSync(path, flipped(good, row.kind === 'wal' ? 3 : isManifest ? 6 : 20));
        break;
      case 'truncate':
        truncateSync(path, Math.floor(good.length * 0.9));
        break;
      case 'delete':
        unlinkSync(path);
        break;
      case 'swap':
        writeFileSync(path, goodTwin);
        writeFileSync(twin, good);
        break;
    }
    try {
      await check();
    } finally {
      writeFileSync(path, good);
      writeFileSync(twin, goodTwin);
    }
  }

  /** What verify says about a backup: its problems, or the error it stopped with. */
  async function verifyProblems(id: string): Promise<string> {
    try {
      const result = await runVerify(config, 'app', { backup: id, progress });
      return result.backups.flatMap((b) => b.problems).join('\n');
    } catch (e) {
      expect(e).toBeInstanceOf(TidemarkError);
      return (e as Error).message;
    }
  }

  /** The one line a failed restore (or WAL fetch) gave; its target must be as it was. */
  async function restoreFailure(row: Row): Promise<string> {
    let error: unknown;
    if (row.kind === 'wal') {
      const dest = join(tmp.path, `fetched-${++restores}`);
      const archive = new WalArchive(await Repository.open(config), 'app');
      error = await archive.fetch(row.path.split('/').pop()!, dest).then(() => undefined, (e: unknown) => e);
      expect(existsSync(dest)).toBe(false);
    } else if (row.kind === 'logical') {
      const db = `restored_${++restores}`;
      error = await runRestore(config, 'app', { to: pg.url(db), backup: ids.logical, progress }).then(() => undefined, (e: unknown) => e);
      expect(await pg.sql(`select count(*) from pg_database where datname = '${db}'`)).toBe('0');
    } else {
      const dir = join(tmp.path, `restored-${++restores}`);
      error = await runRestore(config, 'app', { to: dir, backup: ids.incr, progress }).then(() => undefined, (e: unknown) => e);
      expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
    }
    expect(error).toBeInstanceOf(TidemarkError);
    const message = (error as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }

  const expectNamed = (message: string, row: Row) => {
    for (const name of row.names) expect(message).toContain(name);
  };

  it('the backups and segments verify before any damage', async () => {
    for (const id of Object.values(ids)) expect(await verifyProblems(id)).toBe('');
    const archive = new WalArchive(await Repository.open(config), 'app');
    const listed = (await archive.list()).filter((o) => segments.some((s) => o.name.endsWith(s)));
    expect((await archive.objects.verifyObjects(listed, { what: 'wal', progress })).problems).toEqual([]);
  });

  describe.each(Object.keys({ 'logical dump': 0, 'logical globals.sql': 0, 'logical manifest': 0, 'physical pack': 0, 'physical block index': 0, 'physical manifest': 0, 'WAL segment': 0 }))('%s', (what) => {
    it.each(DAMAGES)('%s: verify names it, restore refuses it naming it and changes nothing', async (damage) => {
      const row = rows()[what];
      await withDamage(row, damage, async () => {
        if (row.kind === 'wal') {
          const archive = new WalArchive(await Repository.open(config), 'app');
          const listed = (await archive.list()).filter((o) => segments.some((s) => o.name.endsWith(s)));
          const { problems } = await archive.objects.verifyObjects(listed, { what: 'wal', progress });
          if (damage === 'delete') {
            expect(listed.map((o) => o.key)).not.toContain(row.path); // a gap: verify's continuity check names it (below)
          } else {
            expectNamed(problems.join('\n'), row);
          }
        } else {
          const id = row.kind === 'logical' ? ids.logical : ids.incr;
          const problems = await verifyProblems(id);
          expect(problems).not.toBe('');
          expectNamed(problems, row);
        }
        const message = await restoreFailure(row);
        if (!(row.kind === 'wal' && damage === 'delete')) expectNamed(message, row);
        // The other kind of backup is untouched by this damage.
        expect(await verifyProblems(row.kind === 'logical' ? ids.full : ids.logical2)).toBe('');
      });
    });
  });

  it('all backups verify and restore again once the damage is undone', async () => {
    for (const id of Object.values(ids)) expect(await verifyProblems(id)).toBe('');
    await runRestore(config, 'app', { to: pg.url('intact'), backup: ids.logical, progress });
    expect(await pg.sql('select count(*) from notes', 'intact')).toBe('60000');
  });

  describe('a backup folder copied in from another repository', () => {
    async function copiedIn(from: TidemarkConfig, name: string, check: (id: string) => Promise<void>) {
      const { id } = await runBackup(from, 'app', { type: 'logical', progress });
      const folder = join(repo(), 'app/backups', id);
      cpSync(join(tmp.path, name, 'app/backups', id), folder, { recursive: true });
      try {
        await check(id);
      } finally {
        rmSync(folder, { recursive: true, force: true });
      }
    }

    it.each([
      ['another key', 'env:' + OTHER_KEY_ENV],
      ['the same key', 'env:TIDEMARK_TEST_KEY'],
    ])('made with %s: verify and restore name it as foreign; list leaves it out; the others still verify', async (_what, key) => {
      const name = key.includes('OTHER') ? 'other-key' : 'same-key';
      await copiedIn(configFor(name, key), name, async (id) => {
        const listed = await runList(config, 'app');
        expect(listed.backups.map((b) => b.id)).not.toContain(id);
        const verified = await runVerify(config, 'app', { progress });
        const foreign = verified.backups.find((b) => b.id === id);
        expect(foreign?.problems.join('\n')).toMatch(new RegExp(`backup ${id} \\(app/backups/${id}/manifest.json\\): .*another repository`));
        expect(verified.backups.filter((b) => b.id !== id).every((b) => b.ok)).toBe(true);
        const error = await runRestore(config, 'app', { to: pg.url('foreign'), backup: id, progress }).catch((e: unknown) => e);
        expect((error as Error).message).toMatch(new RegExp(`^backup ${id} \\(app/backups/${id}/manifest.json\\): .*another repository`));
        expect(await pg.sql("select count(*) from pg_database where datname = 'foreign'")).toBe('0');
        // The newest backup is now the foreign one: --latest passes over it.
        await runRestore(config, 'app', { to: pg.url(`latest_${name.replace('-', '_')}`), progress });
      });
    });
  });
});
