/**
 * Request smuggling: conflicting or malformed framing (CL.TE, TE.CL, duplicate Content-Length,
 * obfuscated Transfer-Encoding, chunk tricks), pipelines that hide an unjudged request after a
 * judged one, and protocol switches. Each row is raw bytes on one connection; it lists the statuses
 * the client must get, in order, and how many requests the upstream may see (all of them must be
 * the granted /orders/42, with exactly the body the client framed).
 */
import type { RowContext } from '../check.ts';
import { signed } from '../jws.ts';

export interface SmuggleRow {
  readonly name: string;
  readonly bytes: (c: RowContext) => string;
  /** Status lines the client receives, in order. */
  readonly statuses: readonly number[];
  /** Requests the upstream sees (each must be /orders/42). */
  readonly upstream: number;
  /** Body bytes of the (single) forwarded request. */
  readonly bodyBytes?: number;
  /**
   * The framing breaks inside the body, after the head was judged: the allowed request may already
   * be streaming upstream, so it may arrive there — aborted, never whole — or not at all.
   */
  readonly bodyError?: boolean;
}

/**
 * The rows for a granted path and a forbidden one; `token` signs a token allowing GET and PATCH on
 * the granted path (default: issuer A's standard grant for /orders/42 and below).
 */
export function smugglingCorpus(granted = '/orders/42', forbidden = '/orders/43', token: (c: RowContext) => string = (c) => signed(c.keys.a)): SmuggleRow[] {
  const SMUGGLED = `GET ${forbidden} HTTP/1.1\r\nHost: orders.internal\r\n\r\n`;
  const auth = (c: RowContext) => `Authorization: Bearer ${token(c)}\r\n`;
  const start = (c: RowContext, method = 'PATCH', version = 'HTTP/1.1') => `${method} ${granted} ${version}\r\nHost: orders.internal\r\n${auth(c)}`;
  const chunked = (data: string) => `${data.length.toString(16)}\r\n${data}\r\n0\r\n\r\n`;

  /** A framing header block, then a body that also holds a smuggled request after the first framing's end. */
  const frame = (name: string, headers: string, body: string, statuses: number[] = [400], upstream = 0, bodyBytes?: number): SmuggleRow => ({
    name,
    bytes: (c) => `${start(c)}${headers}Connection: close\r\n\r\n${body}`,
    statuses,
    upstream,
    bodyBytes,
  });

  const CLTE_BODY = `0\r\n\r\n${SMUGGLED}`;
  const bodyError = (r: SmuggleRow): SmuggleRow => ({ ...r, bodyError: true });

  return [
    frame('CL.TE', `Content-Length: ${CLTE_BODY.length}\r\nTransfer-Encoding: chunked\r\n`, CLTE_BODY),
    frame('TE.CL', `Transfer-Encoding: chunked\r\nContent-Length: 4\r\n`, `${chunked(SMUGGLED)}`),
    frame('duplicate Content-Length, same value', 'Content-Length: 5\r\nContent-Length: 5\r\n', 'hello'),
    frame('duplicate Content-Length, different values', `Content-Length: 5\r\nContent-Length: ${5 + SMUGGLED.length}\r\n`, `hello${SMUGGLED}`),
    frame('Content-Length list', 'Content-Length: 5, 5\r\n', 'hello'),
    ...['+5', '-1', '0x5', '5 5', '5.0', '99999999999999999999999'].map((v) => frame(`Content-Length ${JSON.stringify(v)}`, `Content-Length: ${v}\r\n`, 'hello')),
    frame('Transfer-Encoding: chunked, identity', 'Transfer-Encoding: chunked, identity\r\n', chunked('hello')),
    frame('Transfer-Encoding: xchunked', 'Transfer-Encoding: xchunked\r\n', chunked('hello')),
    frame('Transfer-Encoding twice', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', chunked('hello')),
    frame('Transfer-Encoding : chunked (space before colon)', 'Transfer-Encoding : chunked\r\n', chunked('hello')),
    frame('Transfer-Encoding: chunked, gzip (chunked not last)', 'Transfer-Encoding: chunked, gzip\r\n', chunked('hello')),
    frame('Transfer-Encoding with a vertical tab', 'Transfer-Encoding:\u000bchunked\r\n', chunked('hello')),
    bodyError(frame('chunk lines ended by bare LF', 'Transfer-Encoding: chunked\r\n', `5\nhello\n0\n\n${SMUGGLED}`)),
    bodyError(frame('chunk size overflowing 64 bits', 'Transfer-Encoding: chunked\r\n', `FFFFFFFFFFFFFFFFF5\r\nhello\r\n0\r\n\r\n`)),
    bodyError(frame('negative chunk size', 'Transfer-Encoding: chunked\r\n', '-5\r\nhello\r\n0\r\n\r\n')),
    bodyError(frame('chunk data longer than its size', 'Transfer-Encoding: chunked\r\n', `2\r\nhello\r\n0\r\n\r\n${SMUGGLED}`)),
    // Accepted framings: the body reaches the upstream re-framed, whole, and nothing else does.
    frame('Transfer-Encoding with a tab (valid OWS)', 'Transfer-Encoding:\tchunked\r\n', chunked(SMUGGLED), [200], 1, SMUGGLED.length),
    frame('Transfer-Encoding: gzip, chunked', 'Transfer-Encoding: gzip, chunked\r\n', chunked(SMUGGLED), [200], 1, SMUGGLED.length),
    frame('chunk extension', 'Transfer-Encoding: chunked\r\n', `${SMUGGLED.length.toString(16)};ext="a"\r\n${SMUGGLED}\r\n0\r\n\r\n`, [200], 1, SMUGGLED.length),
    frame('a request line inside a Content-Length body', `Content-Length: ${SMUGGLED.length}\r\n`, SMUGGLED, [200], 1, SMUGGLED.length),
    frame('Connection: content-length with a body', `Connection: content-length\r\nContent-Length: ${SMUGGLED.length}\r\n`, SMUGGLED, [200], 1, SMUGGLED.length),
    {
      name: 'HTTP/1.0 with chunked body',
      bytes: (c) => `${start(c, 'PATCH', 'HTTP/1.0')}Transfer-Encoding: chunked\r\n\r\n${chunked(SMUGGLED)}`,
      statuses: [200],
      upstream: 1,
      bodyBytes: SMUGGLED.length,
    },
    // Pipelines: every request on the connection is judged on its own.
    {
      name: 'pipelined: granted, then an unauthenticated request for another path',
      bytes: (c) => `${start(c, 'GET')}\r\n${SMUGGLED.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n')}`,
      statuses: [200, 401],
      upstream: 1,
    },
    {
      name: 'pipelined: refused request whose body is a granted-looking request',
      bytes: (c) => {
        const inner = `GET ${forbidden} HTTP/1.1\r\nHost: orders.internal\r\n${auth(c)}\r\n`;
        return `POST ${granted} HTTP/1.1\r\nHost: orders.internal\r\nContent-Length: ${inner.length}\r\n\r\n${inner}`;
      },
      statuses: [401],
      upstream: 0,
    },
    // No Host (node reads it as HTTP/0.9): refused before any token work (issue 21 item 1).
    { name: 'HTTP/0.9 request line', bytes: () => `GET ${granted}\r\n\r\n`, statuses: [400], upstream: 0 },
    { name: 'HTTP/2 prior-knowledge preface', bytes: () => 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', statuses: [400], upstream: 0 },
    { name: 'HTTP/1.2', bytes: (c) => `GET ${granted} HTTP/1.2\r\nHost: orders.internal\r\n${auth(c)}Connection: close\r\n\r\n`, statuses: [400], upstream: 0 },
    { name: 'no Host header (HTTP/1.1)', bytes: (c) => `GET ${granted} HTTP/1.1\r\n${auth(c)}Connection: close\r\n\r\n`, statuses: [400], upstream: 0 },
  ];
}

export const SMUGGLING: readonly SmuggleRow[] = smugglingCorpus();
