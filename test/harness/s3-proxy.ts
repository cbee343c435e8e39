import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { once } from 'node:events';
import { Agent, createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';

/** The S3 operations the proxy tells apart, from path-style requests as the stores send them. */
export type S3Operation =
  | 'HeadObject'
  | 'GetObject'
  | 'PutObject'
  | 'ListObjects'
  | 'DeleteObjects'
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'Other';

/** One request as the proxy saw it. */
export interface S3Request {
  readonly operation: S3Operation;
  readonly bucket: string;
  /** The object key in the bucket (store prefix included); '' for bucket requests. */
  readonly key: string;
  readonly headers: IncomingMessage['headers'];
  /** For multipart requests; a CreateMultipartUpload gets it from its answer. */
  uploadId?: string;
  /** The answer's HTTP status, set before the client gets it; undefined while in flight or if the client left first. */
  status?: number;
  /** Aborted when the client goes away (or the proxy closes) before it is answered. */
  readonly signal: AbortSignal;
}

/** An S3 error document a hook answers with instead of forwarding the request. */
export interface S3ErrorAnswer {
  readonly status: number;
  readonly code: string;
  readonly message: string;
}

/**
 * A network fault instead of an answer: `reset` drops the connection before any response; `truncate`
 * forwards the request and sends the real headers but only the first `afterBytes` of the body (default:
 * half), then closes the connection (a FIN, not a reset: a reset lets the kernel drop what the client
 * had not read yet, headers included, and the SDK would then send the same request again itself).
 */
export type S3NetworkFault = { readonly fault: 'reset' } | { readonly fault: 'truncate'; readonly afterBytes?: number };

/**
 * Runs before each request is forwarded. It may wait (to delay or stall the request; `signal`
 * says when the client gave up), change the upstream (make an object appear), or return an answer
 * or a network fault to give instead of forwarding.
 */
export type S3RequestHook = (request: S3Request) => void | S3ErrorAnswer | S3NetworkFault | Promise<void | S3ErrorAnswer | S3NetworkFault>;

export interface S3ProxyOptions {
  /** @default - every request is forwarded as it came */
  readonly onRequest?: S3RequestHook;
  /**
   * Refuse a PutObject or CompleteMultipartUpload sent with If-None-Match: * when the key exists
   * (412 PreconditionFailed), as AWS does and s3rver does not. Checked after the hook, so a hook can
   * make the object appear just in time. (Check-then-forward is not atomic: enough for tests.)
   * @default false - the header goes to the upstream, which ignores it
   */
  readonly enforceIfNoneMatch?: boolean;
}

export interface S3Proxy {
  /** Point a store's `endpoint` here instead of at the upstream. */
  readonly endpoint: string;
  /** Every request so far, in arrival order. */
  readonly requests: readonly S3Request[];
  /** Ids of multipart uploads created through the proxy and neither completed nor aborted. */
  openUploads(): string[];
  close(): Promise<void>;
}

/**
 * An HTTP proxy on 127.0.0.1 in front of an S3 endpoint (s3rver in the tests): it sees the real
 * traffic of the store under test, records it, and lets a hook delay, stall or answer any request.
 * Requests pass through unchanged (their SigV4 signatures name the proxy's host, which the upstream
 * checks against the Host header it receives, also unchanged), except AbortMultipartUpload, which
 * s3rver lacks: the proxy answers it and then refuses that upload's parts and completion.
 */
export async function startS3Proxy(upstream: string, options: S3ProxyOptions = {}): Promise<S3Proxy> {
  const target = new URL(upstream);
  const requests: S3Request[] = [];
  const abortedUploads = new Set<string>();
  const closing = new AbortController();
  const agent = new Agent({ keepAlive: true });
  // Only for the If-None-Match check; credentials from the environment, as useS3 sets them.
  const client = new S3Client({ endpoint: upstream, region: 'us-east-1', forcePathStyle: true });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const [bucket = '', ...path] = url.pathname.slice(1).split('/');
    const key = decodeURIComponent(path.join('/'));
    const clientLeft = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) clientLeft.abort();
    });
    const request: S3Request = {
      operation: operationOf(req.method, key, url.searchParams),
      bucket,
      key,
      headers: req.headers,
      uploadId: url.searchParams.get('uploadId') ?? undefined,
      signal: AbortSignal.any([clientLeft.signal, closing.signal]),
    };
    requests.push(request);

    const answer = (await options.onRequest?.(request)) ?? noSuchUpload(request) ?? (await precondition(request));
    if (request.signal.aborted) {
      res.destroy();
      return;
    }
    if (answer && 'fault' in answer) {
      if (answer.fault === 'reset') {
        req.resume();
        res.socket?.resetAndDestroy();
        return;
      }
      return forward(req, res, request, answer.afterBytes ?? 'half');
    }
    if (answer) return answerHere(req, res, request, answer.status, errorDocument(answer, request.key));
    if (request.operation === 'AbortMultipartUpload') {
      // s3rver answers 405 (not implemented): the proxy keeps the books instead, as S3 would.
      abortedUploads.add(request.uploadId as string);
      return answerHere(req, res, request, 204);
    }
    await forward(req, res, request);
  }

  /** After AbortMultipartUpload, S3 refuses the upload's parts and completion. */
  function noSuchUpload(request: S3Request): S3ErrorAnswer | undefined {
    const aborted = request.operation !== 'CreateMultipartUpload' && request.uploadId !== undefined && abortedUploads.has(request.uploadId);
    return aborted ? { status: 404, code: 'NoSuchUpload', message: 'The specified upload does not exist' } : undefined;
  }

  async function precondition(request: S3Request): Promise<S3ErrorAnswer | undefined> {
    const conditional = request.operation === 'PutObject' || request.operation === 'CompleteMultipartUpload';
    if (!options.enforceIfNoneMatch || !conditional || request.headers['if-none-match'] !== '*') return undefined;
    const exists = await client.send(new HeadObjectCommand({ Bucket: request.bucket, Key: request.key })).then(
      () => true,
      (err: { $metadata?: { httpStatusCode?: number } }) => {
        if (err.$metadata?.httpStatusCode === 404) return false;
        throw err;
      },
    );
    return exists ? { status: 412, code: 'PreconditionFailed', message: 'At least one of the pre-conditions you specified did not hold' } : undefined;
  }

  async function forward(req: IncomingMessage, res: ServerResponse, request: S3Request, truncateAfter?: number | 'half'): Promise<void> {
    const toUpstream = httpRequest(target, { agent, method: req.method, path: req.url, headers: req.headers, signal: request.signal });
    const answered = once(toUpstream, 'response') as Promise<[IncomingMessage]>;
    answered.catch(() => undefined); // the pipeline below reports the same failure
    await pipeline(req, toUpstream);
    const [fromUpstream] = await answered;
    const status = fromUpstream.statusCode ?? 502;
    if (request.operation === 'CreateMultipartUpload') {
      // Small, and the upload id is in it.
      const body = await buffer(fromUpstream);
      request.uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(body.toString())?.[1];
      request.status = status;
      res.writeHead(status, fromUpstream.headers).end(body);
      return;
    }
    request.status = status;
    res.writeHead(status, fromUpstream.headers);
    if (truncateAfter === undefined) return pipeline(fromUpstream, res);
    const body = await buffer(fromUpstream);
    const cut = truncateAfter === 'half' ? Math.floor(body.length / 2) : Math.min(truncateAfter, body.length);
    res.write(body.subarray(0, cut), () => res.socket?.end());
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    openUploads() {
      const completed = requests.filter((r) => r.operation === 'CompleteMultipartUpload' && r.status === 200).map((r) => r.uploadId);
      const ended = new Set([...completed, ...abortedUploads]);
      return requests
        .filter((r) => r.operation === 'CreateMultipartUpload' && r.uploadId !== undefined && !ended.has(r.uploadId))
        .map((r) => r.uploadId as string);
    },
    async close() {
      closing.abort();
      const closed = new Promise((resolve) => server.close(resolve));
      server.closeAllConnections();
      await closed;
      agent.destroy();
      client.destroy();
    },
  };
}

function operationOf(method: string | undefined, key: string, query: URLSearchParams): S3Operation {
  const multipart = query.has('uploadId');
  switch (method) {
    case 'HEAD':
      return key ? 'HeadObject' : 'Other';
    case 'GET':
      return key ? 'GetObject' : query.has('list-type') ? 'ListObjects' : 'Other';
    case 'PUT':
      return multipart ? 'UploadPart' : key ? 'PutObject' : 'Other';
    case 'POST':
      return query.has('uploads') ? 'CreateMultipartUpload' : multipart ? 'CompleteMultipartUpload' : query.has('delete') ? 'DeleteObjects' : 'Other';
    case 'DELETE':
      return multipart ? 'AbortMultipartUpload' : 'Other';
    default:
      return 'Other';
  }
}

/** Answers in place of the upstream, once the client has sent its body (not wanted, but it must be able to finish). */
async function answerHere(req: IncomingMessage, res: ServerResponse, request: S3Request, status: number, body = ''): Promise<void> {
  req.resume();
  await once(req, 'end');
  request.status = status;
  const headers = body === '' ? {} : { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) };
  res.writeHead(status, headers).end(body);
}

function errorDocument(answer: S3ErrorAnswer, key: string): string {
  const xml = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${xml(answer.code)}</Code><Message>${xml(answer.message)}</Message><Key>${xml(key)}</Key><RequestId>s3-proxy</RequestId></Error>`
  );
}
