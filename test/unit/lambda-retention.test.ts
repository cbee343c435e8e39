import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { handler } from '../../lambda/retention/index';
import { RETENTION_DEFAULTS, TIERS_DEFAULTS } from '../../lib/core/config/retention';
import { LocalKeyProvider } from '../../lib/core/crypto/local-key-provider';
import { ConfigError } from '../../lib/core/errors';
import { FileStore } from '../../lib/core/repository/file-store';
import { readCatalog } from '../../lib/core/repository/catalog';
import { Repository } from '../../lib/core/repository/repository';
import { TEST_PG_LOGICAL_DETAILS } from '../harness/details';
import { TEST_KEY, useTempDir } from '../harness/tidemark';

/** The retention Lambda: policies from its environment, the same planner, deletions logged with reasons. */
describe('lambda/retention', () => {
  const dir = useTempDir('tidemark-lambda-retention-');
  const env = { ...process.env };
  afterEach(() => {
    process.env = { ...env };
  });

  it('applies each source\'s plan and logs every deletion with its reason', async () => {
    const store = new FileStore(`${dir.path}/repo`);
    const repo = new Repository(store, new LocalKeyProvider(TEST_KEY, 'test key'));
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      await sleep(3);
      const writer = await repo.beginBackup('app', 'postgres', 'logical');
      await writer.writeObject('dump', Readable.from([randomBytes(100)]), { compression: false });
      ids.push((await writer.commit({ time: new Date().toISOString() }, TEST_PG_LOGICAL_DETAILS)).id);
    }
    process.env.TIDEMARK_REPOSITORY_URL = pathToFileURL(`${dir.path}/repo`).href;
    process.env.TIDEMARK_RETENTION_POLICIES = JSON.stringify([
      { sources: ['app'], policy: { retention: { ...RETENTION_DEFAULTS, logical: 2, longTerm: { daily: 0, weekly: 0, monthly: 0, yearly: 0 } }, tiers: TIERS_DEFAULTS } },
    ]);
    const logged: string[] = [];
    const info = jest.spyOn(console, 'info').mockImplementation((line: string) => void logged.push(line));
    try {
      const result = await handler();
      expect(result.sources).toEqual([{ source: 'app', deleted: 2, bytesFreed: expect.any(Number), deferred: 0 }]);
    } finally {
      info.mockRestore();
    }
    expect((await readCatalog(store, 'app')).backups.map((b) => b.id)).toEqual(ids.slice(2));
    expect(logged.map((l) => JSON.parse(l) as { msg: string; id: string; reason: string })).toEqual(
      ids.slice(0, 2).reverse().map((id) => expect.objectContaining({ msg: 'deleted', id, reason: expect.stringMatching(/outside the policy/) })),
    );
  });

  it('fails on a policy it cannot read, before anything is deleted', async () => {
    process.env.TIDEMARK_REPOSITORY_URL = pathToFileURL(`${dir.path}/repo`).href;
    process.env.TIDEMARK_RETENTION_POLICIES = JSON.stringify([{ sources: ['app'], policy: { retention: { logical: -1 }, tiers: {} } }]);
    await expect(handler()).rejects.toThrow(ConfigError);
    await expect(handler()).rejects.toThrow(/TIDEMARK_RETENTION_POLICIES: 0\.policy\.retention\.logical/);
    // The old shape ({ "<source>": policy }) is refused rather than read as something else.
    process.env.TIDEMARK_RETENTION_POLICIES = JSON.stringify({ app: { retention: {}, tiers: {} } });
    await expect(handler()).rejects.toThrow(/TIDEMARK_RETENTION_POLICIES: .*expected array, received object/);
  });
});
