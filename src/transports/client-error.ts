/**
 * Requests node:http refuses before any handler sees them (unparseable, head too large, too slow).
 * They get the same SPEC §3 shape as every other jitgate answer — JSON reason, `no-store` — and
 * never a 5xx (the ext_authz HTTP service must not look like an error to Envoy).
 */
import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';
import type { DenyReason } from '../core/decision.ts';
import { render } from './respond.ts';

function reasonFor(code: string | undefined): DenyReason {
  if (code === 'HPE_HEADER_OVERFLOW') return 'headers_too_large';
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'request_timeout';
  return 'bad_request';
}

/** Raw bytes per reason, built once: the socket may be mid-parse, so no ServerResponse exists. */
const RAW = new Map<DenyReason, Buffer>();
function raw(reason: DenyReason): Buffer {
  let bytes = RAW.get(reason);
  if (bytes === undefined) {
    const r = render(reason);
    let head = `HTTP/1.1 ${r.status} ${STATUS_CODES[r.status]}\r\n`;
    for (const [k, v] of Object.entries(r.headers)) head += `${k}: ${v}\r\n`;
    bytes = Buffer.concat([Buffer.from(`${head}connection: close\r\n\r\n`), r.bodyBytes]);
    RAW.set(reason, bytes);
  }
  return bytes;
}

/**
 * The `connect` listener: CONNECT asks for a tunnel, which jitgate never opens. Without a listener
 * node:http closes the socket with no answer, which a proxy or Envoy in front reads as an error
 * (fail-open under failure_mode_allow); this answers 400 connect_method and closes. Bytes the
 * client sent after the head (the would-be tunnel) are never read.
 */
/** How long an answer in flight ahead of a CONNECT may take to finish before the connection is cut. */
const CONNECT_WAIT_MS = 2000;

export function answerConnect(socket: Duplex): DenyReason {
  // node hands a CONNECT's socket over without its own error listener: a client resetting it after
  // the answer raised an unhandled 'error' that ended the whole gate (a review; two packets, no token).
  socket.on('error', () => socket.destroy());
  const inFlight = inFlightOn(socket);
  // Closed once written, not half-closed: node stopped reading this socket when it handed it over, so
  // it would never see the client's FIN — with requests pipelined ahead of the CONNECT, such sockets
  // stayed open for good (a file descriptor each, and a drain that never ended; a re-probe).
  const close = (): void => void socket.end(() => socket.destroy());
  if (!socket.writable) socket.destroy();
  // Pipelined behind a request still being answered: that answer goes first, then the connection
  // closes and the CONNECT gets none of its own (as answerClientError does for a refused request).
  // Node took its drain listener off the socket with the hand-over, so an answer larger than the
  // socket's buffer can never finish (a re-probe: stuck at 64 KiB, the socket held for good, a drain
  // that never ended): it gets CONNECT_WAIT_MS, then the connection is cut.
  else if (inFlight !== undefined && inFlight.writableFinished !== true) {
    const cut = setTimeout(() => socket.destroy(), CONNECT_WAIT_MS).unref();
    inFlight.once('finish', () => {
      clearTimeout(cut);
      close();
    });
    socket.once('close', () => clearTimeout(cut));
  } else socket.end(raw('connect_method'), () => socket.destroy());
  return 'connect_method';
}

/**
 * Connections reading and dropping the rest of a body whose request was answered before it arrived
 * (proxy/body-watchdog.ts dropRestOfBody), with that request: while it is not complete, a parse error
 * is in those bytes and ends the connection quietly; after, the bytes are a new request's.
 */
export const answeredBodies = new WeakMap<Duplex, { readonly complete: boolean }>();

/**
 * The answer node is writing on this connection, if any. Node sets `_httpMessage` to null once an
 * answer is finished (a keep-alive connection between requests): reading a property of that null
 * ended the whole gate, for a client with no token (a re-probe).
 */
function inFlightOn(socket: Duplex): InFlight | undefined {
  return (socket as { _httpMessage?: InFlight | null })._httpMessage ?? undefined;
}

type InFlight = { headersSent?: boolean; writableFinished?: boolean; req?: { complete?: boolean }; once(event: 'finish', f: () => void): unknown };

/**
 * The `clientError` listener for every traffic-facing node:http server. Returns the reason refused
 * (answered, or counted and audited only, see below), if any. `precise` is the reason the request
 * line itself earns, when the caller could read one (early-refusal.ts); else the error code's.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex, precise?: DenyReason): DenyReason | undefined {
  const inFlight = inFlightOn(socket);
  if (err.code === 'ECONNRESET' || err.code?.startsWith('ERR_SSL_') === true || !socket.writable || answeredBodies.get(socket)?.complete === false) {
    // (A body being dropped after its answer, pipelined-bad or cut short: its request was answered
    // and audited already, and a second answer would be one nobody asked for. A TLS session that
    // failed carries no answer: one written there never left, and held the connection for good.)
    socket.destroy();
    return undefined;
  }
  const reason = precise ?? reasonFor(err.code);
  // A request still being answered whose own bytes were all read: the bad, too large or too slow
  // bytes are a later, pipelined request. Its 400/431/408 must not go out as the answer to the
  // earlier one (HTTP/1.1 answers in order; a client would pin it on a POST the backend already ran,
  // a review and its re-probe found): the earlier answer is finished, then the connection closed,
  // and the refused request gets no answer of its own.
  if (inFlight !== undefined && inFlight.writableFinished !== true && inFlight.req?.complete === true) {
    inFlight.once('finish', () => socket.end());
    return reason;
  }
  // node's own rule: no second status line on a socket whose response head is already out.
  if (inFlight?.headersSent === true) {
    socket.destroy();
    return undefined;
  }
  socket.end(raw(reason));
  return reason;
}
