/** Where an S3 repository is; kept apart from s3-store.ts so naming it does not load the AWS SDK. */
export interface S3Location {
  readonly bucket: string;
  /** Key prefix without leading or trailing '/'; '' for the bucket root. */
  readonly prefix: string;
  /** S3-compatible endpoint; the AWS endpoint of `region` when absent. */
  readonly endpoint?: string;
  readonly region: string;
  readonly forcePathStyle: boolean;
}

/** The endpoint without credentials or query, safe to print. */
export function safeEndpoint(endpoint: string): string {
  try {
    const url = new URL(endpoint);
    return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
  } catch {
    return '(invalid endpoint)';
  }
}

/** s3://bucket/prefix, and the endpoint when it is not AWS's: safe to print. */
export function describeS3Location(location: S3Location): string {
  return `s3://${location.bucket}/${location.prefix}` + (location.endpoint ? ` at ${safeEndpoint(location.endpoint)}` : '');
}
