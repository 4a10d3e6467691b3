/**
 * Allowed request → the upstream, through one undici Pool (keep-alive, `upstream.connections`).
 *
 * `pool.dispatch` with a handler object is undici's lowest layer: no Readable wrapper on the
 * response and no promise per request, so the response body goes straight from undici's parser
 * into `res.write` with backpressure (pause on a full socket, resume on 'drain'), and the request
 * body is `req` itself, which undici pipes with its own backpressure. Nothing is buffered whole.
 *
 * Failures (SPEC §3): before the response head, connect/reset errors answer 502
 * `upstream_unreachable` and timeouts 504 `upstream_timeout`; after it, the only honest signal
 * left is to cut the client connection. A client that goes away aborts the upstream request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { Pool, type Dispatcher } from 'undici';
import type { Allow } from '../../core/decision.ts';
import type { Config } from '../../config/schema.ts';
import { StartupError } from '../../errors.ts';
import type { Metrics, UpstreamErrorKind } from '../../observability/metrics.ts';
import { compileHeaderPolicy, upstreamHeaders, type HeaderPolicy } from './hop-headers.ts';
import { errorKind, Exchange, type ExchangeHost, type ForwardDone, type ForwardEnd } from './exchange.ts';

export type { ForwardDone, ForwardEnd } from './exchange.ts';

const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/**
 * Methods RFC 9110 §9.2.2 lets a proxy repeat. A pooled connection the backend closes while idle
 * races with the next request sent on it: the request dies with a reset before any answer. Sent
 * again on another connection it succeeds, as nginx's default `proxy_next_upstream error` does.
 */
const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** The upstream origin; a path or query in `upstream.url` would be silently ignored, so it is refused. */
export function upstreamOrigin(url: string): string {
  const u = new URL(url);
  if ((u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.hash !== '') {
    throw new StartupError(`upstream.url: expected an origin such as http://backend:8080 without a path, got ${JSON.stringify(url)}`);
  }
  return u.origin;
}

/**
 * Pool slots (issue 21 item 8): undici queues a dispatch without bound while every connection is
 * busy, and no upstream timeout covers that wait, so slow uploads holding the pool left every other
 * client hanging. The forwarder counts the exchanges it gave undici (at most `upstream.connections`)
 * and lets the rest wait here, each at most `upstream.connect_timeout` (the time a new connection
 * would have been allowed), then answers 504 upstream_timeout — Envoy's and HAProxy's queue
 * timeouts answer the same way (as 503). The fast path (a free slot) sets no timer.
 */
interface Waiting {
  readonly options: Dispatcher.DispatchOptions;
  readonly exchange: Exchange;
}

export class Forwarder implements ExchangeHost {
  readonly #pool: Pool;
  readonly #capacity: number;
  readonly #waitMs: number;
  readonly #bodyTimeoutMs: number;
  #active = 0;
  readonly #waiting: Waiting[] = [];
  readonly #headers: HeaderPolicy;
  readonly #metrics: Metrics;
  readonly #logger: Logger;
  /** Bound histogram children by status class, 1xx at index 0. */
  readonly #upstreamSeconds: readonly { observe(v: number): void }[];

  constructor(config: Config, metrics: Metrics, logger: Logger) {
    const u = config.upstream;
    this.#pool = new Pool(upstreamOrigin(u.url), {
      connections: u.connections,
      pipelining: 1,
      keepAliveTimeout: u.keep_alive_timeout,
      connectTimeout: u.connect_timeout,
      headersTimeout: u.headers_timeout,
      bodyTimeout: u.body_timeout,
    });
    this.#capacity = u.connections;
    this.#waitMs = u.connect_timeout;
    this.#bodyTimeoutMs = config.limits.body_timeout;
    this.#headers = compileHeaderPolicy(config);
    this.#metrics = metrics;
    this.#logger = logger;
    this.#upstreamSeconds = STATUS_CLASSES.map((c) => metrics.upstreamSeconds.labels(c));
  }

  forward(req: IncomingMessage, res: ServerResponse, allow: Allow, done: ForwardDone): void {
    // The client left while the gate decided: its 'close' has fired already, so nothing would
    // abort the upstream request — do not send it.
    if (res.destroyed) {
      done(499, 'client_closed');
      return;
    }
    const head = upstreamHeaders(req.rawHeaders, this.#headers, allow.token === null ? null : allow.token.identity, clientAddress(req));
    const options: Dispatcher.DispatchOptions = {
      path: allow.query === '' ? allow.path : allow.path + allow.query,
      method: req.method as Dispatcher.HttpMethod,
      headers: head.headers,
      body: head.hasBody ? req : null,
    };
    // Only a request that can be sent twice unchanged: idempotent, and no body to replay.
    const retry = !head.hasBody && IDEMPOTENT.has(options.method) ? options : undefined;
    const exchange = new Exchange(this, req, res, done, retry, head.hasBody ? this.#bodyTimeoutMs : 0);
    if (this.#active < this.#capacity) this.#start(options, exchange);
    else {
      this.#waiting.push({ options, exchange });
      exchange.wait(this.#waitMs);
    }
  }

  #start(options: Dispatcher.DispatchOptions, exchange: Exchange): void {
    this.#active++;
    exchange.holdsSlot = true;
    try {
      this.#pool.dispatch(options, exchange);
    } catch (err) {
      // Refused before it started (a closed pool): answered as an upstream failure, slot released.
      exchange.onResponseError(undefined, err as Error);
    }
  }

  /** @internal for Exchange: it held a slot and is done; the longest-waiting exchange gets it. */
  release(): void {
    this.#active--;
    while (this.#active < this.#capacity && this.#waiting.length > 0) {
      const w = this.#waiting.shift()!;
      if (w.exchange.stopWaiting()) this.#start(w.options, w.exchange);
    }
  }

  /** @internal for Exchange: it stopped waiting for a slot (timed out, or the client left). */
  unqueue(exchange: Exchange): void {
    const i = this.#waiting.findIndex((w) => w.exchange === exchange);
    if (i !== -1) this.#waiting.splice(i, 1);
  }

  /** @internal for Exchange */
  limitHit(limit: 'pool_wait' | 'body_timeout'): void {
    this.#metrics.limitRefusals.labels(limit).inc();
    this.#metrics.recordReason('proxy', limit === 'pool_wait' ? 'upstream_timeout' : 'request_timeout');
  }

  /** Exchanges waiting for a pool slot (for tests and metrics). */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** @internal for Exchange: the one retry of an idempotent, bodiless request. */
  redispatch(options: Dispatcher.DispatchOptions, exchange: Exchange, err: Error): void {
    this.#countError(err);
    this.#metrics.upstreamRetries.inc();
    this.#logger.info({ err: err.message, code: (err as { code?: unknown }).code }, 'upstream connection closed before answering; retrying once on another connection');
    this.#pool.dispatch(options, exchange);
  }

  /** Lets in-flight exchanges finish, then closes the upstream connections. */
  close(): Promise<void> {
    return this.#pool.close();
  }

  destroy(): Promise<void> {
    return this.#pool.destroy();
  }

  /** @internal for Exchange */
  observeHead(seconds: number, status: number): void {
    this.#upstreamSeconds[Math.min(Math.max(Math.floor(status / 100), 1), 5) - 1]!.observe(seconds);
  }

  /** @internal for Exchange */
  upstreamFailed(err: Error, afterHead: boolean): ForwardEnd {
    const kind = this.#countError(err);
    const end: ForwardEnd = kind === 'timeout' ? 'upstream_timeout' : 'upstream_unreachable';
    this.#metrics.recordReason('proxy', end);
    this.#logger.warn({ err: err.message, code: (err as { code?: unknown }).code, after_head: afterHead }, 'upstream request failed');
    return end;
  }

  #countError(err: Error): UpstreamErrorKind {
    const kind = errorKind(err);
    this.#metrics.upstreamErrors.labels(kind).inc();
    return kind;
  }
}

/** The peer address for X-Forwarded-For; IPv4-mapped IPv6 (`::ffff:10.0.0.1`) as plain IPv4. */
export function clientAddress(req: IncomingMessage): string {
  const a = req.socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}
