import { CreateBucketCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { scanTree } from './secret-scan';

/** What a test gets from `useS3()`; read it inside tests and hooks (the server starts in beforeAll). */
export interface S3Handle {
  readonly endpoint: string;
  readonly bucket: string;
  /** For looking at the bucket directly, past the store under test. */
  readonly client: S3Client;
  /** A repository config pointing at this server's bucket, under `prefix`. */
  repository(prefix?: string): { url: string; endpoint: string; forcePathStyle: true; region: 'us-east-1' };
}

interface RunningS3 {
  readonly endpoint: string;
  readonly bucket: string;
  readonly client: S3Client;
  stop(): Promise<void>;
}

/**
 * Starts s3rver in a child process for this test file and a fresh bucket in it. A separate process
 * keeps the server's CPU work and its OpenSSL legacy provider out of the test process, like a real
 * endpoint would be.
 */
export function useS3(): S3Handle {
  // The stores take credentials from the default chain, as in production; s3rver knows only this pair.
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
  delete process.env.AWS_SESSION_TOKEN;

  let running: RunningS3 | undefined;
  beforeAll(async () => {
    running = await startS3rver();
  }, 60_000);
  afterAll(async () => {
    await running?.stop();
  });

  const current = (): RunningS3 => {
    if (!running) throw new Error('useS3(): the server is not running; use the handle inside tests or hooks');
    return running;
  };
  return {
    get endpoint() {
      return current().endpoint;
    },
    get bucket() {
      return current().bucket;
    },
    get client() {
      return current().client;
    },
    repository(prefix = '') {
      const { bucket, endpoint } = current();
      return { url: `s3://${bucket}/${prefix}`, endpoint, forcePathStyle: true, region: 'us-east-1' };
    },
  };
}

async function startS3rver(): Promise<RunningS3> {
  const directory = await mkdtemp(join(tmpdir(), 'tidemark-s3rver-'));
  const cli = join(dirname(require.resolve('s3rver/package.json')), 'bin', 's3rver.js');
  // Port 0 lets the kernel pick a free port; s3rver prints the one it got. The legacy provider is
  // needed on Node 20 for its DES-encrypted ListObjectsV2 continuation tokens.
  const child = spawn(
    process.execPath,
    ['--openssl-legacy-provider', cli, '-d', directory, '-a', '127.0.0.1', '-p', '0', '--silent'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const stop = async (): Promise<void> => {
    await stopProcess(child);
    scanTree(directory, 'an s3rver bucket (every object Tidemark stored there)');
    await rm(directory, { recursive: true, force: true });
  };
  try {
    const port = await listeningPort(child);
    const endpoint = `http://127.0.0.1:${port}`;
    const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true });
    await untilAnswering(client);
    const bucket = `tidemark-test-${process.pid}-${randomBytes(4).toString('hex')}`;
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    return {
      endpoint,
      bucket,
      client,
      stop: async () => {
        client.destroy();
        await stop();
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

function listeningPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => fail(new Error('s3rver did not start within 30 s')), 30_000);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      reject(new Error(`${err.message}\n${stderr}`));
    };
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    child.once('error', fail);
    child.once('exit', (code, signal) => fail(new Error(`s3rver exited early (${signal ?? code})`)));
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /listening on [\d.]+:(\d+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
  });
}

async function untilAnswering(client: S3Client): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await client.send(new ListBucketsCommand({}));
      return;
    } catch (err) {
      if (attempt >= 50) throw err;
      await sleep(100);
    }
  }
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}
