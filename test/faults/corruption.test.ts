import { createHash } from 'node:crypto';
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
import { IntegrityError, TidemarkError } from '../../lib/core/errors';
import { silentProgress as progress } from '../../lib/core/progress';
import type { BackupManifest } from '../../lib/core/repository/manifest';
import { Repository } from '../../lib/core/repository/repository';
import { usePostgres } from '../harness/postgres';
import { useTempDir, writeConfig } from '../harness/tidemark';
import { archiveProblems, expectNamed, verifyProblems } from './damage-checks';

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

/** Rows of the sample table: its dump is a bit over 1 MiB stored, two AEAD segments. */
const ROWS = 40_000;

const OTHER_KEY_ENV = 'TIDEMARK_CORRUPTION_OTHER_KEY';
process.env[OTHER_KEY_ENV] = 'another-repository-key-0123456789abcdefghijkl';

type Damage = 'flip-middle' | 'flip-header' | 'truncate' | 'delete' | 'swap';
/**
 * Flips in the middle, deletions and swaps by default; header flips and truncation (which the
 * integration tests already cover for logical dumps and archive objects) with TIDEMARK_SOAK=1.
 */
const DAMAGES: readonly Damage[] = process.env.TIDEMARK_SOAK ? ['flip-middle', 'flip-header', 'truncate', 'delete', 'swap'] : ['flip-middle', 'delete', 'swap'];

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

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

  /** Source `app` of a repository `name`: the sample database, or (`db`) another one. */
  const configFor = (name: string, key: string, db = 'app') =>
    writeConfig(tmp.path, `${name}.yaml`, {
      repository: `file://${join(tmp.path, name)}`,
      encryption: { key },
      sources: { app: { engine: 'postgres', url: pg.url(db) } },
    }).config;

  beforeAll(async () => {
    await pg.createDatabase('app');
    await pg.createDatabase('tiny'); // what the other repositories back up as their `app`: the folders are what matter
    // About 1.5 MiB compressed: the dump spans two 1 MiB AEAD segments.
    await pg.sql(`create table notes (id int primary key, body text); insert into notes select g, md5(g::text) || md5((g * 7)::text) from generate_series(1, ${ROWS}) g`, 'app');
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
    // Three consecutive closed WAL segments, as wal-push (archive_command) stores them: the middle one is damaged.
    for (let i = 0; i < 3; i++) {
      await pg.sql(`insert into notes select g, 'wal' from generate_series(${100000 + i * 1000}, ${100999 + i * 1000}) g`, 'app');
      const segment = await pg.sql('select pg_walfile_name(pg_switch_wal())', 'app');
      await pushWalFile(repository, 'app', join(pg.dataDir, 'pg_wal', segment), config.compression);
      segments.push(segment);
    }
    segments = segments.sort();
    const pushed = segments.map((s) => parseInt(s.slice(16), 16));
    expect(pushed).toEqual([pushed[0], pushed[0] + 1, pushed[0] + 2]);
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
      'WAL segment': { kind: 'wal', path: walKey(segments[1]), twin: walKey(segments[2]), names: [segments[1]] },
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

  /** wal-fetch (restore_command) of the row's segment; the file appears only when it verified. */
  async function walFetch(row: Row): Promise<string> {
    const dest = join(tmp.path, `fetched-${++restores}`);
    const archive = new WalArchive(await Repository.open(config), 'app');
    try {
      return await archive.fetch(row.path.split('/').pop()!, dest);
    } finally {
      expect(existsSync(dest)).toBe(false);
    }
  }

  /** The one line a failed restore (or WAL fetch) gave; its target must be as it was. */
  async function restoreFailure(row: Row): Promise<string> {
    let error: unknown;
    if (row.kind === 'wal') {
      error = await walFetch(row).then(() => undefined, (e: unknown) => e);
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

  /** What verify says about the WAL archive (its part of `tidemark verify`), about the pushed segments. */
  const walProblems = async () => (await archiveProblems(config)).filter((p) => segments.some((s) => p.includes(s))).join('\n');

  it('the backups and segments verify before any damage', async () => {
    for (const id of Object.values(ids)) expect(await verifyProblems(config, id)).toBe('');
    expect(await walProblems()).toBe('');
    expect(Object.values(manifests).map((m) => m.encryption.context.repository)).toEqual(Array(4).fill(expect.stringMatching(/^[0-9a-f]{32}$/)));
  });

  describe.each(Object.keys({ 'logical dump': 0, 'logical globals.sql': 0, 'logical manifest': 0, 'physical pack': 0, 'physical block index': 0, 'physical manifest': 0, 'WAL segment': 0 }))('%s', (what) => {
    it.each(DAMAGES)('%s: verify names it, restore refuses it naming it and changes nothing', async (damage) => {
      const row = rows()[what];
      await withDamage(row, damage, async () => {
        const problems = row.kind === 'wal' ? await walProblems() : await verifyProblems(config, row.kind === 'logical' ? ids.logical : ids.incr);
        expect(problems).not.toBe('');
        expectNamed(problems, row.names);
        if (row.kind === 'wal' && damage === 'delete') {
          // restore_command's answer for a segment not archived: recovery stops there. A PITR
          // restore is refused before that, by the gap in the restorable window.
          expect(await walFetch(row)).toBe('absent');
          // These segments continue from no backup: --latest restores the newest backup and says so, naming the gap.
          const notes: string[] = [];
          const dir = join(tmp.path, `restored-${++restores}`);
          await runRestore(config, 'app', { to: dir, latest: true, progress: { ...progress, note: (m) => void notes.push(m) } });
          expect(notes.filter((n) => n.startsWith('warning: --latest'))).toEqual([expect.stringContaining(`${segments[1]} to ${segments[1]} missing`)]);
          rmSync(dir, { recursive: true, force: true });
        } else {
          expectNamed(await restoreFailure(row), row.names);
        }
        // A swap damages two objects; another kind of backup is untouched (once per kind: verify is not free).
        if (damage === 'swap' && row.kind !== 'wal') expect(await verifyProblems(config, row.kind === 'logical' ? ids.incr : ids.logical2)).toBe('');
      });
    });
  });

  it('a backup restores again once the damage is undone (the next test verifies them all)', async () => {
    await runRestore(config, 'app', { to: pg.url('intact'), backup: ids.logical, progress });
    expect(await pg.sql('select count(*) from notes', 'intact')).toBe(String(ROWS));
  });

  it('backup folders copied in from other repositories: verify and restore name each as foreign, list (so --latest) passes over those that name their repository, the others still verify', async () => {
    /** A logical backup made in another repository, its folder copied into ours (optionally edited on the way). */
    async function copiedIn(name: string, key: string, edit?: (manifestPath: string) => void): Promise<string> {
      const { id } = await runBackup(configFor(name, key, 'tiny'), 'app', { type: 'logical', progress });
      const folder = join(repo(), 'app/backups', id);
      cpSync(join(tmp.path, name, 'app/backups', id), folder, { recursive: true });
      edit?.(join(folder, 'manifest.json'));
      copied.push(folder);
      return id;
    }
    /** As a backup was written before identities: its context without `repository`, sealed accordingly. */
    const unbound = (path: string) => {
      const sealed = JSON.parse(readFileSync(path, 'utf8')) as { manifest: BackupManifest & { encryption: { context: Record<string, string> } }; seal: { sha256: string } };
      delete sealed.manifest.encryption.context.repository;
      sealed.seal.sha256 = createHash('sha256').update(JSON.stringify(sealed.manifest)).digest('hex');
      writeFileSync(path, `${JSON.stringify(sealed, null, 2)}\n`);
    };
    const copied: string[] = [];
    try {
      const otherKey = await copiedIn('other-key', `env:${OTHER_KEY_ENV}`);
      const otherKeyUnbound = await copiedIn('other-key', `env:${OTHER_KEY_ENV}`, unbound);
      // The hard case: the same key opens everything; only the repository binding tells.
      const sameKey = await copiedIn('same-key', 'env:TIDEMARK_TEST_KEY');
      const foreign = (id: string) => `backup ${id} (app/backups/${id}/manifest.json) belongs to another repository (`;
      const expected: Record<string, RegExp> = {
        [otherKey]: new RegExp(`^${escape(foreign(otherKey))}[0-9a-f]{32}; this one is [0-9a-f]{32}\\): it was copied in, not made here$`),
        [sameKey]: new RegExp(`^${escape(foreign(sameKey))}[0-9a-f]{32}; this one is [0-9a-f]{32}\\): it was copied in, not made here$`),
        // Without a binding, the data key not opening with the key that opens tidemark.json is what tells.
        [otherKeyUnbound]: new RegExp(
          `^${escape(`backup ${otherKeyUnbound} (app/backups/${otherKeyUnbound}/manifest.json): its data key does not open with the key from env:TIDEMARK_TEST_KEY, this repository's key: the backup was copied in from another repository, or its wrapped key is damaged`)}$`,
        ),
      };

      const listed = (await runList(config, 'app')).backups.map((b) => b.id);
      expect(listed).toEqual(expect.arrayContaining([ids.logical, ids.logical2]));
      expect(listed).not.toContain(otherKey);
      expect(listed).not.toContain(sameKey);
      // Not a wrong key (which would stop verify): each is one backup's problem, and the others verify.
      const verified = await runVerify(config, 'app', { progress });
      for (const [id, message] of Object.entries(expected)) {
        expect(verified.backups.find((b) => b.id === id)?.problems).toEqual([expect.stringMatching(message)]);
      }
      expect(verified.backups.filter((b) => !(b.id in expected)).map((b) => [b.id, b.ok])).toEqual(Object.values(ids).sort().map((id) => [id, true]));
      for (const [id, message] of Object.entries(expected)) {
        const error = await runRestore(config, 'app', { to: pg.url('foreign'), backup: id, progress }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(IntegrityError);
        expect((error as Error).message).toMatch(message);
      }
      expect(await pg.sql("select count(*) from pg_database where datname = 'foreign'")).toBe('0');
    } finally {
      for (const folder of copied) rmSync(folder, { recursive: true, force: true });
    }
  });
});
