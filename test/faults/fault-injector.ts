import type { S3ErrorAnswer, S3NetworkFault, S3Operation, S3Request, S3RequestHook } from '../harness/s3-proxy';

/**
 * Random S3 faults at a rate, for the fault-injecting proxy (test/harness/s3-proxy.ts): 500s, 503
 * SlowDown, connection resets before any answer, responses cut off mid-body, and stalls (an answer
 * that never starts, until the client gives up). Seeded, so a failing run can be replayed: the seed
 * is in the test name.
 */
export type FaultKind = 'error500' | 'slowDown' | 'reset' | 'truncate' | 'stall';
export const FAULT_KINDS: readonly FaultKind[] = ['error500', 'slowDown', 'reset', 'truncate', 'stall'];

export interface FaultInjector {
  readonly hook: S3RequestHook;
  /** Faults injected so far, by kind. */
  readonly injected: Record<FaultKind, number>;
  /** Each fault injected: `<kind> <operation> <key>`, for the message of a failing test. */
  readonly history: readonly string[];
  /** Requests seen so far. */
  requests(): number;
  /** A hard outage: every request is answered 503 (or reset) until it is switched off. */
  outage(mode: 'off' | '503' | 'reset'): void;
}

export interface FaultOptions {
  readonly rate: number;
  readonly seed: number;
  readonly kinds?: readonly FaultKind[];
  /** Only these operations get faults. @default all */
  readonly operations?: readonly S3Operation[];
}

/** mulberry32: small, fast, good enough to pick faults (and kill moments). */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Only a read's body can be cut off in a way that matters; other answers are a few bytes. */
const TRUNCATABLE: ReadonlySet<S3Operation> = new Set(['GetObject']);

export function faultInjector(options: FaultOptions): FaultInjector {
  const next = random(options.seed);
  const kinds = options.kinds ?? FAULT_KINDS;
  const injected = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  const history: string[] = [];
  let seen = 0;
  let outage: 'off' | '503' | 'reset' = 'off';

  const answer = async (request: S3Request, kind: FaultKind): Promise<void | S3ErrorAnswer | S3NetworkFault> => {
    injected[kind]++;
    history.push(`${kind} ${request.operation} ${request.key}`);
    switch (kind) {
      case 'error500':
        return { status: 500, code: 'InternalError', message: 'We encountered an internal error. Please try again.' };
      case 'slowDown':
        return { status: 503, code: 'SlowDown', message: 'Please reduce your request rate.' };
      case 'reset':
        return { fault: 'reset' };
      case 'truncate':
        return { fault: 'truncate' };
      case 'stall':
        // No answer at all, until the client gives up on this request.
        await new Promise((resolve) => request.signal.addEventListener('abort', resolve, { once: true }));
        return { fault: 'reset' };
    }
  };

  const hook: S3RequestHook = (request) => {
    seen++;
    if (outage === '503') return { status: 503, code: 'ServiceUnavailable', message: 'Service is unable to handle request.' };
    if (outage === 'reset') return { fault: 'reset' };
    if (options.operations && !options.operations.includes(request.operation)) return undefined;
    if (next() >= options.rate) return undefined;
    const possible = kinds.filter((k) => k !== 'truncate' || TRUNCATABLE.has(request.operation));
    return answer(request, possible[Math.floor(next() * possible.length)]);
  };

  return {
    hook,
    injected,
    history,
    requests: () => seen,
    outage(mode) {
      outage = mode;
    },
  };
}
