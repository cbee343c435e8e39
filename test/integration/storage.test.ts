import { PutObjectCommand } from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, readdir, realpath, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import fc from 'fast-check';
import { ConfigError, StorageError, type StorageErrorCode } from '../../lib/core/errors';
import { FileStore } from '../../lib/core/repository/file-store';
import { openStore } from '../../lib/core/repository/open-store';
import type { ObjectStore } from '../../lib/core/repository/storage';
import { useS3 } from '../harness/s3';
import { startS3Proxy, type S3Proxy, type S3ProxyOptions } from '../harness/s3-proxy';

const MiB = 1024 * 1024;
const s3 = useS3();
const tempDirs: string[] = [];
afterAll(() => Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true }))));

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tidemark-store-'));
  tempDirs.push(dir);
  return dir;
}

/** Random bytes in 1 MiB chunks, produced lazily, with their SHA-256 known once consumed. */
function randomStream(bytes: number, failAfter?: number): { stream: Readable; sha256: () => string } {
  const hash = createHash('sha256');
  let sent = 0;
  const stream = new Readable({
    read() {
      if (failAfter !== undefined && sent >= failAfter) {
        this.destroy(new Error('producer failed'));
      } else if (sent >= bytes) {
        this.push(null);
      } else {
        const chunk = randomBytes(Math.min(MiB, bytes - sent));
        sent += chunk.length;
        hash.update(chunk);
        this.push(chunk);
      }
    },
  });
  return { stream, sha256: () => hash.digest('hex') };
}

async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function text(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

async function failure(promise: Promise<unknown>): Promise<StorageError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof StorageError)) throw new Error(`expected a StorageError, got ${String(err)}`);
  return err;
}

async function expectCode(promise: Promise<unknown>, code: StorageErrorCode): Promise<StorageError> {
  const err = await failure(promise);
  expect(err.code).toBe(code);
  return err;
}

/** Runs `task` over `items`, `width` at a time: enough to be quick without flooding s3rver. */
async function inParallel<T>(items: T[], width: number, task: (item: T) => Promise<unknown>): Promise<void> {
  const queue = [...items];
  await Promise.all(Array.from({ length: width }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await task(item);
  }));
}

interface Backend {
  readonly name: string;
  open(): Promise<ObjectStore>;
  /** Names of files the store left on disk, uploads in flight included (file:// only). */
  rawFiles?(): Promise<string[]>;
}

let fileRoot = '';
const backends: Backend[] = [
  {
    name: 'file://',
    open: async () => {
      fileRoot = join(await tempDir(), 'repo');
      return openStore(pathToFileURL(fileRoot).href);
    },
    rawFiles: async () => (await readdir(fileRoot, { recursive: true })).map(String),
  },
  { name: 's3://', open: async () => openStore(s3.repository(`contract-${randomBytes(3).toString('hex')}`)) },
];

describe.each(backends)('$name store', (backend) => {
  let store: ObjectStore;
  beforeAll(async () => {
    store = await backend.open();
  });

  it.each([
    ['0-byte buffer', 'rt/empty-buffer', () => ({ body: Buffer.alloc(0), sha: createHash('sha256').digest('hex'), size: 0 })],
    ['0-byte stream', 'rt/empty-stream', () => ({ body: Readable.from([]), sha: createHash('sha256').digest('hex'), size: 0 })],
    ['small buffer', 'rt/small', () => ({ body: Buffer.from('hello'), sha: createHash('sha256').update('hello').digest('hex'), size: 5 })],
  ])('round-trips a %s', async (_name, key, make) => {
    const { body, sha, size } = make();
    expect(await store.put(key, body)).toEqual({ bytes: size });
    expect(await store.head(key)).toEqual({ size });
    expect(await sha256Of(await store.get(key))).toBe(sha);
    expect((await store.getBytes(key)).length).toBe(size);
  });

  it('round-trips a 40 MiB stream (multipart on S3)', async () => {
    const { stream, sha256 } = randomStream(40 * MiB);
    expect(await store.put('rt/big', stream)).toEqual({ bytes: 40 * MiB });
    expect(await store.head('rt/big')).toEqual({ size: 40 * MiB });
    expect(await sha256Of(await store.get('rt/big'))).toBe(sha256());
  });

  it('fails with ObjectExists on an existing key and keeps the original bytes', async () => {
    await store.put('exists/k', Buffer.from('original'));
    const err = await expectCode(store.put('exists/k', Readable.from([Buffer.from('replacement')])), 'ObjectExists');
    expect(err.message).toContain('exists/k');
    expect((await store.getBytes('exists/k')).toString()).toBe('original');
  });

  it('reads inclusive byte ranges, clamping an end past the object', async () => {
    await store.put('range/k', Buffer.from('0123456789'));
    expect(await text(await store.get('range/k', { start: 1, end: 1 }))).toBe('1');
    expect(await text(await store.get('range/k', { start: 3, end: 6 }))).toBe('3456');
    expect(await text(await store.get('range/k', { start: 7 }))).toBe('789');
    expect(await text(await store.get('range/k', { start: 8, end: 100 }))).toBe('89');
    await expectCode(store.get('range/k', { start: 10 }), 'Other');
    await expectCode(store.get('range/k', { start: 5, end: 4 }), 'Other');
  });

  it('reports missing objects: head → undefined, get → NoSuchKey', async () => {
    expect(await store.head('missing/k')).toBeUndefined();
    const err = await expectCode(store.get('missing/k'), 'NoSuchKey');
    expect(err.message).toContain('missing/k');
    await expectCode(store.getBytes('missing/k'), 'NoSuchKey');
    await expectCode(store.get('missing/k', { start: 0, end: 1 }), 'NoSuchKey');
  });

  it('lists in key order, with and without a delimiter', async () => {
    // s3rver drops a common prefix whose objects all sit two or more levels down (real S3 does not),
    // so 'ls/a/' also holds a direct object; the file:// property test below covers deep keys.
    const keys = ['ls/a/x/1', 'ls/b/2', 'ls/d', 'ls/a/1', 'ls/c', 'lsx/1'];
    for (const key of keys) await store.put(key, Buffer.from(key));
    const all = await store.list('ls/');
    expect(all.objects.map(({ key, size }) => ({ key, size }))).toEqual(['ls/a/1', 'ls/a/x/1', 'ls/b/2', 'ls/c', 'ls/d'].map((key) => ({ key, size: key.length })));
    for (const o of all.objects) expect(Date.parse(o.modifiedAt ?? '')).toBeGreaterThan(Date.now() - 3_600_000);
    expect(all.prefixes).toEqual([]);
    const top = await store.list('ls/', { delimiter: '/' });
    expect(top.objects.map((o) => o.key)).toEqual(['ls/c', 'ls/d']);
    expect(top.prefixes).toEqual(['ls/a/', 'ls/b/']);
    expect((await store.list('ls')).objects.map((o) => o.key)).toContain('lsx/1');
    expect((await store.list('ls', { delimiter: '/' })).prefixes).toEqual(['ls/', 'lsx/']);
    expect(await store.list('nothing-here/')).toEqual({ objects: [], prefixes: [] });
  });

  it('lists and deletes beyond 1000 keys (S3 pages and batches)', async () => {
    const keys = Array.from({ length: 1100 }, (_, i) => `many/${String(i).padStart(4, '0')}/o`);
    await inParallel(keys, 8, (key) => store.put(key, Buffer.from('x')));
    expect((await store.list('many/')).objects.map((o) => o.key)).toEqual(keys);
    const rolledUp = await store.list('many/', { delimiter: '/' });
    expect(rolledUp.prefixes).toEqual(keys.map((k) => k.slice(0, -1)));
    await store.delete(keys);
    expect(await store.list('many/')).toEqual({ objects: [], prefixes: [] });
  });

  it('leaves nothing under the key when the body stream fails halfway', async () => {
    const { stream } = randomStream(40 * MiB, 20 * MiB);
    await expect(store.put('broken/k', stream)).rejects.toThrow('producer failed');
    expect(await store.head('broken/k')).toBeUndefined();
    expect((await store.list('broken/')).objects).toEqual([]);
    if (backend.rawFiles) expect((await backend.rawFiles()).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('leaves nothing under the key when the upload is aborted', async () => {
    const stalled = new Readable({ read() {} });
    stalled.push(randomBytes(MiB));
    const controller = new AbortController();
    const putting = store.put('aborted/k', stalled, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('user cancelled')), 200);
    await expect(putting).rejects.toThrow('user cancelled');
    expect(await store.head('aborted/k')).toBeUndefined();
    if (backend.rawFiles) expect((await backend.rawFiles()).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('an abort before the store reads a body nobody else listens to rejects the put; it is no uncaught error', async () => {
    // What SIGTERM met once in the kill tests: a small object's pipeline had finished and left the
    // body buffered, the store had not begun to read it, and the abort destroyed it with an 'error'
    // nobody listened for (the CLI died with exit 1 instead of stopping).
    const body = new PassThrough();
    body.end(Buffer.from('a small object'));
    const controller = new AbortController();
    const reason = new Error('interrupted by SIGTERM');
    const putting = store.put('aborted-unread/k', body, { signal: controller.signal });
    controller.abort(reason);
    await expect(putting).rejects.toBe(reason);
    await sleep(10); // an unhandled 'error' event would surface here, failing this test
    expect(await store.head('aborted-unread/k')).toBeUndefined();
  });

  it('deletes objects; missing keys and empty lists are not errors', async () => {
    await store.put('del/a', Buffer.from('a'));
    await store.put('del/b/c', Buffer.from('c'));
    await store.delete(['del/a', 'del/b/c', 'del/never-existed']);
    await store.delete([]);
    expect(await store.head('del/a')).toBeUndefined();
    expect(await store.list('del/', { delimiter: '/' })).toEqual({ objects: [], prefixes: [] });
  });

  it.each(['../escape', 'a/../../escape', '/etc/passwd', 'a\\b', 'a\0b', 'a//b', 'a/', '', 'a/./b', 'a/.tmp-x'])(
    'refuses the key %j',
    async (key) => {
      const err = await expectCode(store.put(key, Buffer.from('x')), 'Other');
      expect(err.message).toMatch(/^invalid object key/);
      await expectCode(store.get(key), 'Other');
      await expectCode(store.delete([key]), 'Other');
    },
  );
});

describe('opening a store', () => {
  it('fails on an unknown scheme', () => {
    expect(() => openStore('ftp://host/backups')).toThrow(
      new ConfigError("repository: unknown scheme 'ftp:' (expected file:// or s3://)"),
    );
  });

  it.each([['s3://'], ['s3:///prefix'], ['file://relative/folder'], ['/var/backups']])('fails on %s', (url) => {
    expect(() => openStore(url)).toThrow(ConfigError);
  });

  it('describes S3 locations without credentials', () => {
    const store = openStore({ url: 's3://bucket/p/q/', endpoint: 'http://user:secret@127.0.0.1:9000' });
    expect(store.description).toBe('s3://bucket/p/q at http://127.0.0.1:9000');
  });

  it('fails with Unreachable within 15 s when the S3 endpoint is down', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise((resolve) => server.close(resolve));
    const store = openStore({ url: 's3://bucket/p', endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1' });
    const started = Date.now();
    const err = await expectCode(store.head('k'), 'Unreachable');
    expect(err.message).toContain(`http://127.0.0.1:${port}`);
    await expectCode(store.put('k', Buffer.from('x')), 'Unreachable');
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('refuses other bytes than the range asked for (s3rver answers bytes=0-0 with everything)', async () => {
    const store = openStore(s3.repository('quirks'));
    await store.put('zero', Buffer.from('0123456789'));
    const err = await failure(store.get('zero', { start: 0, end: 0 }));
    expect(err.message).toContain('answered bytes 0-9/10 for bytes=0-0');
  });

  it('names a missing bucket', async () => {
    const store = openStore({ ...s3.repository(), url: 's3://no-such-bucket-here/p' });
    const err = await failure(store.list(''));
    expect(err.message).toContain("bucket 'no-such-bucket-here' does not exist");
  });
});

/** The promise's rejection; fails if it resolves, or is still pending after `ms`. */
async function rejectionWithin(promise: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms);
  });
  const settled = promise.then(
    () => Promise.reject(new Error('resolved; expected a rejection')),
    (err: unknown) => err,
  );
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (const deadline = Date.now() + 10_000; !condition(); await sleep(10)) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
  }
}

/** A stream that gives `bytes` at once and then nothing more, never ending. */
function stalledAfter(bytes: number): Readable {
  const stream = new Readable({ read() {} });
  for (let sent = 0; sent < bytes; sent += MiB) stream.push(randomBytes(MiB));
  return stream;
}

describe('S3 writes, watched through a proxy', () => {
  let running: S3Proxy | undefined;
  afterEach(() => running?.close());

  /** An S3 store reaching s3rver through a fresh proxy (closed after the test), and its key prefix in the bucket. */
  async function storeBehindProxy(options: S3ProxyOptions): Promise<{ store: ObjectStore; proxy: S3Proxy; prefix: string }> {
    const proxy = (running = await startS3Proxy(s3.endpoint, options));
    const prefix = `proxied-${randomBytes(3).toString('hex')}`;
    return { store: openStore({ ...s3.repository(prefix), endpoint: proxy.endpoint }), proxy, prefix };
  }

  describe('an abort ends put within 2 s, whatever it waits for', () => {
    it('before put starts: nothing is sent', async () => {
      const { store, proxy } = await storeBehindProxy({});
      const reason = new Error('user cancelled');
      await expect(rejectionWithin(store.put('early/k', Buffer.from('x'), { signal: AbortSignal.abort(reason) }), 2_000)).resolves.toBe(reason);
      expect(proxy.requests).toEqual([]);
    });

    it('during the HEAD pre-check, on a server that does not answer it', async () => {
      // The HEAD stalls until the client gives up on it.
      const { store, proxy } = await storeBehindProxy({
        onRequest: (r) => (r.operation === 'HeadObject' ? new Promise<void>((resolve) => r.signal.addEventListener('abort', () => resolve())) : undefined),
      });
      const controller = new AbortController();
      const putting = store.put('stalled-head/k', Buffer.from('x'), { signal: controller.signal });
      await until(() => proxy.requests.some((r) => r.operation === 'HeadObject'), 'the HEAD');
      const reason = new Error('user cancelled');
      controller.abort(reason);
      expect(await rejectionWithin(putting, 2_000)).toBe(reason);
      expect(proxy.requests.map((r) => r.operation)).toEqual(['HeadObject']);
    });

    it('during a slow HEAD pre-check: nothing is written, even once the HEAD answers', async () => {
      const { store, proxy } = await storeBehindProxy({ onRequest: (r) => (r.operation === 'HeadObject' ? sleep(500) : undefined) });
      const controller = new AbortController();
      const putting = store.put('slow-head/k', Buffer.from('x'), { signal: controller.signal });
      await until(() => proxy.requests.some((r) => r.operation === 'HeadObject'), 'the HEAD');
      const reason = new Error('user cancelled');
      controller.abort(reason);
      expect(await rejectionWithin(putting, 2_000)).toBe(reason);
      await sleep(700); // past the moment the HEAD would have answered
      expect(proxy.requests.map((r) => r.operation)).toEqual(['HeadObject']);
      expect(await store.head('slow-head/k')).toBeUndefined();
    });

    it('mid-upload with a stalled producer: the multipart upload is aborted before put returns', async () => {
      const { store, proxy } = await storeBehindProxy({});
      const controller = new AbortController();
      // Two whole 16 MiB parts go up; the third never fills.
      const putting = store.put('stalled-body/k', stalledAfter(40 * MiB), { signal: controller.signal });
      await until(() => proxy.requests.filter((r) => r.operation === 'UploadPart' && r.status === 200).length === 2, 'two parts uploaded');
      const reason = new Error('user cancelled');
      controller.abort(reason);
      expect(await rejectionWithin(putting, 2_000)).toBe(reason);
      expect(proxy.requests.filter((r) => r.operation === 'CreateMultipartUpload')).toHaveLength(1);
      expect(proxy.openUploads()).toEqual([]);
      expect(await store.head('stalled-body/k')).toBeUndefined();
    });
  });

  describe('If-None-Match is the guard when the object appears after the HEAD pre-check', () => {
    /** Enforces If-None-Match, and writes `original` under `key` just before `operation` reaches s3rver. */
    const racedBy = (operation: 'PutObject' | 'CompleteMultipartUpload') =>
      storeBehindProxy({
        enforceIfNoneMatch: true,
        onRequest: async (r) => {
          if (r.operation === operation) await s3.client.send(new PutObjectCommand({ Bucket: r.bucket, Key: r.key, Body: 'original' }));
        },
      });

    it.each([
      ['a single PUT', 'PutObject', () => Buffer.from('replacement')],
      ['a multipart upload', 'CompleteMultipartUpload', () => randomStream(40 * MiB).stream],
    ] as const)('refuses %s with ObjectExists and keeps the object', async (_name, operation, body) => {
      const { store, proxy, prefix } = await racedBy(operation);
      const err = await expectCode(store.put('raced/k', body()), 'ObjectExists');
      expect(err.message).toBe(`object already exists at s3://${s3.bucket}/${prefix}/raced/k; objects are never overwritten`);
      expect(proxy.requests.find((r) => r.operation === operation)?.status).toBe(412);
      expect(proxy.openUploads()).toEqual([]);
      expect((await store.getBytes('raced/k')).toString()).toBe('original');
    });
  });
});

describe('file:// store: abandoned uploads', () => {
  it('collectStaleUploads removes temp files a day old under the prefix (also in a folder holding nothing else), keeps fresh ones and every object', async () => {
    const root = join(await realpath(await tempDir()), 'repo');
    const store = new FileStore(root);
    await store.put('app/backups/b1/manifest', Buffer.from('m'));
    await store.put('other/backups/b9/pack', Buffer.from('o'));
    const temp = (dir: string, name: string, hoursOld: number) => {
      mkdirSync(join(root, dir), { recursive: true });
      writeFileSync(join(root, dir, name), 'partial');
      const then = new Date(Date.now() - hoursOld * 3_600_000);
      utimesSync(join(root, dir, name), then, then);
    };
    temp('app/backups/b1', '.tmp-aa', 25); // beside an object
    temp('app/backups/b2', '.tmp-bb', 25); // a killed backup's only file: its folder is invisible to list
    temp('app/backups/b3', '.tmp-cc', 1); // an upload that may still be running
    temp('other/backups/b9', '.tmp-dd', 25); // another prefix
    expect(await store.collectStaleUploads('app/')).toBe(2);
    const left = (await readdir(root, { recursive: true })).filter((f) => f.includes('.tmp-')).sort();
    expect(left).toEqual(['app/backups/b3/.tmp-cc', 'other/backups/b9/.tmp-dd']);
    expect(existsSync(join(root, 'app/backups/b2'))).toBe(false);
    expect((await store.list('app/')).objects.map((o) => o.key)).toEqual(['app/backups/b1/manifest']);
  });
});

describe('file:// store properties', () => {
  const segment = fc.constantFrom('a', 'b', '.', '..', '', '\\', '\0', '.tmp-x', '..a');

  it('never writes outside its root, whatever the key', async () => {
    const sandbox = await realpath(await tempDir());
    const root = join(sandbox, 'repo');
    const store = new FileStore(root);
    await fc.assert(
      fc.asyncProperty(fc.array(segment, { minLength: 1, maxLength: 5 }), fc.boolean(), async (parts, leadingSlash) => {
        const key = (leadingSlash ? '/' : '') + parts.join('/');
        const stored = await store.put(key, Buffer.from(key)).then(() => true, (e: unknown) => {
          if (!(e instanceof StorageError)) throw e;
          return false;
        });
        if (stored) expect(relative(root, await realpath(join(root, key)))).not.toMatch(/^\.\.(\/|$)|^\//);
      }),
      { numRuns: 300 },
    );
    expect(await readdir(sandbox)).toEqual(['repo']);
  });

  it('agrees with a model of S3 listing for any set of keys and prefix', async () => {
    // Folders are named d*, objects f*, so no key is also the folder of another (S3 allows that, folders do not).
    const key = fc.tuple(fc.array(fc.constantFrom('d1', 'd2', 'dd'), { maxLength: 3 }), fc.constantFrom('f1', 'f2', 'ff'))
      .map(([dirs, leaf]) => [...dirs, leaf].join('/'));
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(key, { maxLength: 12 }), fc.string({ unit: fc.constantFrom('d', 'f', '1', '/') , maxLength: 6 }), async (keys, rawPrefix) => {
        const prefix = rawPrefix.replace(/^\/+/, '').replace(/\/\/+/g, '/');
        const store = new FileStore(join(await tempDir(), 'repo'));
        for (const k of keys) await store.put(k, Buffer.from(k));
        const matching = keys.filter((k) => k.startsWith(prefix)).sort();
        const flat = await store.list(prefix);
        expect(flat.objects.map((o) => o.key)).toEqual(matching);
        const rolled = await store.list(prefix, { delimiter: '/' });
        const cut = (k: string): string => k.slice(0, prefix.length + k.slice(prefix.length).indexOf('/') + 1);
        expect(rolled.prefixes).toEqual([...new Set(matching.filter((k) => k.slice(prefix.length).includes('/')).map(cut))].sort());
        expect(rolled.objects.map((o) => o.key)).toEqual(matching.filter((k) => !k.slice(prefix.length).includes('/')));
      }),
      { numRuns: 60 },
    );
  });
});
