/**
 * Promise.all for start-up work that opens things (connections, temp files): it waits for every
 * one, and when any failed, releases those that succeeded (`release[i]` gets the i-th value) before
 * throwing the first failure in argument order, so nothing opened is left behind.
 */
export async function allOrRelease<P extends readonly unknown[] | []>(
  pending: P,
  release: { [K in keyof P]?: (value: Awaited<P[K]>) => Promise<unknown> },
): Promise<{ -readonly [K in keyof P]: Awaited<P[K]> }> {
  const settled: PromiseSettledResult<unknown>[] = await Promise.allSettled(pending as readonly unknown[]);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  const values = settled.map((r) => (r.status === 'fulfilled' ? r.value : undefined));
  if (!failed) return values as { -readonly [K in keyof P]: Awaited<P[K]> };
  const releases = release as readonly (((value: unknown) => Promise<unknown>) | undefined)[];
  await Promise.all(settled.map((r, i) => (r.status === 'fulfilled' ? releases[i]?.(r.value) : undefined)));
  throw failed.reason;
}
