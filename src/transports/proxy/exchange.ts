/**
 * One proxied request (forward.ts dispatches it): undici's handler on one side, the client's
 * ServerResponse on the other. The response body goes from undici's parser into `res.write` with
 * backpressure; a client that leaves aborts the upstream request; a request body that stops
 * arriving for `limits.body_timeout` is cut with 408; a request waiting for a pool slot answers 504
 * after `upstream.connect_timeout` (forward.ts explains the slots).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { UpstreamErrorKind } from '../../observability/metrics.ts';
import { render } from '../respond.ts';
import { downstreamHeaders } from './hop-headers.ts';

/** How an exchange ended; `ok` includes upstream 4xx/5xx answers, which are the backend's to give. */
export type ForwardEnd = 'ok' | 'upstream_unreachable' | 'upstream_timeout' | 'client_closed' | 'body_timeout';

/** Called once per exchange with the status the client got (499 when it left first, as nginx logs it). */
export type ForwardDone = (status: number, end: ForwardEnd) => void;

/** What an exchange needs from the forwarder that owns the pool. */
export interface ExchangeHost {
  redispatch(options: Dispatcher.DispatchOptions, exchange: Exchange, err: Error): void;
  observeHead(seconds: number, status: number): void;
  upstreamFailed(err: Error, afterHead: boolean): ForwardEnd;
  /** The exchange held a pool slot and is done. */
  release(): void;
  /** The exchange stopped waiting for a slot. */
  unqueue(exchange: Exchange): void;
  limitHit(limit: 'pool_wait' | 'body_timeout'): void;
}

const TIMEOUT_CODES: ReadonlySet<string> = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);
const CONNECT_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
const RESET_CODES: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH']);

export function errorKind(err: Error): UpstreamErrorKind {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string') return 'other';
  if (TIMEOUT_CODES.has(code)) return 'timeout';
  if (CONNECT_CODES.has(code)) return 'connect';
  if (RESET_CODES.has(code)) return 'reset';
  return 'other';
}

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

/** One proxied request: undici's handler on one side, the client's ServerResponse on the other. */
export class Exchange implements Dispatcher.DispatchHandler {
  readonly #forwarder: ExchangeHost;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #bodyTimeoutMs: number;
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

  /** The request's options while one retry is left (idempotent, no body); undefined otherwise. */
  #retry: Dispatcher.DispatchOptions | undefined;

  constructor(forwarder: ExchangeHost, req: IncomingMessage, res: ServerResponse, done: ForwardDone, retry: Dispatcher.DispatchOptions | undefined, bodyTimeoutMs: number) {
    this.#forwarder = forwarder;
    this.#req = req;
    this.#res = res;
    this.#done = done;
    this.#retry = retry;
    this.#bodyTimeoutMs = bodyTimeoutMs;
    res.on('drain', () => this.#controller?.resume());
    res.on('close', () => {
      if (this.#finished || res.writableFinished) return;
      this.#clientGone = true;
      if (this.#waitTimer !== undefined) {
        // Left while waiting for a slot: never dispatched, nothing to abort.
        clearTimeout(this.#waitTimer);
        this.#waitTimer = undefined;
        this.#forwarder.unqueue(this);
        this.#finish(499, 'client_closed');
        return;
      }
      this.#controller?.abort(new ClientClosedError());
    });
  }

  /** Waits at most `ms` for a pool slot, then answers 504. */
  wait(ms: number): void {
    this.#waitTimer = setTimeout(() => {
      this.#waitTimer = undefined;
      this.#forwarder.unqueue(this);
      this.#forwarder.limitHit('pool_wait');
      const r = render('upstream_timeout');
      this.#res.shouldKeepAlive = false; // a body may still be on its way
      this.#res.writeHead(r.status, r.headers);
      this.#res.end(r.bodyBytes);
      this.#finish(r.status, 'upstream_timeout');
    }, ms);
  }

  /** The forwarder has a slot for this exchange: false if it no longer wants one. */
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
    else if (this.#bodyTimeoutMs > 0 && this.#bodyTimer === undefined && !this.#req.complete) this.#watchBody();
  }

  /**
   * Request body idle timeout (nginx client_body_timeout): undici is reading the body now, so a
   * socket that delivers no byte for `limits.body_timeout` is a stalled client. Sampled every
   * quarter of the timeout (one timer, refreshed), so the cut lands within 1.25× the setting.
   */
  #watchBody(): void {
    const socket = this.#req.socket;
    let last = socket.bytesRead;
    let lastAt = performance.now();
    const tick = Math.max(25, Math.floor(this.#bodyTimeoutMs / 4));
    this.#bodyTimer = setTimeout(() => {
      if (this.#finished || this.#req.complete) return;
      const now = performance.now();
      if (socket.bytesRead !== last) {
        last = socket.bytesRead;
        lastAt = now;
      } else if (now - lastAt >= this.#bodyTimeoutMs) {
        this.#controller?.abort(new BodyTimeoutError());
        return;
      }
      this.#bodyTimer?.refresh();
    }, tick);
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[] | undefined>): void {
    if (status < 200) return; // 1xx informational answers are not relayed
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
    if (!this.#res.write(chunk)) controller.pause();
  }

  onResponseEnd(): void {
    this.#res.end();
    this.#finish(this.#status, 'ok');
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    const res = this.#res;
    if (this.#clientGone || err instanceof ClientClosedError) {
      this.#finish(499, 'client_closed');
      return;
    }
    if (err instanceof BodyTimeoutError) {
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
      return;
    }
    const retry = this.#retry;
    this.#retry = undefined;
    // Reset before any answer (the idle-close race): nothing reached the client yet, send it again.
    if (retry !== undefined && !res.headersSent && errorKind(err) === 'reset') {
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
    const r = render(end === 'upstream_timeout' ? 'upstream_timeout' : 'upstream_unreachable');
    // The request body may still be arriving; do not keep reading it on this connection.
    res.shouldKeepAlive = false;
    res.writeHead(r.status, r.headers);
    res.end(r.bodyBytes);
    this.#finish(r.status, end);
  }

  #finish(status: number, end: ForwardEnd): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#bodyTimer !== undefined) clearTimeout(this.#bodyTimer);
    if (this.#holdsSlot()) this.#forwarder.release();
    this.#done(status, end);
  }

  #holdsSlot(): boolean {
    const held = this.holdsSlot;
    this.holdsSlot = false;
    return held;
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
