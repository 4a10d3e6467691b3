/**
 * One JWKS download: a bounded GET (timeout, size cap, If-None-Match) whose body must be a JSON
 * object, plus the freshness the issuer asked for in `Cache-Control`. Importing the keys is the
 * caller's job (key-set.ts), so a document that parses but holds no usable key is judged there.
 */
import { boundedGet, FetchError } from '../net/bounded-get.ts';
import { parseJson } from '../core/json-parse.ts';

export interface JwksFetchOptions {
  readonly timeoutMs: number;
  readonly maxBytes: number;
  readonly etag: string | undefined;
}

export type JwksFetchResult =
  | { readonly status: 'not_modified'; readonly maxAgeMs: number | undefined }
  | { readonly status: 'ok'; readonly doc: unknown; readonly etag: string | undefined; readonly maxAgeMs: number | undefined };

/**
 * The freshness lifetime from Cache-Control in ms: `max-age=N`, or 0 for `no-cache`/`no-store`
 * (refresh as soon as allowed); undefined when the header says nothing about it.
 */
export function maxAgeMs(cacheControl: string | undefined): number | undefined {
  if (cacheControl === undefined) return undefined;
  let result: number | undefined;
  for (const part of cacheControl.split(',')) {
    const [rawName, rawValue] = part.split('=', 2) as [string, string | undefined];
    const name = rawName.trim().toLowerCase();
    if (name === 'no-cache' || name === 'no-store') return 0;
    if (name === 'max-age' && rawValue !== undefined) {
      const v = rawValue.trim().replace(/^"(.*)"$/, '$1');
      if (/^\d{1,10}$/.test(v)) result = Number(v) * 1000;
    }
  }
  return result;
}

export async function fetchJwks(url: string, options: JwksFetchOptions): Promise<JwksFetchResult> {
  const res = await boundedGet(url, { ...options, accept: 'application/jwk-set+json, application/json' });
  const maxAge = maxAgeMs(res.cacheControl);
  if (res.status === 'not_modified') return { status: 'not_modified', maxAgeMs: maxAge };
  let doc: unknown;
  try {
    doc = parseJson(res.body.toString('utf8'));
  } catch (err) {
    throw new FetchError('malformed', 'JWKS is not valid JSON', { cause: err });
  }
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { keys?: unknown }).keys)) {
    throw new FetchError('malformed', 'JWKS must be a JSON object with a "keys" array');
  }
  return { status: 'ok', doc, etag: res.etag, maxAgeMs: maxAge };
}
