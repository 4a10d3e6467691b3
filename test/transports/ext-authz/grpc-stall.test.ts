/**
 * The gRPC listener's connections that owe nothing and send nothing, and reflection streams whose
 * client does not read (a review of connection-level denial of service, 2026-12-07):
 * - a socket that never opens a call (silent, a preface and no more, or PINGs only) is closed after
 *   the stall timeout (`limits.headers_timeout` on the service), as the HTTP listeners close theirs —
 *   before, a few hundred such sockets held every `limits.max_connections` slot for good;
 * - a connection with a call answered that long ago that the client neither reads nor ends (a zero
 *   flow-control window) is closed, whatever keepalive frames the client sends (re-probes held 80 ×
 *   999 such calls with a PING a second against node's session timeout, then 60 × 999 by reopening
 *   each reset call); a client whose answers merely wait behind its window keeps its connection;
 * - a connection idle between answered calls stays open (Envoy keeps it for its next Check), and so
 *   does one with a call still being decided;
 * - a bidi stream hands requests to the route only while its send buffer has room, so a client
 *   that sends requests and never reads the answers cannot grow the server's memory (before: 16 MB
 *   sent, 1.95 GB held); one that hands no request on for the stall timeout is reset; at most
 *   MAX_BIDI_CALLS bidi calls are open at once.
 */
import { connect as netConnect, createServer as createNetServer } from 'node:net';
import { connect, type ClientHttp2Session } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcH2Server, GRPC_STATUS, MAX_BIDI_CALLS, type BidiCall, type UnaryReply } from '../../../src/transports/ext-authz/grpc-h2/server.ts';

const STALL_MS = 300;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const message = (body: Buffer): Buffer => {
  const p = Buffer.alloc(5);
  p.writeUInt32BE(body.length, 1);
  return Buffer.concat([p, body]);
};

const server = new GrpcH2Server({ maxMessageBytes: 1 << 20, stallTimeoutMs: STALL_MS });
let port = 0;
/** Bidi requests the echo route has been handed, and its answers' size. */
let handed = 0;
const ANSWER = Buffer.alloc(64 * 1024, 0x61);
/** Unary calls the slow route holds until the test answers them. */
const slow: UnaryReply[] = [];

beforeAll(async () => {
  server.route('/t.Unary/Check', { kind: 'unary', handle: (_m, reply) => reply.ok(Buffer.from('ok')) });
  server.route('/t.Slow/Check', { kind: 'unary', handle: (_m, reply) => void slow.push(reply) });
  server.route('/t.Big/Chat', {
    kind: 'bidi',
    deserialize: (b) => b,
    serialize: (v) => v as Buffer,
    handle(call: BidiCall) {
      call.on('data', () => {
        handed++;
        call.write(ANSWER);
      });
      call.on('end', () => call.end());
    },
  });
  port = await server.listen('127.0.0.1', 0);
});
afterAll(() => server.close(500));

/** Resolves with how long the socket stayed open, or 'open' after `ms`. */
function closedWithin(socket: { once(e: 'close', f: () => void): unknown }, ms: number): Promise<number | 'open'> {
  const t0 = Date.now();
  return Promise.race([new Promise<number>((r) => socket.once('close', () => r(Date.now() - t0))), sleep(ms).then(() => 'open' as const)]);
}

function unary(session: ClientHttp2Session, path: string): Promise<{ status: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
    let status: string | undefined;
    req.on('trailers', (t) => (status = String(t['grpc-status'])));
    req.on('response', (h) => h['grpc-status'] !== undefined && (status = String(h['grpc-status'])));
    req.on('data', () => {});
    req.on('end', () => resolve({ status }));
    req.on('error', reject);
    req.end(message(Buffer.from('x')));
  });
}

describe('connections that owe nothing', () => {
  it('a socket that sends nothing is closed after the stall timeout', async () => {
    const s = netConnect(port, '127.0.0.1');
    s.on('error', () => {});
    s.resume(); // a paused socket never reports the server's FIN
    const t = await closedWithin(s, STALL_MS * 10);
    expect(t).not.toBe('open');
    expect(t as number).toBeGreaterThanOrEqual(STALL_MS - 50);
  });

  it('a preface and SETTINGS, then nothing: closed too', async () => {
    const s = netConnect(port, '127.0.0.1', () => s.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])])));
    s.on('error', () => {});
    s.resume();
    expect(await closedWithin(s, STALL_MS * 10)).not.toBe('open');
  });

  it('PINGs are no progress: a connection that only pings is closed too', async () => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    const pinger = setInterval(() => !session.destroyed && session.ping(() => {}), STALL_MS / 4);
    try {
      expect(await closedWithin(session, STALL_MS * 10)).not.toBe('open');
    } finally {
      clearInterval(pinger);
    }
  });

  it('an answered call the client neither reads nor ends (zero window) costs it the connection, PINGs or not', async () => {
    const session = connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 0 } });
    session.on('error', () => {});
    const pinger = setInterval(() => !session.destroyed && session.ping(() => {}), STALL_MS / 4);
    try {
      for (let i = 0; i < 20; i++) {
        const req = session.request({ ':method': 'POST', ':path': '/t.Unary/Check', 'content-type': 'application/grpc', te: 'trailers' });
        req.on('error', () => {});
        req.end(message(Buffer.from('x')));
      }
      // Resetting the call alone let the client open another at once (a re-probe kept 60 × 999 unread).
      expect(await closedWithin(session, STALL_MS * 10)).not.toBe('open');
    } finally {
      clearInterval(pinger);
      session.destroy();
    }
  });

  it('a reading client whose answers wait behind its 64 KiB window (1,000 Checks at once over a link delayed 10 ms) keeps its connection and gets every answer', async () => {
    // A cap on unread answers judged after one sweep (a27b2f6) cut such clients: a re-probe lost
    // hundreds of 1,000 concurrent Checks over a 10 ms link with node's default window.
    const patient = new GrpcH2Server({ maxMessageBytes: 1 << 20, stallTimeoutMs: 3_000 });
    patient.route('/t.Unary/Check', { kind: 'unary', handle: (_m, reply) => reply.ok(Buffer.alloc(1_400, 0x61)) });
    const p = await patient.listen('127.0.0.1', 0);
    const relay = createNetServer((c) => {
      const u = netConnect(p, '127.0.0.1');
      c.on('data', (d) => u.write(d));
      u.on('data', (d) => setTimeout(() => !c.destroyed && c.write(d), 10));
      for (const [a, b] of [[c, u], [u, c]] as const) {
        a.on('error', () => {});
        a.on('close', () => b.destroy());
      }
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    const session = connect(`http://127.0.0.1:${(relay.address() as { port: number }).port}`);
    session.on('error', () => {});
    try {
      const answers = await Promise.all(
        Array.from({ length: 1_000 }, () => {
          const req = session.request({ ':method': 'POST', ':path': '/t.Unary/Check', 'content-type': 'application/grpc', te: 'trailers' });
          let status: string | undefined;
          req.on('trailers', (t) => (status = String(t['grpc-status'])));
          req.on('data', () => {});
          req.end(message(Buffer.from('x')));
          return new Promise<string | undefined>((resolve) => {
            req.on('end', () => resolve(status));
            req.on('error', (e: Error) => resolve(e.message));
          });
        }),
      );
      expect(answers.filter((a) => a !== '0')).toEqual([]);
      expect(session.destroyed).toBe(false);
    } finally {
      session.destroy();
      relay.close();
      await patient.close(500);
    }
  });

  it('a connection idle between answered calls stays open, and serves the next call', async () => {
    const session = connect(`http://127.0.0.1:${port}`);
    try {
      expect((await unary(session, '/t.Unary/Check')).status).toBe('0');
      expect(await closedWithin(session, STALL_MS * 4)).toBe('open');
      expect((await unary(session, '/t.Unary/Check')).status).toBe('0');
    } finally {
      session.destroy();
    }
  });

  it('a connection with a call still being decided stays open past the stall timeout; the answer arrives', async () => {
    const session = connect(`http://127.0.0.1:${port}`);
    try {
      const answer = unary(session, '/t.Slow/Check');
      await sleep(STALL_MS * 4);
      expect(session.destroyed).toBe(false);
      slow.shift()!.ok(Buffer.from('late'));
      expect((await answer).status).toBe('0');
    } finally {
      session.destroy();
    }
  });
});

describe('bidi streams', () => {
  it('requests are handed on only while the answers can be sent: a client that does not read holds little', async () => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    try {
      const req = session.request({ ':method': 'POST', ':path': '/t.Big/Chat', 'content-type': 'application/grpc', te: 'trailers' });
      req.on('error', () => {});
      req.pause(); // never reads: its window for the 64 KiB answers closes
      handed = 0;
      const requests = 200;
      for (let i = 0; i < requests; i++) req.write(message(Buffer.from('q')));
      await sleep(STALL_MS / 2);
      // 200 answers would be 12.5 MiB held; what is handed on is bounded by the stream's send buffer.
      expect(handed).toBeGreaterThan(0);
      expect(handed).toBeLessThanOrEqual(4);
      // Reading again lets every request through, in order.
      req.resume();
      req.on('data', () => {});
      await new Promise<void>((r) => {
        const t = setInterval(() => handed === requests && (clearInterval(t), r()), 10);
      });
      expect(handed).toBe(requests);
      req.end();
    } finally {
      session.destroy();
    }
  });

  it('a bidi stream that hands no request on for the stall timeout is reset (idle, or its answers unread)', async () => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    const pinger = setInterval(() => !session.destroyed && session.ping(() => {}), STALL_MS / 4);
    try {
      const idle = session.request({ ':method': 'POST', ':path': '/t.Big/Chat', 'content-type': 'application/grpc', te: 'trailers' });
      idle.on('error', () => {});
      idle.resume();
      const stuck = session.request({ ':method': 'POST', ':path': '/t.Big/Chat', 'content-type': 'application/grpc', te: 'trailers' });
      stuck.on('error', () => {});
      stuck.pause();
      for (let i = 0; i < 50; i++) stuck.write(message(Buffer.from('q')));
      const closed = (r: typeof idle) => new Promise<number>((resolve) => r.once('close', () => resolve(r.rstCode ?? -1)));
      const codes = await Promise.race([Promise.all([closed(idle), closed(stuck)]), sleep(STALL_MS * 10).then(() => 'open' as const)]);
      expect(codes).toEqual([8, 8]);
      while (server.bidiCalls > 0) await sleep(10);
    } finally {
      clearInterval(pinger);
      session.destroy();
    }
  });

  it(`at most ${MAX_BIDI_CALLS} bidi calls are open at once: one more is RESOURCE_EXHAUSTED`, async () => {
    // Its own server, without the stall rule: its streams stay idle as long as the test needs.
    const capServer = new GrpcH2Server({ maxMessageBytes: 1 << 20 });
    capServer.route('/t.Big/Chat', { kind: 'bidi', deserialize: (b) => b, serialize: (v) => v as Buffer, handle: (call: BidiCall) => void call.on('end', () => call.end()) });
    const capPort = await capServer.listen('127.0.0.1', 0);
    const session = connect(`http://127.0.0.1:${capPort}`);
    session.on('error', () => {});
    try {
      const open = Array.from({ length: MAX_BIDI_CALLS }, () => {
        const r = session.request({ ':method': 'POST', ':path': '/t.Big/Chat', 'content-type': 'application/grpc', te: 'trailers' });
        r.on('error', () => {});
        return r;
      });
      // Each is answered with its response head once open on the server.
      await Promise.all(open.map((r) => new Promise((res) => r.once('response', res))));
      const extra = session.request({ ':method': 'POST', ':path': '/t.Big/Chat', 'content-type': 'application/grpc', te: 'trailers' });
      const head = await new Promise<Record<string, unknown>>((res) => extra.once('response', res));
      expect(head['grpc-status']).toBe(String(GRPC_STATUS.RESOURCE_EXHAUSTED));
      extra.close();
      // One ends: a new one is served.
      const ended = new Promise((res) => open[0]!.once('close', res));
      open[0]!.end();
      open[0]!.resume();
      await ended;
      while (capServer.bidiCalls >= MAX_BIDI_CALLS) await sleep(10);
      const next = session.request({ ':method': 'POST', ':path': '/t.Big/Chat', 'content-type': 'application/grpc', te: 'trailers' });
      const nextHead = await new Promise<Record<string, unknown>>((res) => next.once('response', res));
      expect(nextHead['grpc-status']).toBeUndefined();
      for (const r of [...open, next]) r.close();
    } finally {
      session.destroy();
      await capServer.close(500);
    }
  });
});
