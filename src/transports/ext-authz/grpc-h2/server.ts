/**
 * A minimal gRPC server on node:http2 (h2c), for the few methods jitgate serves. grpc-js bounded
 * the ext_authz gRPC rate at ≈ 0.15× the HTTP service on the same cached token (issue 20): its
 * per-call machinery (metadata objects, status builders, filters, timers) costs more than the
 * decision. Here a call is: route by `:path`, collect the length-prefixed message, hand it to the
 * route, answer with one DATA frame and `grpc-status` trailers.
 *
 * - Unary routes answer as soon as their one message is complete (Envoy sends it with END_STREAM).
 * - Deadlines: `grpc-timeout` is honoured with DEADLINE_EXCEEDED, armed only when an answer is
 *   not given in the tick its message completed (a cached Check never pays for a timer).
 * - Unknown paths: UNIMPLEMENTED; not POST + application/grpc: HTTP 415 (PROTOCOL-HTTP2.md).
 * - Bidi routes (server reflection) get a small duplex with grpc-js's `data`/`end`/`write`/`end()`.
 *   Their messages have the unary bounds: the size cap (RESOURCE_EXHAUSTED, as grpc-js), the shared
 *   MAX_BUFFERED_BYTES and the read timeout, counted from a message's first byte (idle between
 *   messages is normal bidi use).
 */
import { EventEmitter } from 'node:events';
import { constants, createServer, type Http2Server, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { frame, MessageReader, parseGrpcTimeout, type ReadProblem } from './frames.ts';

export const GRPC_STATUS = { OK: 0, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, RESOURCE_EXHAUSTED: 8, UNIMPLEMENTED: 12, INTERNAL: 13 } as const;

/**
 * One unary call: exactly one of `ok`/`okFramed`/`error` takes effect; later calls (after a deadline,
 * or after a second message was refused) do nothing. Each says whether it was the one, so what is
 * audited is what the client got.
 */
export interface UnaryReply {
  ok(message: Buffer): boolean;
  /** `ok` for a message already framed (frames.ts `frame`): answers kept and sent again and again. */
  okFramed(framed: Buffer): boolean;
  error(code: number, message: string): boolean;
  /** The call's deadline answered it (DEADLINE_EXCEEDED) before anything else did. */
  readonly expired: boolean;
}

export interface UnaryRoute {
  readonly kind: 'unary';
  /** The request message, or why it could not be read. Must answer through `reply`, now or later. */
  handle(message: Buffer | ReadProblem, reply: UnaryReply, headers: IncomingHttpHeaders): void;
}

/** The duplex a grpc-js bidi handler expects, reduced to what reflection uses. */
export interface BidiCall extends EventEmitter {
  write(message: unknown): boolean;
  end(): void;
}

export interface BidiRoute {
  readonly kind: 'bidi';
  readonly deserialize: (bytes: Buffer) => unknown;
  readonly serialize: (value: unknown) => Buffer;
  handle(call: BidiCall): void;
}

export type Route = UnaryRoute | BidiRoute;

const RESPONSE_HEADERS = Object.freeze({ ':status': 200, 'content-type': 'application/grpc' });
const OK_TRAILERS = Object.freeze({ 'grpc-status': '0' });

/** `grpc-message` is percent-encoded (PROTOCOL-HTTP2.md); ours are ASCII, but never trust that. */
function grpcMessage(s: string): string {
  return encodeURIComponent(s);
}

function trailersOnly(stream: ServerHttp2Stream, code: number, message: string): boolean {
  if (stream.headersSent || stream.destroyed) return false;
  stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': grpcMessage(message) }, { endStream: true });
  return true;
}

/**
 * `application/grpc`, optionally `+proto`, optionally with parameters; any case (media types are
 * case-insensitive). `application/grpc+json` or `application/grpcfoo` is not a protobuf call (415).
 */
function isGrpcProto(ct: string): boolean {
  const semi = ct.indexOf(';');
  const type = (semi === -1 ? ct : ct.slice(0, semi)).trim().toLowerCase();
  return type === 'application/grpc' || type === 'application/grpc+proto';
}

/**
 * Streams one client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). Envoy opens another
 * connection past it; node's default, 2^32 − 1, let one connection hold any number of calls.
 */
export const MAX_CONCURRENT_STREAMS = 1000;

/**
 * A call whose request message is not whole this long after the call opened is refused as
 * truncated (a CheckResponse denial, not an RPC error), whether it sent part of one, an empty DATA
 * frame or nothing at all: every call is answered (a re-probe held 40,000 calls of headers only).
 */
export const MESSAGE_READ_TIMEOUT_MS = 10_000;

/** How often calls still waiting for their message, and the stall rule, are looked at (their resolution). */
const SWEEP_MS = 1_000;

/**
 * Bytes held for unfinished request messages of all calls together (their chunks, each counted at
 * what keeping it costs, frames.ts). A call whose chunk takes the total past it is refused as too
 * large: 1,000 streams per connection times 4 MiB each, times any number of connections, must not
 * run the process out of memory within the read timeout (a re-probe grew it by 314 MB in 2 s).
 */
export const MAX_BUFFERED_BYTES = 64 * 1024 * 1024;

/** What one call holds of an unfinished message, counted in the server's total until released. */
interface Held {
  heldBytes: number;
}

/** A bidi call in the middle of a message: when its first byte came, and how to end the call. */
interface Unfinished {
  since: number;
  readonly expire: () => void;
}

/**
 * One unary call: its input until it is answered, then its answer. The input is dropped when the
 * call ends, because node:http2 keeps a finished stream and its listeners (which hold this object)
 * alive until an old-generation collection (bench/README.md, "gRPC p99").
 */
class Unary implements UnaryReply, Held {
  readonly #stream: ServerHttp2Stream;
  heldBytes = 0;
  timer: NodeJS.Timeout | undefined;
  /** Undefined once the call is answered or abandoned. */
  reader: MessageReader | undefined;
  headers: IncomingHttpHeaders | undefined;
  /** The one request message, once whole. */
  message: Buffer | undefined;
  /** When the call opened, and its deadline (epoch ms), for the sweep of calls without a message. */
  readonly openedAt: number;
  readonly deadline: number | undefined;
  /** Refuses the call as unreadable (set by the server, which knows its route). */
  refuse: (problem: ReadProblem) => void = ignore;
  /** Called once when the call is answered or abandoned. */
  onFinish: (() => void) | undefined;
  expired = false;

  constructor(stream: ServerHttp2Stream, reader: MessageReader, headers: IncomingHttpHeaders, openedAt: number, deadline: number | undefined) {
    this.#stream = stream;
    this.reader = reader;
    this.headers = headers;
    this.openedAt = openedAt;
    this.deadline = deadline;
  }

  get done(): boolean {
    return this.reader === undefined;
  }

  /** The stream is gone (reset, connection closed): no answer can reach anyone. */
  get gone(): boolean {
    return this.#stream.destroyed || this.#stream.closed;
  }

  ok(message: Buffer): boolean {
    return !this.done && this.okFramed(frame(message));
  }

  okFramed(framed: Buffer): boolean {
    if (this.done) return false;
    this.#finish();
    const s = this.#stream;
    if (s.destroyed || s.headersSent) return false;
    s.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    s.on('wantTrailers', sendOkTrailers); // fires once per stream; `on` spares once()'s wrapper
    s.end(framed);
    return true;
  }

  error(code: number, message: string): boolean {
    if (this.done) return false;
    this.expired = code === GRPC_STATUS.DEADLINE_EXCEEDED;
    this.#finish();
    return trailersOnly(this.#stream, code, message);
  }

  onClose(listener: () => void): void {
    this.#stream.on('close', listener);
  }

  /** The client went away before the answer: nothing is sent. */
  abandon(): void {
    this.#finish();
  }

  #finish(): void {
    this.reader = this.headers = this.message = undefined;
    if (this.timer !== undefined) clearTimeout(this.timer);
    const done = this.onFinish;
    this.onFinish = undefined;
    this.refuse = ignore;
    done?.();
  }
}

function sendOkTrailers(this: ServerHttp2Stream): void {
  this.sendTrailers(OK_TRAILERS);
}

export interface GrpcH2Options {
  /** Largest request message read; a larger declared length is refused from its prefix. */
  readonly maxMessageBytes: number;
  /** MESSAGE_READ_TIMEOUT_MS unless set (tests); looked at every SWEEP_MS, or every tenth of it if shorter. */
  readonly readTimeoutMs?: number;
  /**
   * How long the client may leave what it owes undone, whatever other frames it sends (a PING or a
   * one-byte WINDOW_UPDATE is no progress): a connection that has opened no call by then is
   * destroyed (a silent socket, a preface and no more); so is one with a call answered this long ago
   * and still open (the client neither read the answer nor ended the call: a zero window); a bidi stream
   * that handed no request on for this long (idle, or its client does not read the answers) is
   * reset. A call still being decided is bounded by its deadline and the read timeout instead, and a
   * connection idle between answered calls stays (Envoy keeps it for the next Check). Looked at every
   * SWEEP_MS. `limits.headers_timeout` on the service; 0: never (tests of other things).
   */
  readonly stallTimeoutMs?: number;
}

/**
 * Bidi calls (server reflection) open at once, over all connections. Reflection is an operator's
 * tool (grpcurl); a bound keeps what the answers of many streams hold in memory bounded too.
 */
export const MAX_BIDI_CALLS = 16;

/** A connection, for the stall rule (GrpcH2Options.stallTimeoutMs). */
interface SessionState {
  readonly openedAt: number;
  /** A stream was ever opened. */
  used: boolean;
}

/** A bidi stream, for the stall rule: when it last handed a request on (or opened). */
interface BidiProgress {
  readonly stream: ServerHttp2Stream;
  at: number;
}

export class GrpcH2Server {
  readonly #routes = new Map<string, Route>();
  readonly #server: Http2Server;
  readonly #sessions = new Map<Http2Session, SessionState>();
  /** Streams whose answer is given (our side ended) and that are still open, with when (stall rule). */
  readonly #answered = new Map<ServerHttp2Stream, number>();
  readonly #bidis = new Set<BidiProgress>();
  readonly #stallMs: number;
  /** A stream's 'close' listener: one function for all, so a call costs no closure for it. */
  readonly #streamClosed: (this: ServerHttp2Stream) => void;
  /** Bidi calls open now (MAX_BIDI_CALLS). */
  #bidiCalls = 0;
  readonly #maxBytes: number;
  /** Unary calls whose message is not whole yet: swept for the read timeout and silent deadlines. */
  readonly #waiting = new Set<Unary>();
  /** Bidi calls holding part of a message: swept for the read timeout. */
  readonly #unfinished = new Set<Unfinished>();
  readonly #sweep: NodeJS.Timeout;
  /** Bytes of unfinished messages held by all calls (MAX_BUFFERED_BYTES). */
  #buffered = 0;
  readonly #readTimeoutMs: number;

  constructor(opts: GrpcH2Options) {
    this.#maxBytes = opts.maxMessageBytes;
    this.#server = createServer({ maxSessionMemory: 64, settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS } });
    this.#server.on('session', (session: Http2Session) => {
      this.#sessions.set(session, { openedAt: Date.now(), used: false });
      session.on('close', () => this.#sessions.delete(session));
      session.on('error', () => {}); // a peer's protocol error ends its session, never the process
    });
    // Not node:http2's session timeout: it fires once per connection, and any frame (a PING) defers it.
    this.#stallMs = opts.stallTimeoutMs ?? 0;
    const answered = this.#answered;
    this.#streamClosed = function (this: ServerHttp2Stream) {
      answered.delete(this);
    };
    this.#server.on('stream', (stream, headers) => this.#onStream(stream, headers));
    this.#readTimeoutMs = opts.readTimeoutMs ?? MESSAGE_READ_TIMEOUT_MS;
    const finest = Math.min(this.#readTimeoutMs, this.#stallMs > 0 ? this.#stallMs : Infinity);
    this.#sweep = setInterval(() => this.#sweepWaiting(Date.now()), Math.min(SWEEP_MS, Math.max(10, finest / 10)));
    this.#sweep.unref();
  }

  #sweepWaiting(now: number): void {
    for (const call of this.#waiting) {
      // Reset or cut by the client: nobody waits for an answer; only its memory is released.
      if (call.gone) call.abandon();
      else if (now - call.openedAt >= this.#readTimeoutMs) call.refuse('truncated');
      else if (call.deadline !== undefined && now >= call.deadline) call.error(GRPC_STATUS.DEADLINE_EXCEEDED, 'deadline exceeded');
    }
    for (const u of this.#unfinished) if (now - u.since >= this.#readTimeoutMs) u.expire();
    if (this.#stallMs > 0) this.#sweepStalled(now);
  }

  /**
   * The stall rule (GrpcH2Options.stallTimeoutMs), from the sweep. A client that leaves an answered
   * call unread for the stall timeout loses its connection, not only the call: resetting the call
   * alone let it open another at once and keep ~1,000 unread answers per connection for good (a
   * re-probe: 60 × 999, +750 MB). No count of unread answers is judged sooner: an answer waiting
   * behind a client's 64 KiB window looks the same as an unread one, and a cap of 100 after one sweep
   * cut reading clients that sent 1,000 Checks at once over a 10 ms link (a re-probe of that rule).
   */
  #sweepStalled(now: number): void {
    const limit = now - this.#stallMs;
    for (const [session, state] of this.#sessions) if (!state.used && state.openedAt <= limit) session.destroy();
    for (const [stream, at] of this.#answered) {
      if (at > limit) continue;
      this.#answered.delete(stream);
      const session = stream.session;
      if (session !== undefined) session.destroy();
      else if (!stream.destroyed) stream.close(constants.NGHTTP2_CANCEL);
    }
    for (const b of this.#bidis) if (b.at <= limit && !b.stream.destroyed) b.stream.close(constants.NGHTTP2_CANCEL);
  }

  /** Our side of the stream is done: the client must now read and end it within the stall timeout. */
  #markAnswered(stream: ServerHttp2Stream): void {
    if (this.#stallMs > 0 && !stream.closed && !stream.destroyed) this.#answered.set(stream, Date.now());
  }

  /** Bidi calls open now (MAX_BIDI_CALLS); what tests watch. */
  get bidiCalls(): number {
    return this.#bidiCalls;
  }

  /** Bytes now held for unfinished messages (MAX_BUFFERED_BYTES); what tests watch. */
  get buffered(): number {
    return this.#buffered;
  }

  /**
   * Counts what `reader` now holds of an unfinished message (its chunks, each at what keeping it
   * costs, frames.ts) for one call in the shared total; false once that passes MAX_BUFFERED_BYTES.
   */
  #charge(held: Held, reader: MessageReader): boolean {
    this.#buffered += reader.held - held.heldBytes;
    held.heldBytes = reader.held;
    return this.#buffered <= MAX_BUFFERED_BYTES;
  }

  /** The call holds nothing any more (answered, ended, or its message complete and handed on). */
  #release(held: Held): void {
    this.#buffered -= held.heldBytes;
    held.heldBytes = 0;
  }

  /** For limits every listener applies alike (http-listener.ts `capConnections`). */
  get netServer(): Http2Server {
    return this.#server;
  }

  route(path: string, route: Route): void {
    this.#routes.set(path, route);
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.#server.once('error', onError);
      this.#server.listen(port, host, () => {
        this.#server.off('error', onError);
        const a = this.#server.address();
        resolve(typeof a === 'object' && a !== null ? a.port : port);
      });
    });
  }

  /** GOAWAY to every client, then waits up to `graceMs` for calls in flight before cutting them. */
  /** `beforeCut`: called when the grace ends with sessions still open, just before they are destroyed. */
  close(graceMs: number, beforeCut?: () => void): Promise<void> {
    clearInterval(this.#sweep);
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      for (const s of this.#sessions.keys()) s.close();
      const timer = setTimeout(() => {
        beforeCut?.();
        for (const s of this.#sessions.keys()) s.destroy();
      }, graceMs);
      timer.unref();
      this.#server.once('close', () => clearTimeout(timer));
    });
  }

  #onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', ignore); // a reset by the client; the call is simply gone
    const state = stream.session === undefined ? undefined : this.#sessions.get(stream.session);
    if (state !== undefined) state.used = true;
    stream.once('close', this.#streamClosed);
    const ct = headers['content-type'];
    if (headers[':method'] !== 'POST' || typeof ct !== 'string' || !isGrpcProto(ct)) {
      // SPEC §3: every answer jitgate makes carries cache-control: no-store, this one too.
      stream.respond({ ':status': 415, 'cache-control': 'no-store' }, { endStream: true });
      this.#markAnswered(stream);
      return;
    }
    const route = this.#routes.get(headers[':path'] ?? '');
    if (route === undefined) {
      trailersOnly(stream, GRPC_STATUS.UNIMPLEMENTED, `unknown method ${headers[':path'] ?? ''}`);
      this.#markAnswered(stream);
      stream.resume();
      return;
    }
    const timeoutMs = parseGrpcTimeout(headers['grpc-timeout']);
    if (route.kind === 'unary') this.#unary(stream, route, timeoutMs === undefined ? undefined : Date.now() + timeoutMs, headers);
    else this.#bidi(stream, route);
  }

  #unary(stream: ServerHttp2Stream, route: UnaryRoute, deadline: number | undefined, headers: IncomingHttpHeaders): void {
    const reply = new Unary(stream, new MessageReader(this.#maxBytes), headers, Date.now(), deadline);
    const release = (): void => this.#release(reply);
    const give = (m: Buffer | ReadProblem): void => {
      this.#waiting.delete(reply);
      release();
      route.handle(m, reply, reply.headers!);
      if (!reply.done) armDeadline(reply, deadline);
    };
    reply.refuse = give;
    reply.onFinish = () => {
      this.#waiting.delete(reply);
      release();
      this.#markAnswered(stream);
    };
    this.#waiting.add(reply);
    const onData = (chunk: Buffer): void => {
      const reader = reply.reader;
      if (reader === undefined) return; // answered (or refused) already: the rest is read and dropped
      const got = reader.push(chunk);
      if (typeof got === 'string') return give(got);
      if (!this.#charge(reply, reader)) return give('too_large');
      if (got.length === 0) {
        // Incomplete: bytes of a second message (the first is with the route) are one too many
        // already; otherwise the rest must come within the read timeout (the sweep) or the deadline.
        if (reply.message !== undefined) return give('extra_message');
        return armDeadline(reply, deadline);
      }
      // Unary: exactly one message, and nothing after it. A byte after it begins a second one, which
      // is refused now: waiting for it to complete let a call with a cut-off second message go
      // unanswered forever (a review).
      if (reply.message !== undefined || got.length > 1 || reader.partial) return give('extra_message');
      // The message is complete: answer now rather than a tick later at END_STREAM.
      give((reply.message = got[0]!));
    };
    stream.on('data', onData);
    stream.on('end', () => {
      // No whole message before END_STREAM; a complete one is already with the route. A client
      // that resets the stream or drops the connection mid-message (Envoy's timeout, a load
      // client's stop) also ends it, but node:http2 marks it `aborted` first: that call is gone
      // and must not be decided, audited or counted as a malformed request. (A reset without
      // END_STREAM never gets here: the sweep forgets that call.)
      if (!reply.done && reply.message === undefined && !stream.aborted) give('truncated');
    });
  }

  #bidi(stream: ServerHttp2Stream, route: BidiRoute): void {
    if (this.#bidiCalls >= MAX_BIDI_CALLS) {
      trailersOnly(stream, GRPC_STATUS.RESOURCE_EXHAUSTED, `more than ${MAX_BIDI_CALLS} reflection calls open`);
      this.#markAnswered(stream);
      stream.resume();
      return;
    }
    this.#bidiCalls++;
    const progress: BidiProgress = { stream, at: Date.now() };
    if (this.#stallMs > 0) this.#bidis.add(progress);
    stream.once('close', () => {
      this.#bidiCalls--;
      this.#bidis.delete(progress);
    });
    /** Undefined once the call has ended: what the client still sends is read and dropped. */
    let reader: MessageReader | undefined = new MessageReader(this.#maxBytes);
    const call = new EventEmitter() as BidiCall;
    let ended = false;
    let trailers: Record<string, string> = OK_TRAILERS;
    const held: Held = { heldBytes: 0 };
    const unfinished: Unfinished = { since: 0, expire: () => fail(GRPC_STATUS.DEADLINE_EXCEEDED, `request message not complete within ${this.#readTimeoutMs} ms`) };
    const release = (): void => {
      this.#release(held);
      reader = undefined;
      this.#unfinished.delete(unfinished);
    };
    stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(trailers));
    call.write = (value: unknown): boolean => (ended || stream.destroyed ? false : stream.write(frame(route.serialize(value))));
    call.end = (): void => {
      if (ended) return;
      ended = true;
      release();
      if (!stream.destroyed) stream.end();
    };
    const fail = (code: number, message: string): void => {
      trailers = { 'grpc-status': String(code), 'grpc-message': grpcMessage(message) };
      call.end();
      stream.resume();
    };
    // However the stream ends (reset, connection lost, shutdown), not only through `end` below.
    stream.once('close', release);
    route.handle(call);
    stream.on('data', (chunk: Buffer) => {
      if (reader === undefined) return;
      const got = reader.push(chunk);
      // grpc-js answers a declared length over its limit with RESOURCE_EXHAUSTED (stream-decoder.js).
      if (got === 'too_large') return fail(GRPC_STATUS.RESOURCE_EXHAUSTED, `received message larger than max (${this.#maxBytes})`);
      if (typeof got === 'string') return fail(GRPC_STATUS.INTERNAL, `unreadable request message (${got})`);
      if (!this.#charge(held, reader)) return fail(GRPC_STATUS.RESOURCE_EXHAUSTED, 'too many request bytes held unfinished');
      if (!reader.partial) this.#unfinished.delete(unfinished);
      else if (got.length > 0 || !this.#unfinished.has(unfinished)) {
        // A new message began: its own read timeout starts now.
        unfinished.since = Date.now();
        this.#unfinished.add(unfinished);
      }
      for (const m of got) queue.push(m);
      pump();
    });
    /**
     * Requests read but not yet handed on. Each one's answer is written at once (reflection never
     * waits), so they are handed on only while the stream's send buffer has room; otherwise reading
     * pauses until 'drain', and the client's flow-control window closes behind it. Without this a
     * client that sends requests and never reads the answers grew memory ~120 × what it sent (a review:
     * 16 MB sent, 1.95 GB held).
     */
    let queue: Buffer[] = [];
    /** The next of `queue` to hand on (an index: a chunk can hold thousands of small requests). */
    let next = 0;
    let paused = false;
    const pump = (): void => {
      while (next < queue.length && !ended) {
        if (stream.writableNeedDrain) {
          if (!paused) {
            paused = true;
            stream.pause();
            stream.once('drain', () => {
              paused = false;
              pump();
            });
          }
          return;
        }
        let value: unknown;
        try {
          value = route.deserialize(queue[next++]!);
        } catch {
          return fail(GRPC_STATUS.INTERNAL, 'undecodable request message');
        }
        progress.at = Date.now();
        call.emit('data', value);
      }
      queue = [];
      next = 0;
      if (!paused) stream.resume();
    };
    stream.once('end', () => {
      // Half-closed by the client: a message begun will never be finished.
      release();
      if (!ended) call.emit('end');
    });
  }
}

function ignore(): void {}

function armDeadline(reply: Unary, deadline: number | undefined): void {
  if (deadline === undefined || reply.timer !== undefined || reply.done) return;
  reply.timer = setTimeout(() => reply.error(GRPC_STATUS.DEADLINE_EXCEEDED, 'deadline exceeded'), Math.max(0, deadline - Date.now()));
  reply.timer.unref();
  // Only a call waiting on a timer needs to hear that the client went away.
  reply.onClose(() => reply.abandon());
}
