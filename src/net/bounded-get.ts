/**
 * One HTTP GET with the limits every remote source needs: an overall deadline (headers *and*
 * body), a response size cap enforced while streaming (a lying or absent Content-Length cannot
 * make us buffer more), and conditional requests by ETag. Shared by the JWKS fetcher and the
 * revocation feed so both fail the same way.
 */
import { request } from 'undici';

export interface BoundedGetOptions {
  readonly timeoutMs: number;
  readonly maxBytes: number;
  /** Sent as If-None-Match when set. */
  readonly etag?: string | undefined;
  readonly accept?: string;
}

export type BoundedGetResult =
  | { readonly status: 'not_modified'; readonly etag: string | undefined; readonly cacheControl: string | undefined }
  | { readonly status: 'ok'; readonly body: Buffer; readonly etag: string | undefined; readonly cacheControl: string | undefined };

/** Why a fetch failed, as a stable code for logs and metrics. */
/** `malformed` is raised by callers whose body does not parse. */
export type FetchErrorCode = 'timeout' | 'too_large' | 'http_status' | 'network' | 'malformed';

export class FetchError extends Error {
  readonly code: FetchErrorCode;
  /** The response status for `http_status` (a status-list redirect is told apart by it). */
  readonly httpStatus: number | undefined;
  constructor(code: FetchErrorCode, message: string, options?: ErrorOptions & { httpStatus?: number }) {
    super(message, options);
    this.name = 'FetchError';
    this.code = code;
    this.httpStatus = options?.httpStatus;
  }
}

/** An ETag that names a version: an empty or blank one names none (sent back, it made an empty If-None-Match). */
function versionTag(etag: string | undefined): string | undefined {
  return etag === undefined || etag.trim() === '' ? undefined : etag;
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** GET `url`; resolves with the body or 304, rejects with a FetchError. Redirects are not followed. */
export async function boundedGet(url: string, options: BoundedGetOptions): Promise<BoundedGetResult> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), options.timeoutMs);
  timer.unref();
  const headers: Record<string, string> = { accept: options.accept ?? '*/*' };
  const ifNoneMatch = versionTag(options.etag);
  if (ifNoneMatch !== undefined) headers['if-none-match'] = ifNoneMatch;
  try {
    const res = await request(url, { method: 'GET', headers, signal: controller.signal });
    const etag = versionTag(header(res.headers, 'etag'));
    const cacheControl = header(res.headers, 'cache-control');
    if (res.statusCode === 304) {
      await res.body.dump();
      // A 304 confirms the version the request named; to one that named none it confirms nothing. Every
      // source relies on this: a probe kept a status list "fresh" past max_stale with bare 304s after a
      // copy served without an ETag (or with an empty one), and a revocation feed or JWKS could be held
      // the same way. (No httpStatus: it is not a redirect.)
      if (ifNoneMatch === undefined) throw new FetchError('http_status', 'HTTP 304 to a request without If-None-Match');
      return { status: 'not_modified', etag, cacheControl };
    }
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new FetchError('http_status', `HTTP ${res.statusCode}`, { httpStatus: res.statusCode });
    }
    const declared = Number(header(res.headers, 'content-length'));
    if (Number.isFinite(declared) && declared > options.maxBytes) {
      res.body.destroy();
      throw new FetchError('too_large', `response of ${declared} bytes exceeds the limit of ${options.maxBytes}`);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of res.body) {
      total += (chunk as Buffer).length;
      if (total > options.maxBytes) {
        res.body.destroy();
        throw new FetchError('too_large', `response exceeds the limit of ${options.maxBytes} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
    return { status: 'ok', body: Buffer.concat(chunks, total), etag, cacheControl };
  } catch (err) {
    if (err instanceof FetchError) throw err;
    if (controller.signal.aborted) throw new FetchError('timeout', `no complete response within ${options.timeoutMs}ms`, { cause: err });
    const e = err as NodeJS.ErrnoException;
    throw new FetchError('network', e.code ? `${e.code}: ${e.message}` : e.message, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}
