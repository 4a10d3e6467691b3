/**
 * The gRPC Check listener at its edges (issue 21 item 6, issue 20 item 3): a CheckRequest that is
 * too large, undecodable, compressed, cut short or doubled is answered with an OK RPC carrying the
 * 400 denial — never a gRPC error, which Envoy's failure_mode_allow would turn into an allow.
 * Deadlines (`grpc-timeout`), unknown methods and non-gRPC requests get gRPC's own answers.
 * grpc-js clients where they can express the case; a raw node:http2 client where they cannot.
 */
import { connect, type ClientHttp2Session } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_REQUEST_BYTES } from '../../../src/transports/ext-authz/grpc-service.ts';
import { loadProtos } from '../../../src/transports/ext-authz/protos.ts';
import type { TestKeys } from '../../fixtures/gate.ts';
import { RawH2 } from '../../fixtures/h2-frames.ts';
import { sign } from '../../fixtures/tokens.ts';
import { checkRequest, decisions, GrpcClient, startGrpcSuite, type CheckResponseView, type Harness } from './helpers.ts';

let keys: TestKeys;
let h: Harness;
let client: GrpcClient;
let session: ClientHttp2Session;

const authz = loadProtos().authorization as unknown as Record<string, { requestSerialize(v: object): Buffer; responseDeserialize(b: Buffer): CheckResponseView }>;
const encode = (req: object): Buffer => authz.Check!.requestSerialize(req);
const decode = (b: Buffer): CheckResponseView => authz.Check!.responseDeserialize(b);

beforeAll(async () => {
  ({ keys, h, client } = await startGrpcSuite());
  session = connect(`http://127.0.0.1:${h.grpcPort}`);
});
afterAll(async () => {
  session.close();
  client.close();
  await h.close();
});

interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, unknown>;
  readonly trailers: Record<string, unknown>;
  readonly body: Buffer;
}

/** One HTTP/2 request on the raw session; `chunks` are written as given, then END_STREAM. */
function raw(path: string, chunks: Buffer[], headers: Record<string, string> = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
    let head: Record<string, unknown> = {};
    let trailers: Record<string, unknown> = {};
    const body: Buffer[] = [];
    req.on('response', (hd) => (head = hd));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => body.push(c));
    req.on('end', () => resolve({ status: Number(head[':status']), headers: head, trailers, body: Buffer.concat(body) }));
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

function prefixed(message: Buffer, flag = 0, declared = message.length): Buffer {
  const p = Buffer.alloc(5);
  p[0] = flag;
  p.writeUInt32BE(declared, 1);
  return Buffer.concat([p, message]);
}

/** The CheckResponse in an answer's single length-prefixed message. */
function checkResponseOf(a: RawAnswer): CheckResponseView {
  expect(a.status).toBe(200);
  expect(a.trailers['grpc-status']).toBe('0');
  expect(a.body[0]).toBe(0);
  expect(a.body.readUInt32BE(1)).toBe(a.body.length - 5);
  return decode(a.body.subarray(5));
}

const CHECK = '/envoy.service.auth.v3.Authorization/Check';

function expectRefused(r: CheckResponseView): void {
  expect(r.status?.code).toBe(3);
  expect(r.denied_response?.status?.code).toBe(400);
  expect(JSON.parse(r.denied_response!.body)).toEqual({ error: 'invalid_request', reason: 'missing_attributes' });
}

describe('CheckRequests that cannot be read: an OK RPC with a 400 denial, never an RPC error', () => {
  it(`over ${DEFAULT_MAX_REQUEST_BYTES} bytes (grpc-js client): refused from the length prefix; the channel keeps working`, async () => {
    const big = checkRequest('GET', '/orders/42', { authorization: `Bearer ${await sign(keys.a)}`, 'x-padding': 'a'.repeat(DEFAULT_MAX_REQUEST_BYTES) });
    expectRefused(await client.check(big));
    const ok = await client.check(checkRequest('GET', '/orders/42', { authorization: `Bearer ${await sign(keys.a)}` }));
    expect(ok.status?.code).toBe(0);
    expect(h.logs.some((l) => String(l.msg).includes('a CheckRequest larger than 4 MiB'))).toBe(true);
  });

  it('a declared length over the limit is answered before the body arrives', async () => {
    const a = await raw(CHECK, [prefixed(Buffer.alloc(16), 0, DEFAULT_MAX_REQUEST_BYTES + 1)]);
    expectRefused(checkResponseOf(a));
  });

  it('undecodable bytes (a length-delimited field running past the end)', async () => {
    expectRefused(checkResponseOf(await raw(CHECK, [prefixed(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]))])));
    expectRefused(await client.checkBytes(Buffer.from([0x0a, 0x05, 0x0a, 0x03])));
  });

  it('a compressed message (jitgate accepts no grpc-encoding)', async () => {
    const body = encode(checkRequest('GET', '/orders/42', { authorization: `Bearer ${await sign(keys.a)}` }));
    expectRefused(checkResponseOf(await raw(CHECK, [prefixed(body, 1)], { 'grpc-encoding': 'gzip' })));
  });

  it('a call that ends mid-message, or carries no message at all', async () => {
    const body = encode(checkRequest('GET', '/orders/42', { authorization: `Bearer ${await sign(keys.a)}` }));
    expectRefused(checkResponseOf(await raw(CHECK, [prefixed(body).subarray(0, 40)])));
    expectRefused(checkResponseOf(await raw(CHECK, [Buffer.from([0, 0])])));
    expectRefused(checkResponseOf(await raw(CHECK, [])));
  });

  it('two messages in one unary call', async () => {
    const body = encode(checkRequest('GET', '/orders/42', { authorization: `Bearer ${await sign(keys.a)}` }));
    expectRefused(checkResponseOf(await raw(CHECK, [Buffer.concat([prefixed(body), prefixed(body)])])));
  });

  it('a whole message and the first bytes of a second, then END_STREAM: refused at once, never left unanswered (a review)', async () => {
    const body = encode(checkRequest('GET', '/orders/42', { authorization: `Bearer ${await sign(keys.a)}` }));
    for (const extra of [1, 3, 5]) expectRefused(checkResponseOf(await raw(CHECK, [Buffer.concat([prefixed(body), prefixed(body).subarray(0, extra)])])));
  });

  it('a second message while the first is still being decided: one answer, one audit line, the refusal (a review)', async () => {
    const gate = h.gate as unknown as { decide: (i: unknown) => unknown };
    const orig = gate.decide;
    let release: () => Promise<unknown> = () => Promise.resolve();
    let asked!: () => void;
    const decideCalled = new Promise<void>((r) => (asked = r));
    // A decision that waits (a signature on the thread pool, a status list being fetched).
    gate.decide = (input: unknown) =>
      new Promise((resolve) => {
        release = () => {
          const d = Promise.resolve(orig.call(h.gate, input));
          resolve(d);
          return d;
        };
        asked();
      });
    try {
      const token = await sign(keys.a, { sub: 'two-frames' });
      const framed = prefixed(encode(checkRequest('GET', '/orders/42', { authorization: `Bearer ${token}` })));
      const before = h.audit.length;
      const req = session.request({ ':method': 'POST', ':path': CHECK, 'content-type': 'application/grpc', te: 'trailers' });
      const answer = new Promise<RawAnswer>((resolve, reject) => {
        let head: Record<string, unknown> = {};
        const body: Buffer[] = [];
        req.on('response', (hd) => (head = hd));
        req.on('data', (c: Buffer) => body.push(c));
        req.on('end', () => resolve({ status: Number(head[':status']), headers: head, trailers: {}, body: Buffer.concat(body) }));
        req.on('error', reject);
      });
      req.write(framed);
      await decideCalled; // the first message is with the gate
      req.end(framed);
      const a = await answer;
      expectRefused(decode(a.body.subarray(5)));
      await release(); // the late decision: its own answer would be recorded a turn after this
      await new Promise((r) => setImmediate(r));
      const lines = h.audit.slice(before);
      expect(lines.map((l) => [l.decision, l.reason])).toEqual([['deny', 'missing_attributes']]);
    } finally {
      gate.decide = orig;
    }
  });

  it('a valid request split over many DATA frames is read whole and allowed', async () => {
    const framed = prefixed(encode(checkRequest('GET', '/orders/42', { authorization: `Bearer ${await sign(keys.a)}` })));
    const chunks: Buffer[] = [];
    for (let i = 0; i < framed.length; i += 7) chunks.push(framed.subarray(i, i + 7));
    const r = checkResponseOf(await raw(CHECK, chunks));
    expect(r.status?.code).toBe(0);
  });
});

/** A request without a token, as the held decisions below finally decide it (401). */
/** Refusals for a missing token counted on the gRPC listener. */
const missingToken = (): Promise<number> => decisions(h.ctx.metrics, 'ext_authz_grpc', 'missing_token');
const NO_TOKEN = { method: 'GET', target: '/orders/42', authorization: undefined, authorizationCount: 0, dpop: undefined, dpopCount: 0, methodOverride: false };

/** Runs `test` with the gate's decisions held (a signature on the pool, say) until it calls `release`. */
async function withHeldDecision(test: (release: () => void) => Promise<void>): Promise<void> {
  const gate = h.gate as unknown as { decide: (i: unknown) => unknown };
  const orig = gate.decide;
  let resolveHeld: (d: unknown) => void = () => {};
  gate.decide = () => new Promise((resolve) => (resolveHeld = resolve));
  try {
    await test(() => resolveHeld(orig.call(h.gate, NO_TOKEN)));
  } finally {
    gate.decide = orig;
  }
}

describe('gRPC protocol answers', () => {
  it('grpc-timeout: a decision still pending at the deadline gets DEADLINE_EXCEEDED; the late decision is audited as deadline_exceeded, not counted', () =>
    withHeldDecision(async (release) => {
      const body = encode(checkRequest('GET', '/orders/42', { authorization: 'Bearer x.y.z' }));
      const [auditBefore, countedBefore] = [h.audit.length, await missingToken()];
      const started = Date.now();
      const a = await raw(CHECK, [prefixed(body)], { 'grpc-timeout': '150m' });
      expect(Date.now() - started).toBeGreaterThanOrEqual(140);
      expect(a.status).toBe(200);
      expect(a.headers['grpc-status']).toBe('4');
      expect(a.body.length).toBe(0);
      expect(h.audit.length).toBe(auditBefore);
      release();
      await new Promise((r) => setImmediate(r));
      // One line for the decision nobody received: what it was, and that the deadline answered instead.
      expect(h.audit.slice(auditBefore)).toEqual([expect.objectContaining({ transport: 'ext_authz_grpc', decision: 'deny', reason: 'deadline_exceeded', status: 504, method: 'GET' })]);
      expect(await missingToken()).toBe(countedBefore);
    }));

  it('a cached decision answers well within a short grpc-timeout', async () => {
    const body = encode(checkRequest('GET', '/orders/42', { authorization: `Bearer ${await sign(keys.a)}` }));
    const a = await raw(CHECK, [prefixed(body)], { 'grpc-timeout': '5S' });
    expect(checkResponseOf(a).status?.code).toBe(0);
  });

  it('an unknown method is UNIMPLEMENTED; a non-gRPC request is 415', async () => {
    const a = await raw('/envoy.service.auth.v3.Authorization/Nope', [prefixed(Buffer.alloc(0))]);
    expect(a.headers['grpc-status']).toBe('12');
    const b = await raw(CHECK, [Buffer.from('{}')], { 'content-type': 'application/json' });
    expect(b.status).toBe(415);
    expect(b.headers['cache-control']).toBe('no-store');
  });

  it('content types: application/grpc and +proto in any case, with parameters; +json and look-alikes are 415 (a review)', async () => {
    const body = prefixed(encode(checkRequest('GET', '/orders/42', { authorization: `Bearer ${await sign(keys.a)}` })));
    for (const ct of ['application/grpc+proto', 'Application/GRPC', 'application/grpc; charset=utf-8']) {
      expect(checkResponseOf(await raw(CHECK, [body], { 'content-type': ct })).status?.code).toBe(0);
    }
    for (const ct of ['application/grpc+json', 'application/grpcfoo', 'application/grpc-web']) expect((await raw(CHECK, [body], { 'content-type': ct })).status).toBe(415);
  });

  it('a grpc-timeout too long for a timer is no deadline: a pending decision is answered, not DEADLINE_EXCEEDED at once (a review)', () =>
    withHeldDecision(async (release) => {
      const body = encode(checkRequest('GET', '/orders/42', { authorization: 'Bearer x.y.z' }));
      const pending = raw(CHECK, [prefixed(body)], { 'grpc-timeout': '2147484S' });
      await new Promise((r) => setTimeout(r, 50));
      release();
      expect(checkResponseOf(await pending).denied_response?.status?.code).toBe(401);
    }));

  it('one client gets at most 1000 concurrent streams (SETTINGS_MAX_CONCURRENT_STREAMS), not 2^32 − 1', async () => {
    await new Promise<void>((r) => (session.remoteSettings.maxConcurrentStreams !== undefined ? r() : session.once('remoteSettings', () => r())));
    expect(session.remoteSettings.maxConcurrentStreams).toBe(1000);
  });

  it('health: an undecodable HealthCheckRequest is INTERNAL, not SERVING (a review)', async () => {
    const a = await raw('/grpc.health.v1.Health/Check', [prefixed(Buffer.from([0x0f]))]); // wire type 7: none
    expect(a.headers['grpc-status'] ?? a.trailers['grpc-status']).toBe('13');
  });
});

describe('a call the client gives up on mid-message is not decided (nobody waits for the answer)', () => {
  const GRPC_HEADERS = { 'content-type': 'application/grpc', te: 'trailers' };
  const malformed = (): Promise<number> => decisions(h.ctx.metrics, 'ext_authz_grpc', 'missing_attributes');

  async function halfMessage(): Promise<Buffer> {
    const body = encode(checkRequest('GET', '/orders/42', { authorization: `Bearer ${await sign(keys.a)}` }));
    return prefixed(body).subarray(0, 40);
  }

  it('RST_STREAM mid-message (Envoy on its timeout): no audit line, no decision; the connection keeps serving', async () => {
    const conn = await RawH2.open(h.grpcPort);
    try {
      const [auditBefore, malformedBefore] = [h.audit.length, await malformed()];
      conn.headers(1, CHECK, GRPC_HEADERS);
      conn.data(1, await halfMessage(), false);
      conn.reset(1);
      // A whole Check after the reset, on the same connection: frames are read in order, so once
      // it is answered the reset stream has been handled.
      const whole = prefixed(encode(checkRequest('GET', '/orders/42', { authorization: `Bearer ${await sign(keys.a)}` })));
      conn.headers(3, CHECK, GRPC_HEADERS);
      const answered = conn.answered(3);
      conn.data(3, whole, true);
      await answered;
      expect(h.audit.slice(auditBefore).map((l) => l.reason)).toEqual(['granted']);
      expect(await malformed()).toBe(malformedBefore);
    } finally {
      conn.destroy();
    }
  });

  it('the connection closed mid-message (a load client stopping): no audit line, no decision', async () => {
    const conn = await RawH2.open(h.grpcPort);
    const [auditBefore, malformedBefore] = [h.audit.length, await malformed()];
    conn.headers(1, CHECK, GRPC_HEADERS);
    conn.data(1, await halfMessage(), false);
    await conn.end(); // resolves once the server has closed its side, i.e. has torn the session down
    expect(h.audit.slice(auditBefore)).toEqual([]);
    expect(await malformed()).toBe(malformedBefore);
  });

  it('the same half message ended with END_STREAM is a malformed call: decided, audited and counted', async () => {
    const conn = await RawH2.open(h.grpcPort);
    try {
      const [auditBefore, malformedBefore] = [h.audit.length, await malformed()];
      conn.headers(1, CHECK, GRPC_HEADERS);
      const answered = conn.answered(1);
      conn.data(1, await halfMessage(), true);
      await answered;
      expect(h.audit.slice(auditBefore).map((l) => l.reason)).toEqual(['missing_attributes']);
      expect(await malformed()).toBe(malformedBefore + 1);
    } finally {
      conn.destroy();
    }
  });
});
