/**
 * Allowed request → the upstream, through one undici Pool (keep-alive, `upstream.connections`).
 *
 * `pool.dispatch` with a handler object is undici's lowest layer: no Readable wrapper on the
 * response and no promise per request, so the response body goes straight from undici's parser
 * into `res.write` with backpressure (pause on a full socket, resume on 'drain'), and the request
 * body is `req` itself, which undici pipes with its own backpressure. Nothing is buffered whole.
 *
 * Failures (SPEC §3): before the response head, connect/reset errors answer 502
 * `upstream_unreachable`, a TLS handshake that fails verification or a backend's TLS alert refusing
 * jitgate's certificate (SPEC §11; upstream-alerts.ts) 502 `upstream_tls`
 * and timeouts 504 `upstream_timeout`; after it, the only honest signal
 * left is to cut the client connection. A client that goes away aborts the upstream request.
 *
 * A client that stops reading: while the upstream is paused for a client whose socket will not take
 * more, undici's body timeout does not run, so a client that never reads would hold a pool connection
 * for good. An exchange whose queued response bytes have not moved for `upstream.body_timeout` is
 * *stalled*; a stalled exchange is cut (`client_stalled`: the upstream request aborted, its
 * connection freed, the client connection destroyed) when another request waits for a pool slot —
 * at once when that request queues, else at the stalled one's next check (every quarter of the
 * timeout). Without contention nothing is cut: progress is seen only in the steps the kernel reports
 * a socket writable (a third of its send buffer, megabytes on a fast path), so a cut by time alone
 * ended legitimate downloads read at 32 KB/s (a re-probe of the first version of this bound).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { errors, Pool, type Dispatcher } from 'undici';
import type { Allow, UpstreamReason } from '../../core/decision.ts';
import type { Config } from '../../config/schema.ts';
import { StartupError } from '../../errors.ts';
import type { Metrics, UpstreamErrorKind } from '../../observability/metrics.ts';
import type { ProblemBoard } from '../../observability/problem-board.ts';
import type { TraceHandle } from '../../observability/trace-hooks.ts';
import { render } from '../respond.ts';
import { tlsAlertOf } from '../tls/upstream-alerts.ts';
import { TLS_ERROR_CODES, upstreamConnector, upstreamServerName } from '../tls/upstream-tls.ts';
import { compileHeaderPolicy, downstreamHeaders, upstreamHeaders, type HeaderPolicy } from './hop-headers.ts';
import { dropRestOfBody, watchBody } from './body-watchdog.ts';
import { PoolSlots } from './pool-slots.ts';

/** How an exchange ended; `ok` includes upstream 4xx/5xx answers, which are the backend's to give. */
export type ForwardEnd = 'ok' | UpstreamReason | 'client_closed' | 'body_timeout' | 'client_stalled' | 'shutdown_cut';

/** Called once per exchange with the status the client got (499 when it left first, as nginx logs it). */
export type ForwardDone = (status: number, end: ForwardEnd) => void;

const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

const TIMEOUT_CODES: ReadonlySet<string> = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);
const CONNECT_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
const RESET_CODES: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);

/**
 * undici's SocketError messages for an answer it refused (an unasked 100 or 101, an answer with no
 * request): the backend spoke, wrongly — a protocol error, not a closed connection.
 */
const BAD_ANSWER_MESSAGES: ReadonlySet<string> = new Set(['bad response', 'bad upgrade']);

export function errorKind(err: Error): UpstreamErrorKind {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string') return 'other';
  if (TIMEOUT_CODES.has(code)) return 'timeout';
  if (CONNECT_CODES.has(code)) return 'connect';
  if (code === 'UND_ERR_SOCKET' && BAD_ANSWER_MESSAGES.has(err.message)) return 'other';
  // A TLS 1.3 backend's alert after the handshake (it refused jitgate's certificate) reaches undici
  // as "other side closed"; the socket told the truth (upstream-alerts.ts).
  if (RESET_CODES.has(code)) return code === 'UND_ERR_SOCKET' && tlsAlertOf(err) !== undefined ? 'tls' : 'reset';
  if (TLS_ERROR_CODES.has(code)) return 'tls';
  return 'other';
}

/**
 * The idle-close race, and nothing else: the connection went away before any answer — a reset, a
 * broken pipe, or a close on a connection that had carried earlier answers (undici's socket info:
 * bytes read). A fresh connection the backend closed after reading the request, or an answer undici
 * refused (a bad response, a Content-Length that does not match), means the backend got the request
 * and may have acted on it: sending it again would run it twice. nginx repeats a request only on a
 * cached keep-alive connection that failed in the same way. (Over TLS the handshake's bytes count as
 * read, so there a fresh connection closed after the request is repeated as well.)
 */
export function closedBeforeAnswer(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_CLOSED') return true;
  if (code !== 'UND_ERR_SOCKET' || err.message !== 'other side closed' || tlsAlertOf(err) !== undefined) return false;
  const bytesRead = (err as { socket?: { bytesRead?: unknown } }).socket?.bytesRead;
  return typeof bytesRead === 'number' && bytesRead > 0;
}

/**
 * Methods RFC 9110 §9.2.2 lets a proxy repeat. A pooled connection the backend closes while idle
 * races with the next request sent on it: the request dies with a reset before any answer. Sent
 * again on another connection it succeeds, as nginx's default `proxy_next_upstream error` does.
 */
const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** Marks an abort we caused because the client left, so it is not counted as an upstream error. */
class ClientClosedError extends Error {
  constructor() {
    super('client closed the connection');
    this.name = 'ClientClosedError';
  }
}

/** The client sent no body byte for `limits.body_timeout`: not an upstream failure. */
class BodyTimeoutError extends Error {
  constructor() {
    super('request body idle for longer than limits.body_timeout');
    this.name = 'BodyTimeoutError';
  }
}

/** The client took no response byte for `upstream.body_timeout` while the upstream waited on it. */
class ClientStalledError extends Error {
  constructor() {
    super('client read no response byte for longer than upstream.body_timeout');
    this.name = 'ClientStalledError';
  }
}

/** The upstream origin; a path or query in `upstream.url` would be silently ignored, so it is refused. */
export function upstreamOrigin(url: string): string {
  const u = new URL(url);
  if ((u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.hash !== '') {
    throw new StartupError(`upstream.url: expected an origin such as http://backend:8080 without a path, got ${JSON.stringify(url)}`);
  }
  return u.origin;
}

export class Forwarder {
  #pool: Pool;
  /** Pools replaced after an upstream.tls change, finishing their exchanges before they close. */
  readonly #retiring = new Set<Pool>();
  /** Set once the listener cuts the connections left at the end of shutdown.grace (cutting()). */
  #cut = false;
  /** At most `upstream.connections` exchanges with undici; the rest wait (pool-slots.ts). */
  readonly #slots: PoolSlots<Exchange>;
  readonly #waitMs: number;
  /** https:// upstreams: the name the backend's certificate is checked against, the same for every request. */
  readonly #serverName: string | undefined;
  readonly #bodyTimeoutMs: number;
  /** @internal for Exchange: how long a paused upstream waits for the client to take a byte (upstream.body_timeout). */
  readonly stallMs: number;
  /** @internal for Exchange: upstream.headers_timeout, which undici restarts on every 1xx. */
  readonly headersMs: number;
  readonly #headers: HeaderPolicy;
  readonly #metrics: Metrics;
  readonly #logger: Logger;
  /** Bound histogram children by status class, 1xx at index 0. */
  readonly #upstreamSeconds: readonly { observe(v: number): void }[];
  /** Stops the upstream.tls file watch. */
  readonly #stopTlsReload: () => void;
  readonly #newPool: () => Pool;
  #portNumber = -1;
  #portText: string | undefined;

  /** `problems`: where a refused upstream.tls reload is listed for /readyz. */
  constructor(config: Config, metrics: Metrics, logger: Logger, problems?: ProblemBoard) {
    const u = config.upstream;
    const origin = upstreamOrigin(u.url);
    // https:// upstreams: verified TLS (and mTLS) per upstream.tls, files reloaded on change (SPEC §11).
    // A change of those files retires every pooled connection: a withdrawn CA must not stay trusted on
    // connections that steady traffic never lets go idle. Exchanges under way finish on the old pool.
    const connector = upstreamConnector(config, { metrics, logger, problems, onChange: () => this.#renewPool() });
    this.#stopTlsReload = connector.stop;
    this.#newPool = () =>
      new Pool(origin, {
        connections: u.connections,
        pipelining: 1,
        keepAliveTimeout: u.keep_alive_timeout,
        // A backend's `Keep-Alive: timeout=N` may shorten the idle time, never lengthen it (undici's own
        // cap is 10 minutes): past keep_alive_timeout the idle-close race is back (a probe).
        keepAliveMaxTimeout: u.keep_alive_timeout,
        connectTimeout: u.connect_timeout,
        headersTimeout: u.headers_timeout,
        bodyTimeout: u.body_timeout,
        connect: connector.connect,
      });
    this.#pool = this.#newPool();
    this.#slots = new PoolSlots<Exchange>(u.connections, (exchange) => this.#dispatch(exchange));
    this.#serverName = upstreamServerName(config);
    this.#waitMs = u.connect_timeout;
    this.headersMs = u.headers_timeout;
    this.#bodyTimeoutMs = config.limits.body_timeout;
    this.stallMs = u.body_timeout;
    this.#headers = compileHeaderPolicy(config);
    this.#metrics = metrics;
    this.#logger = logger;
    this.#upstreamSeconds = STATUS_CLASSES.map((c) => metrics.upstreamSeconds.labels(c));
  }

  /** `trace` (tracing on): the exchange gets its own span, and the backend that span's traceparent. */
  forward(req: IncomingMessage, res: ServerResponse, allow: Allow, done: ForwardDone, trace?: TraceHandle): void {
    // The client left while the gate decided: its 'close' has fired already, so nothing would
    // abort the upstream request — do not send it.
    if (res.destroyed) {
      done(499, 'client_closed');
      return;
    }
    const tls = (req.socket as { encrypted?: boolean }).encrypted === true;
    const head = upstreamHeaders(req.rawHeaders, this.#headers, allow.token === null ? null : allow.token.identity, clientAddress(req), this.#localPort(req), allow.clientCert, tls ? 'https' : 'http');
    if (trace !== undefined) {
      const span = trace.upstream(head.headers);
      const finish = done;
      done = (status, end) => {
        span.end(status, end);
        finish(status, end);
      };
    }
    // `servername` is read by undici's Request (lib/core/request.js), though its types omit it.
    const options: Dispatcher.DispatchOptions & { servername: string | undefined } = {
      path: allow.query === '' ? allow.path : allow.path + allow.query,
      method: req.method as Dispatcher.HttpMethod,
      headers: head.headers,
      body: head.hasBody ? req : null,
      // undici would take it from the client's Host (upstream-tls.ts upstreamServerName).
      servername: this.#serverName,
    };
    // Only a request that can be sent twice unchanged: idempotent, and no body to replay.
    const retry = !head.hasBody && IDEMPOTENT.has(options.method) ? options : undefined;
    const exchange = new Exchange(this, req, res, done, retry, head.hasBody ? this.#bodyTimeoutMs : 0, options);
    if (this.#slots.take(exchange)) this.#dispatch(exchange);
    else {
      exchange.wait(this.#waitMs);
      this.#cutStalled();
    }
  }

  /** Exchanges whose upstream is paused until their client drains (Exchange #watchSend). */
  readonly #paused = new Set<Exchange>();

  /** @internal for Exchange: it paused for its client (true) or resumed or ended (false). */
  pausedForClient(exchange: Exchange, paused: boolean): void {
    if (paused) this.#paused.add(exchange);
    else this.#paused.delete(exchange);
  }

  /** @internal for Exchange: a request waits for a pool slot. */
  get contended(): boolean {
    return this.#slots.waiting > 0;
  }

  /** A request queued for a slot: the exchange stalled longest, if any is stalled, gives up its own. */
  #cutStalled(): void {
    let worst: Exchange | undefined;
    let since = Infinity;
    const limit = performance.now() - this.stallMs;
    for (const e of this.#paused) {
      const at = e.sendMovedAt;
      if (at <= limit && at < since) {
        since = at;
        worst = e;
      }
    }
    worst?.cutStalled();
  }

  #dispatch(exchange: Exchange): void {
    exchange.holdsSlot = true;
    try {
      this.#pool.dispatch(exchange.options, exchange);
    } catch (err) {
      // Refused before it started (a closed pool): answered as an upstream failure, slot released.
      exchange.onResponseError(undefined, err as Error);
    }
  }

  /** @internal for Exchange: it held a slot and is done. */
  release(): void {
    this.#slots.release();
  }

  /** @internal for Exchange: it stopped waiting for a slot (timed out, or the client left). */
  unqueue(exchange: Exchange): void {
    this.#slots.remove(exchange);
  }

  /** @internal for Exchange */
  limitHit(limit: 'pool_wait' | 'body_timeout' | 'client_stalled'): void {
    this.#metrics.limitRefusals.labels(limit).inc();
    // A stalled reader got its answer's head already (the upstream's status): no refusal reason to count.
    if (limit !== 'client_stalled') this.#metrics.recordReason('proxy', limit === 'pool_wait' ? 'upstream_timeout' : 'request_timeout');
  }

  /** X-Forwarded-Port: one listener, one local port — its text is made once. */
  #localPort(req: IncomingMessage): string | undefined {
    const port = req.socket.localPort;
    if (port === undefined) return undefined;
    if (port !== this.#portNumber) {
      this.#portNumber = port;
      this.#portText = String(port);
    }
    return this.#portText;
  }

  /** @internal for Exchange: the one retry of an idempotent, bodiless request. */
  redispatch(options: Dispatcher.DispatchOptions, exchange: Exchange, err: Error): void {
    this.#countError(err);
    this.#metrics.upstreamRetries.inc();
    this.#logger.info({ err: err.message, code: (err as { code?: unknown }).code }, 'upstream connection closed before answering; retrying once on another connection');
    this.#pool.dispatch(options, exchange);
  }

  /**
   * The listener is about to close the connections still open at the end of shutdown.grace: their
   * exchanges end as `shutdown_cut` (444, nginx's "closed without a response"), not as 499, the
   * client leaving (a probe saw cut requests audited as clients that left).
   */
  cutting(): void {
    this.#cut = true;
  }

  /** @internal for Exchange: whether a connection closing now was closed by the gate at shutdown. */
  get cut(): boolean {
    return this.#cut;
  }

  /** upstream.tls changed: new exchanges go to a new pool; the old one closes once its exchanges end. */
  #renewPool(): void {
    const old = this.#pool;
    this.#pool = this.#newPool();
    this.#retiring.add(old);
    old.close().then(
      () => this.#retiring.delete(old),
      (err: unknown) => {
        this.#retiring.delete(old);
        this.#logger.warn({ err }, 'closing the upstream connections of the previous TLS files failed');
      },
    );
    this.#logger.info('upstream TLS files changed: pooled upstream connections are replaced once their exchanges end');
  }

  /** Lets in-flight exchanges finish, then closes the upstream connections. */
  async close(): Promise<void> {
    this.#stopTlsReload();
    await Promise.all([this.#pool.close(), ...[...this.#retiring].map((p) => p.close().catch(() => undefined))]);
  }

  async destroy(): Promise<void> {
    this.#stopTlsReload();
    await Promise.all([this.#pool.destroy(), ...[...this.#retiring].map((p) => p.destroy().catch(() => undefined))]);
  }

  /** @internal for Exchange */
  observeHead(seconds: number, status: number): void {
    this.#upstreamSeconds[Math.min(Math.max(Math.floor(status / 100), 1), 5) - 1]!.observe(seconds);
  }

  /** @internal for Exchange */
  upstreamFailed(err: Error, afterHead: boolean): UpstreamReason {
    const kind = this.#countError(err);
    const end: UpstreamReason = kind === 'timeout' ? 'upstream_timeout' : kind === 'tls' ? 'upstream_tls' : 'upstream_unreachable';
    this.#metrics.recordReason('proxy', end);
    this.#logger.warn({ err: err.message, code: (kind === 'tls' ? tlsAlertOf(err) : undefined) ?? (err as { code?: unknown }).code, after_head: afterHead }, 'upstream request failed');
    return end;
  }

  #countError(err: Error): UpstreamErrorKind {
    const kind = errorKind(err);
    this.#metrics.upstreamErrors.labels(kind).inc();
    return kind;
  }
}

/** One proxied request: undici's handler on one side, the client's ServerResponse on the other. */
class Exchange implements Dispatcher.DispatchHandler {
  readonly #forwarder: Forwarder;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #bodyTimeoutMs: number;
  /** What to dispatch once it has a pool slot. */
  readonly options: Dispatcher.DispatchOptions;
  /** Given a pool slot by the forwarder; released once, in #finish. */
  holdsSlot = false;
  #waitTimer: NodeJS.Timeout | undefined;
  #bodyTimer: NodeJS.Timeout | undefined;
  readonly #done: ForwardDone;
  readonly #started = performance.now();
  #controller: Dispatcher.DispatchController | undefined;
  #status = 0;
  #finished = false;
  #clientGone = false;
  /** A 'drain' listener is registered (the upstream is paused until the client catches up). */
  #awaitingDrain = false;
  /** Made the first time a write backs up (#watchSend); most exchanges never have one. */
  #sendTimer: NodeJS.Timeout | undefined;
  /** Response bytes still queued for the client at the last check, and when that number last fell. */
  #sendQueued = 0;
  #sendMovedAt = 0;

  /** When the queued response bytes last moved (performance.now()), while paused for the client. */
  get sendMovedAt(): number {
    return this.#sendMovedAt;
  }

  /** Stalled, and a request waits for its pool slot: cut (see the file comment). */
  cutStalled(): void {
    if (this.#awaitingDrain && !this.#finished) this.#controller?.abort(new ClientStalledError());
  }

  /** The request's options while one retry is left (idempotent, no body); undefined otherwise. */
  #retry: Dispatcher.DispatchOptions | undefined;

  constructor(
    forwarder: Forwarder,
    req: IncomingMessage,
    res: ServerResponse,
    done: ForwardDone,
    retry: Dispatcher.DispatchOptions | undefined,
    bodyTimeoutMs: number,
    options: Dispatcher.DispatchOptions,
  ) {
    this.#forwarder = forwarder;
    this.#req = req;
    this.#res = res;
    this.#done = done;
    this.#retry = retry;
    this.#bodyTimeoutMs = bodyTimeoutMs;
    this.options = options;
    // 'drain' is listened for only when a write backs up (onResponseData): most responses never do,
    // and a listener plus its closure per request was a visible share of the cached allow.
    res.on('close', () => {
      if (this.#finished || res.writableFinished) return;
      this.#clientGone = true;
      if (this.#waitTimer !== undefined) {
        // Left while waiting for a pool slot: never dispatched, nothing to abort.
        clearTimeout(this.#waitTimer);
        this.#waitTimer = undefined;
        this.#forwarder.unqueue(this);
        this.#clientClosed();
        return;
      }
      this.#controller?.abort(new ClientClosedError());
    });
  }

  /** Waits at most `ms` for a pool slot (pool-slots.ts), then answers 504. */
  wait(ms: number): void {
    this.#waitTimer = setTimeout(() => {
      this.#waitTimer = undefined;
      this.#forwarder.unqueue(this);
      this.#forwarder.limitHit('pool_wait');
      const r = render('upstream_timeout');
      if (!this.#req.complete) this.#res.shouldKeepAlive = false; // its body is still on its way: not read here
      this.#res.writeHead(r.status, r.headers);
      this.#res.end(r.bodyBytes);
      this.#finish(r.status, 'upstream_timeout');
    }, ms);
  }

  /** A pool slot is free for this exchange: false if it no longer wants one. */
  stopWaiting(): boolean {
    if (this.#waitTimer === undefined) return false;
    clearTimeout(this.#waitTimer);
    this.#waitTimer = undefined;
    return !this.#finished;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    // The client left while the request waited for a pooled connection.
    if (this.#clientGone) controller.abort(new ClientClosedError());
    else if (this.#bodyTimeoutMs > 0 && this.#bodyTimer === undefined && !this.#req.complete) {
      this.#bodyTimer = watchBody(this.#req, this.#req.socket, this.#bodyTimeoutMs, () => this.#finished, () => controller.abort(new BodyTimeoutError()));
    }
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[] | undefined>): void {
    if (status < 200) {
      // 1xx informational answers are not relayed. undici restarts its head timer on each one, so a
      // backend sending 103s forever would hold the exchange for good: the final answer is due within
      // headers_timeout of when the gate took the request, checked as each 1xx arrives.
      if (performance.now() - this.#started >= this.#forwarder.headersMs) controller.abort(new errors.HeadersTimeoutError());
      return;
    }
    this.#status = status;
    this.#forwarder.observeHead((performance.now() - this.#started) / 1000, status);
    const raw = controller.rawHeaders;
    const list = Array.isArray(raw) ? downstreamHeaders(raw) : downstreamHeaders(flatten(headers));
    try {
      this.#res.writeHead(status, list);
    } catch (err) {
      // An upstream header node:http refuses to send (invalid characters): a bad gateway.
      controller.abort(err as Error);
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#res.write(chunk)) return;
    controller.pause();
    if (this.#awaitingDrain) return;
    this.#awaitingDrain = true;
    this.#forwarder.pausedForClient(this, true);
    this.#res.once('drain', () => {
      this.#awaitingDrain = false;
      this.#forwarder.pausedForClient(this, false);
      this.#controller?.resume();
    });
    this.#watchSend();
  }

  /**
   * The upstream is paused until the client drains: watch for a stall (see the file comment). Progress
   * is any queued byte going out (a write completing, in the steps the kernel reports the socket
   * writable). Checked every quarter of `stallMs`; a stalled exchange is cut here only while a request
   * waits for a slot (one queuing cuts the longest-stalled at once, Forwarder #cutStalled).
   */
  #watchSend(): void {
    this.#sendQueued = this.#res.writableLength;
    this.#sendMovedAt = performance.now();
    if (this.#sendTimer !== undefined) {
      this.#sendTimer.refresh();
      return;
    }
    const ms = this.#forwarder.stallMs;
    const timer: NodeJS.Timeout = setTimeout(
      () => {
        // Drained since (the timer just lapses until the next backup refreshes it), or over.
        if (!this.#awaitingDrain || this.#finished) return;
        const queued = this.#res.writableLength;
        const now = performance.now();
        if (queued < this.#sendQueued) {
          this.#sendQueued = queued;
          this.#sendMovedAt = now;
        } else if (now - this.#sendMovedAt >= ms && this.#forwarder.contended) {
          this.#controller?.abort(new ClientStalledError());
          return;
        }
        timer.refresh();
      },
      Math.max(25, Math.floor(ms / 4)),
    );
    this.#sendTimer = timer;
  }

  onResponseEnd(): void {
    // Answered before the body was all sent: undici lets go of the body on its next turn (it resets
    // that upstream connection), and the rest is then read and dropped here. (The socket is read now:
    // node detaches it from the request once the answer is finished.)
    // (A connection closing after this answer has nothing to keep: left as node closes it.)
    if (!this.#req.complete && this.#res.shouldKeepAlive) setImmediate(dropRestOfBody, this.#req, this.#req.socket, this.#bodyTimeoutMs);
    this.#res.end();
    this.#finish(this.#status, 'ok');
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    const res = this.#res;
    if (err instanceof ClientStalledError) {
      // The head is out: no status can be sent any more. Cut the client; undici has cut the upstream.
      this.#forwarder.limitHit('client_stalled');
      res.destroy();
      this.#finish(this.#status, 'client_stalled');
      return;
    }
    if (this.#clientGone || err instanceof ClientClosedError) {
      this.#clientClosed();
      return;
    }
    if (err instanceof BodyTimeoutError) {
      this.#bodyTimedOut();
      return;
    }
    // A 204 or 304 may carry the Content-Length its body would have had (RFC 9110 §8.6); undici
    // refuses the missing body (it excuses HEAD only). The answer is whole: relay it, as nginx does.
    if ((this.#status === 204 || this.#status === 304) && (err as { code?: unknown }).code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') {
      this.onResponseEnd();
      return;
    }
    const retry = this.#retry;
    this.#retry = undefined;
    // Closed before any answer (the idle-close race): nothing reached the client yet, send it again.
    if (retry !== undefined && !res.headersSent && closedBeforeAnswer(err)) {
      this.#controller = undefined;
      this.#forwarder.redispatch(retry, this, err);
      return;
    }
    const end = this.#forwarder.upstreamFailed(err, res.headersSent);
    if (res.headersSent) {
      // Too late for a status: cut the connection so the client sees a truncated response.
      res.destroy();
      this.#finish(this.#status, end);
      return;
    }
    const r = render(end);
    // A request body still arriving is not read on: the connection closes. A whole request keeps its
    // connection (nginx's too), so a pipelined request behind it is still answered.
    if (!this.#req.complete) res.shouldKeepAlive = false;
    res.writeHead(r.status, r.headers);
    res.end(r.bodyBytes);
    this.#finish(r.status, end);
  }

  /** 408 while nothing was answered yet; after the response head, only cutting the connection is left. */
  #bodyTimedOut(): void {
    const res = this.#res;
    this.#forwarder.limitHit('body_timeout');
    if (res.headersSent) {
      res.destroy();
      this.#finish(this.#status, 'body_timeout');
      return;
    }
    const r = render('request_timeout');
    res.shouldKeepAlive = false;
    res.writeHead(r.status, r.headers);
    res.end(r.bodyBytes);
    this.#finish(r.status, 'body_timeout');
  }

  #clientClosed(): void {
    if (this.#forwarder.cut) this.#finish(444, 'shutdown_cut');
    else this.#finish(499, 'client_closed');
  }

  #finish(status: number, end: ForwardEnd): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#bodyTimer !== undefined) clearTimeout(this.#bodyTimer);
    if (this.#sendTimer !== undefined) clearTimeout(this.#sendTimer);
    if (this.#awaitingDrain) this.#forwarder.pausedForClient(this, false);
    if (this.holdsSlot) {
      this.holdsSlot = false;
      this.#forwarder.release();
    }
    this.#done(status, end);
  }
}

function flatten(headers: Record<string, string | string[] | undefined>): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(headers)) {
    if (Array.isArray(v)) for (const x of v) out.push(k, x);
    else if (v !== undefined) out.push(k, v);
  }
  return out;
}

/** The peer address for X-Forwarded-For; IPv4-mapped IPv6 (`::ffff:10.0.0.1`) as plain IPv4. */
export function clientAddress(req: IncomingMessage): string {
  const a = req.socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}
