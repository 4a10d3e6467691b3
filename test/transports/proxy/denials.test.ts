/**
 * Every jitgate-made answer of SPEC §3 on the proxy: exact status, WWW-Authenticate, JSON body and
 * `cache-control: no-store` — and the upstream saw none of these requests.
 */
import { appendFile } from 'node:fs/promises';
import { once } from 'node:events';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ISSUER_A, sign } from '../../fixtures/tokens.ts';
import { closeAll, send, sendRaw, startGateWithUpstream, type InProcessGate, type RecordingUpstream, type SendOptions } from '../../fixtures/servers.ts';

let up: RecordingUpstream;
let gate: InProcessGate;

beforeAll(async () => ({ up, gate } = await startGateWithUpstream()));
afterAll(() => closeAll(gate, up));

const now = (): number => Math.floor(Date.now() / 1000);
const invalid = (reason: string) => `Bearer realm="jitgate", error="invalid_token", error_description="${reason}"`;

interface Case {
  readonly name: string;
  readonly path: string;
  readonly options: () => Promise<SendOptions>;
  readonly status: number;
  readonly challenge: string | undefined;
  readonly body: string;
}

const bearer = async (claims: Record<string, unknown> = {}): Promise<SendOptions> => ({ headers: { authorization: `Bearer ${await gate.token(claims)}` } });

const CASES: Case[] = [
  { name: 'no token', path: '/orders/42', options: async () => ({}), status: 401, challenge: 'Bearer realm="jitgate"', body: '{"error":"unauthorized","reason":"missing_token"}' },
  { name: 'not a bearer scheme', path: '/orders/42', options: async () => ({ headers: { authorization: 'Basic Zm9vOmJhcg==' } }), status: 401, challenge: 'Bearer realm="jitgate"', body: '{"error":"unauthorized","reason":"missing_token"}' },
  { name: 'garbage token', path: '/orders/42', options: async () => ({ headers: { authorization: 'Bearer not-a-jwt' } }), status: 401, challenge: invalid('malformed_token'), body: '{"error":"invalid_token","reason":"malformed_token"}' },
  {
    name: 'bad signature (same kid, other key)',
    path: '/orders/42',
    options: async () => ({ headers: { authorization: `Bearer ${await sign(gate.keys.stranger, { iat: now(), exp: now() + 300 })}` } }),
    status: 401,
    challenge: invalid('bad_signature'),
    body: '{"error":"invalid_token","reason":"bad_signature"}',
  },
  { name: 'expired', path: '/orders/42', options: () => bearer({ iat: now() - 600, exp: now() - 300 }), status: 401, challenge: invalid('expired'), body: '{"error":"invalid_token","reason":"expired"}' },
  { name: 'too long-lived', path: '/orders/42', options: () => bearer({ exp: now() + 3600 }), status: 401, challenge: invalid('lifetime_exceeded'), body: '{"error":"invalid_token","reason":"lifetime_exceeded"}' },
  { name: 'wrong audience', path: '/orders/42', options: () => bearer({ aud: 'billing' }), status: 401, challenge: invalid('wrong_audience'), body: '{"error":"invalid_token","reason":"wrong_audience"}' },
  { name: 'outside the grant (path)', path: '/orders/43', options: () => bearer(), status: 403, challenge: 'Bearer realm="jitgate", error="insufficient_scope"', body: '{"error":"insufficient_scope","reason":"path_not_granted"}' },
  {
    name: 'outside the grant (method)',
    path: '/orders/42',
    options: async () => ({ method: 'DELETE', ...(await bearer()) }),
    status: 403,
    challenge: 'Bearer realm="jitgate", error="insufficient_scope"',
    body: '{"error":"insufficient_scope","reason":"method_not_granted"}',
  },
  { name: 'malformed path: dot segment', path: '/orders/42/../43', options: () => bearer(), status: 400, challenge: undefined, body: '{"error":"invalid_request","reason":"path_dot_segment"}' },
  { name: 'malformed path: encoded slash', path: '/orders/42%2F..%2F43', options: () => bearer(), status: 400, challenge: undefined, body: '{"error":"invalid_request","reason":"path_encoded_slash"}' },
  { name: 'malformed path: double encoding', path: '/orders/42/%252e%252e', options: () => bearer(), status: 400, challenge: undefined, body: '{"error":"invalid_request","reason":"path_double_encoding"}' },
  { name: 'malformed path: empty segment', path: '/orders//42', options: () => bearer(), status: 400, challenge: undefined, body: '{"error":"invalid_request","reason":"path_empty_segment"}' },
  {
    name: 'two Authorization headers',
    path: '/orders/42',
    options: async () => {
      const t = await gate.token();
      return { headers: ['Host', new URL(gate.url).host, 'Authorization', `Bearer ${t}`, 'Authorization', `Bearer ${t}`] };
    },
    status: 400,
    challenge: undefined,
    body: '{"error":"invalid_request","reason":"multiple_authorization"}',
  },
  {
    name: 'method override header',
    path: '/orders/42',
    options: async () => ({ headers: { authorization: `Bearer ${await gate.token()}`, 'x-http-method-override': 'DELETE' } }),
    status: 400,
    challenge: undefined,
    body: '{"error":"invalid_request","reason":"method_override"}',
  },
];

describe('proxy denials (SPEC §3)', () => {
  it.each(CASES)('case=$name → $status', async (c) => {
    const before = up.requests.length;
    const res = await send(gate.url, c.path, await c.options());
    expect(res.status).toBe(c.status);
    expect(res.headers['www-authenticate']).toBe(c.challenge);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.text).toBe(c.body);
    expect(up.requests.length).toBe(before);
    const audit = gate.logs.filter((l) => l.type === 'audit').at(-1)!;
    expect(audit).toMatchObject({ transport: 'proxy', decision: 'deny', status: c.status, reason: JSON.parse(c.body).reason });
  });

  it('an Expect other than 100-continue is ignored: judged like any request (no bare 417), and not forwarded', async () => {
    const refused = await send(gate.url, '/orders/42', { headers: { expect: 'foo' } });
    expect([refused.status, refused.headers['cache-control'], refused.text]).toEqual([401, 'no-store', '{"error":"unauthorized","reason":"missing_token"}']);
    expect(gate.logs.filter((l) => l.type === 'audit').at(-1)).toMatchObject({ reason: 'missing_token', status: 401 });
    const before = up.requests.length;
    const allowed = await send(gate.url, '/orders/42', { headers: { expect: 'foo', ...(await bearer()).headers } });
    expect(allowed.status).toBe(200);
    expect(up.requests.length).toBe(before + 1);
    expect(up.requests.at(-1)!.headers.expect).toBeUndefined();
  });

  it('a refused token names its sub, jti, iss and txn in the audit line once its signature verified, and only then', async () => {
    await send(gate.url, '/orders/42', await bearer({ jti: 'audit-expired', iat: now() - 600, exp: now() - 300 }));
    const expired = gate.logs.filter((l) => l.type === 'audit').at(-1)!;
    expect(expired).toMatchObject({ reason: 'expired', status: 401, jti: 'audit-expired', iss: ISSUER_A });
    expect(typeof expired.sub).toBe('string');
    await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${await sign(gate.keys.stranger, { jti: 'audit-forged', iat: now(), exp: now() + 300 })}` } });
    const forged = gate.logs.filter((l) => l.type === 'audit').at(-1)!;
    expect(forged.reason).toBe('bad_signature');
    expect(['sub', 'jti', 'iss', 'txn'].filter((k) => k in forged)).toEqual([]);
  });

  it('case=revoked jti → 401 revoked within a poll interval', async () => {
    const token = await gate.token({ jti: 'jti-to-revoke' });
    expect((await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    await appendFile(`${gate.dir}/revoked.jsonl`, '{"jti":"jti-to-revoke"}\n');
    let res;
    for (let i = 0; i < 100; i++) {
      res = await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } });
      if (res.status === 401) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(res!.status).toBe(401);
    expect(res!.headers['www-authenticate']).toBe(invalid('revoked'));
    expect(res!.text).toBe('{"error":"invalid_token","reason":"revoked"}');
    const seen = up.requests.length;
    expect((await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
    expect(up.requests.length).toBe(seen);
  });

  it('case=a refused request with a body is answered, its body not read, the connection closed', async () => {
    const before = up.requests.length;
    const res = await sendRaw(gate.url, [`POST /orders/42 HTTP/1.1`, `Host: ${new URL(gate.url).host}`, 'Content-Length: 100000000'], 'partial');
    expect(res.status).toBe(401);
    expect(res.headers['connection']).toBe('close');
    expect(res.text).toBe('{"error":"unauthorized","reason":"missing_token"}');
    expect(up.requests.length).toBe(before);
  });

  it('case=refused requests without a body keep the connection alive (also Content-Length: 0)', async () => {
    const u = new URL(gate.url);
    const socket = connect(Number(u.port), u.hostname);
    await once(socket, 'connect');
    let buf = '';
    let closed = false;
    socket.setEncoding('latin1').on('data', (d: string) => (buf += d));
    socket.on('close', () => (closed = true));
    const requests = [
      `GET /orders/42 HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`,
      `POST /orders/42 HTTP/1.1\r\nHost: ${u.host}\r\nContent-Length: 0\r\n\r\n`,
      `GET /orders/42 HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`,
    ];
    try {
      for (let i = 0; i < requests.length; i++) {
        socket.write(requests[i]!);
        for (let waited = 0; buf.split('missing_token').length - 1 <= i; waited += 5) {
          if (closed || waited > 2000) throw new Error(`no answer to request ${i + 1} on the kept connection: ${JSON.stringify(buf)}`);
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    } finally {
      socket.destroy();
    }
    expect(buf.match(/HTTP\/1\.1 401 /g)).toHaveLength(3);
    expect(buf).not.toMatch(/^connection: close/im);
  });

  it('case=pipelined requests: a synchronous refusal after a forwarded allow is answered after it, in order', async () => {
    const u = new URL(gate.url);
    const token = await gate.token();
    // Warm the token cache so the allow below is decided synchronously too.
    expect((await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    const before = up.requests.length;
    const socket = connect(Number(u.port), u.hostname);
    await once(socket, 'connect');
    let buf = '';
    socket.setEncoding('latin1').on('data', (d: string) => (buf += d));
    const allowed = `GET /orders/42/items HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${token}\r\n\r\n`;
    const refused = `GET /orders/42 HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`;
    socket.write(allowed + refused + allowed);
    try {
      for (let waited = 0; (buf.match(/HTTP\/1\.1 \d{3} /g) ?? []).length < 3; waited += 5) {
        if (waited > 3000) throw new Error(`not three answers: ${JSON.stringify(buf)}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    } finally {
      socket.destroy();
    }
    expect(buf.match(/HTTP\/1\.1 (\d{3}) /g)).toEqual(['HTTP/1.1 200 ', 'HTTP/1.1 401 ', 'HTTP/1.1 200 ']);
    expect(up.requests.length - before).toBe(2);
  });

  it('case=oversized header block → 431 from the listener, no-store', async () => {
    const res = await sendRaw(gate.url, ['GET /orders/42 HTTP/1.1', `Host: ${new URL(gate.url).host}`, `X-Big: ${'a'.repeat(20_000)}`]);
    expect(res.status).toBe(431);
    expect(res.headers['cache-control']).toBe('no-store');
  });
  for (const [how, broken] of [
    ['throws', () => { throw new Error('boom'); }],
    ['rejects', () => Promise.reject(new Error('boom'))],
  ] as const) {
    it(`case=the decision ${how} (a bug) → 503 internal_error, the backend never asked, the gate keeps serving`, async () => {
      const g = gate.running.gate as unknown as { decide: unknown };
      const orig = g.decide;
      g.decide = broken;
      const before = up.requests.length;
      let res;
      try {
        res = await send(gate.url, '/orders/42', await bearer());
      } finally {
        g.decide = orig;
      }
      expect(res.status).toBe(503);
      expect(res.text).toBe('{"error":"unavailable","reason":"internal_error"}');
      expect(up.requests.length).toBe(before);
      expect(gate.logs.some((l) => l.msg === 'decision failed; refusing the request' && l.err?.message === 'boom')).toBe(true);
      expect((await send(gate.url, '/orders/42', await bearer())).status).toBe(200);
    });
  }
});
