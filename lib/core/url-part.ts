import { UsageError } from './errors';

/**
 * One %-encoded part of a connection URL, decoded. `decodeURIComponent` throws a bare URIError on a
 * stray `%` (`p%zz`); this names the URL and the part instead, never the value (it may be a password).
 */
export function decodeUrlPart(value: string, what: string, part: 'host' | 'user' | 'password' | 'database'): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new UsageError(`${what}: the ${part} in the URL has a malformed %-escape (write % itself as %25)`);
  }
}
