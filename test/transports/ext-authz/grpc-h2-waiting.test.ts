/**
 * Every unary call is answered, and unfinished messages cannot hold unbounded memory (a re-probe of
 * the node:http2 Check server): a call that sends headers and no message, an empty DATA frame, or a
 * message it never finishes is refused as truncated after the read timeout (or answered
 * DEADLINE_EXCEEDED at its grpc-timeout); a call reset by its client is forgotten, never decided;
 * and unfinished messages of all calls together are held to MAX_BUFFERED_BYTES.
 */
import { connect, type ClientHttp2Session } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReadProblem } from '../../../src/transports/ext-authz/grpc-h2/frames.ts';
import { RawH2 } from '../../fixtures/h2-frames.ts';
import { GrpcH2Server, MAX_BUFFERED_BYTES, type UnaryReply } from '../../../src/transports/ext-authz/grpc-h2/server.ts';

const READ_TIMEOUT_MS = 400;
const MAX_MESSAGE = 8 * 1024 * 1024;
const server = new GrpcH2Server({ maxMessageBytes: MAX_MESSAGE, readTimeoutMs: READ_TIMEOUT_MS });
/** What the route was handed, by the call's `x-call` header. */
const handed = new Map<string, Buffer | ReadProblem>();
let port = 0;
let session: ClientHttp2Session;

beforeAll(async () => {
  server.route('/t.Waiting/Check', {
    kind: 'unary',
    handle(message: Buffer | ReadProblem, reply: UnaryReply, headers) {
      handed.set(String(headers['x-call']), message);
      reply.ok(Buffer.from(typeof message === 'string' ? message : 'ok'));
    },
  });
  port = await server.listen('127.0.0.1', 0);
  session = connect(`http://127.0.0.1:${port}`);
});
afterAll(async () => {
  session.close();
  await server.close(1000);
});

interface Outcome {
  grpcStatus: string | undefined;
  body: string;
  ms: number;
}

/** Opens a call and writes `chunks` without ending it; resolves with the answer. */
function call(id: string, chunks: Buffer[], headers: Record<string, string> = {}, on: ClientHttp2Session = session): Promise<Outcome> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = on.request({ ':method': 'POST', ':path': '/t.Waiting/Check', 'content-type': 'application/grpc', te: 'trailers', 'x-call': id, ...headers });
    let status: string | undefined;
    const body: Buffer[] = [];
    req.on('response', (h) => (status = h['grpc-status'] as string | undefined));
    req.on('trailers', (t) => (status ??= t['grpc-status'] as string | undefined));
    req.on('data', (c: Buffer) => body.push(c));
    req.on('end', () => {
      const all = Buffer.concat(body);
      resolve({ grpcStatus: status, body: all.length > 5 ? all.subarray(5).toString() : '', ms: Date.now() - started });
      req.close();
    });
    req.on('error', reject);
    for (const c of chunks) req.write(c);
  });
}

const prefix = (declared: number): Buffer => {
  const p = Buffer.alloc(5);
  p.writeUInt32BE(declared, 1);
  return p;
};

describe('calls without a whole message are answered', () => {
  it('headers only, an empty DATA frame, or part of a message: refused as truncated after the read timeout', async () => {
    const outcomes = await Promise.all([call('silent', []), call('empty', [Buffer.alloc(0)]), call('partial', [prefix(100), Buffer.alloc(10)])]);
    for (const o of outcomes) {
      expect(o).toMatchObject({ grpcStatus: '0', body: 'truncated' });
      expect(o.ms).toBeGreaterThanOrEqual(READ_TIMEOUT_MS - 50);
    }
    expect(['silent', 'empty', 'partial'].map((id) => handed.get(id))).toEqual(['truncated', 'truncated', 'truncated']);
  });

  it('a silent call with a grpc-timeout shorter than the read timeout gets DEADLINE_EXCEEDED at its deadline, undecided', async () => {
    const o = await call('deadline', [], { 'grpc-timeout': '100m' });
    expect(o.grpcStatus).toBe('4');
    expect(o.ms).toBeLessThan(READ_TIMEOUT_MS);
    expect(handed.has('deadline')).toBe(false);
  });

  it('a call its client resets (RST_STREAM, no END_STREAM) before sending a message is forgotten, never decided', async () => {
    const h2 = await RawH2.open(port);
    try {
      h2.headers(1, '/t.Waiting/Check', { 'content-type': 'application/grpc', te: 'trailers', 'x-call': 'reset' });
      await new Promise((r) => setTimeout(r, 50));
      h2.reset(1);
      // Well past the read timeout: the sweep has looked at it several times.
      await new Promise((r) => setTimeout(r, READ_TIMEOUT_MS * 2));
      expect(handed.has('reset')).toBe(false);
    } finally {
      h2.destroy();
    }
  });
});

describe('unfinished messages of all calls together', () => {
  // Its own server and client: the 400 ms read timeout above refused every call before ~70 MiB had crossed
  // loopback on a loaded machine (none too large), and the client's default 10 MB session memory reset the
  // later calls (ENHANCE_YOUR_CALM) while the server read slowly.
  const big = new GrpcH2Server({ maxMessageBytes: MAX_MESSAGE, readTimeoutMs: 5_000 });
  let bigSession: ClientHttp2Session;
  beforeAll(async () => {
    big.route('/t.Waiting/Check', { kind: 'unary', handle: (message: Buffer | ReadProblem, reply: UnaryReply) => reply.ok(Buffer.from(typeof message === 'string' ? message : 'ok')) });
    bigSession = connect(`http://127.0.0.1:${await big.listen('127.0.0.1', 0)}`, { maxSessionMemory: 256 });
  });
  afterAll(async () => {
    bigSession?.close();
    await big.close(1000);
  });

  it(`are held to ${MAX_BUFFERED_BYTES / 1024 / 1024} MiB: the call that would pass it is refused as too large`, async () => {
    const part = 6 * 1024 * 1024;
    const n = Math.ceil(MAX_BUFFERED_BYTES / part) + 1;
    const calls = Array.from({ length: n }, (_, i) => call(`big-${i}`, [prefix(MAX_MESSAGE), Buffer.alloc(part, 1)], {}, bigSession));
    const outcomes = await Promise.all(calls);
    const tooLarge = outcomes.filter((o) => o.body === 'too_large');
    expect(tooLarge.length).toBeGreaterThanOrEqual(1);
    // The others were held (under the budget) until the read timeout refused them.
    expect(outcomes.filter((o) => o.body === 'truncated').length).toBe(n - tooLarge.length);
  }, 30_000);
});
