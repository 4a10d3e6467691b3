/**
 * What the backend receives for an allowed request (SPEC §2, §4), against a real recording
 * upstream: the canonical path, the query unchanged, credentials and hop-by-hop headers gone,
 * spoofed identity headers replaced, X-Forwarded-* set, and the upstream's answer passed back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll, send, sendRaw, startGateInProcess, startGateWithUpstream, startRecordingUpstream, type InProcessGate, type RecordingUpstream } from '../../fixtures/servers.ts';

let up: RecordingUpstream;
let gate: InProcessGate;
let host: string;

beforeAll(async () => {
  ({ up, gate } = await startGateWithUpstream());
  host = new URL(gate.url).host;
});
afterAll(() => closeAll(gate, up));

/** name (lower case) → every value the upstream received under it. */
function received(raw: readonly string[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase();
    m.set(k, [...(m.get(k) ?? []), raw[i + 1]!]);
  }
  return m;
}

async function last() {
  await up.waitFor(up.requests.length);
  const rec = up.requests.at(-1)!;
  await rec.done;
  return { rec, headers: received(rec.rawHeaders) };
}

describe('proxy forwarding', () => {
  it('case=canonical path, query unchanged, identity replaced, credentials and hop-by-hop removed', async () => {
    const token = await gate.token();
    const before = up.requests.length;
    // Raw socket: node's client refuses a Trailer header without chunked encoding.
    const res = await sendRaw(gate.url, [
      'GET /orders/42/a%7Eb?x=%7E1&y=a+b HTTP/1.1',
      `Host: ${host}`,
      `Authorization: Bearer ${token}`,
      'DPoP: proof',
      'X-JIT-Subject: spiffe://evil',
      'x-jit-token-id: forged',
      'X-Jit-Anything: forged',
      'Keep-Alive: timeout=5',
      'Proxy-Connection: keep-alive',
      'TE: trailers',
      'Trailer: x-t',
      'Upgrade: h2c',
      'Proxy-Authorization: Basic Zm9vOmJhcg==',
      'Connection: close, X-Secret-Hop',
      'X-Secret-Hop: drop me',
      'X-Forwarded-For: 203.0.113.7',
      'X-Forwarded-Proto: https',
      'X-Forwarded-Host: spoofed.example',
      'X-Custom: kept',
      'User-Agent: jitgate-test',
    ]);
    expect(res.status).toBe(200);
    expect(res.text).toBe('{"ok":true}');
    expect(up.requests.length).toBe(before + 1);
    const { rec, headers } = await last();
    expect(rec.method).toBe('GET');
    expect(rec.url).toBe('/orders/42/a~b?x=%7E1&y=a+b');
    expect(headers.get('x-jit-subject')).toEqual(['spiffe://prod/ci-deployer']);
    expect(headers.get('x-jit-token-id')).toEqual(['jti-1']);
    expect(headers.get('x-jit-issuer')).toEqual(['https://broker.internal']);
    expect(headers.get('x-jit-txn')).toEqual(['deploy-4711']);
    expect(headers.has('x-jit-anything')).toBe(false);
    expect(headers.has('x-jit-actor')).toBe(false);
    for (const gone of ['authorization', 'dpop', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'x-secret-hop']) {
      expect(headers.has(gone), gone).toBe(false);
    }
    expect(headers.get('x-forwarded-for')).toEqual(['203.0.113.7, 127.0.0.1']);
    expect(headers.get('x-forwarded-proto')).toEqual(['http']);
    expect(headers.get('x-forwarded-host')).toEqual([host]);
    expect(headers.get('host')).toEqual([host]);
    expect(headers.get('x-custom')).toEqual(['kept']);
    expect(headers.get('user-agent')).toEqual(['jitgate-test']);
    // The client's own spelling of names it keeps.
    expect(rec.rawHeaders).toContain('X-Custom');
  });

  it('case=Connection naming identity or forwarding headers cannot remove what jitgate sets', async () => {
    const token = await gate.token({ act: { sub: 'spiffe://prod/broker' } });
    const res = await send(gate.url, '/orders/42', {
      headers: [
        'Host', host,
        'Authorization', `Bearer ${token}`,
        'Connection', 'x-jit-subject, x-jit-token-id, x-jit-issuer, x-jit-actor, x-forwarded-for, x-forwarded-host, host, content-length',
        'X-Forwarded-For', '203.0.113.7',
      ],
    });
    expect(res.status).toBe(200);
    const { headers } = await last();
    expect(headers.get('x-jit-subject')).toEqual(['spiffe://prod/ci-deployer']);
    expect(headers.get('x-jit-token-id')).toEqual(['jti-1']);
    expect(headers.get('x-jit-issuer')).toEqual(['https://broker.internal']);
    expect(headers.get('x-jit-actor')).toEqual(['spiffe://prod/broker']);
    // The nominated inbound X-Forwarded-For is hop-by-hop and goes; jitgate's own hop stays.
    expect(headers.get('x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(headers.get('x-forwarded-host')).toEqual([host]);
    expect(headers.get('host')).toEqual([host]);
  });

  it('case=public route forwards without identity headers and still strips spoofed ones', async () => {
    const res = await send(gate.url, '/public/docs/index.html', { headers: { 'x-jit-subject': 'spiffe://evil', authorization: 'Bearer whatever' } });
    expect(res.status).toBe(200);
    const { rec, headers } = await last();
    expect(rec.url).toBe('/public/docs/index.html');
    for (const h of ['x-jit-subject', 'x-jit-token-id', 'x-jit-issuer', 'authorization']) expect(headers.has(h), h).toBe(false);
    expect(headers.get('x-forwarded-for')).toEqual(['127.0.0.1']);
    const audit = gate.logs.filter((l) => l.type === 'audit').at(-1)!;
    expect(audit).toMatchObject({ transport: 'proxy', decision: 'allow', reason: 'public', status: 200, path: '/public/docs/index.html' });
  });

  it('case=request body streams upstream with its length; PATCH allowed by the grant', async () => {
    const token = await gate.token();
    const body = Buffer.alloc(100_000, 7);
    const res = await send(gate.url, '/orders/42', { method: 'PATCH', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' }, body });
    expect(res.status).toBe(200);
    const { rec, headers } = await last();
    expect(rec.method).toBe('PATCH');
    expect(rec.bodyBytes).toBe(100_000);
    expect(headers.get('content-length')).toEqual(['100000']);
  });

  it('case=Expect: 100-continue is answered only after the decision', async () => {
    const token = await gate.token();
    const ok = await send(gate.url, '/orders/42', { method: 'PATCH', headers: { authorization: `Bearer ${token}`, expect: '100-continue', 'content-length': '5' }, body: 'hello' });
    expect(ok.status).toBe(200);
    const { rec, headers } = await last();
    expect(rec.bodyBytes).toBe(5);
    expect(headers.has('expect')).toBe(false);
    const before = up.requests.length;
    const denied = await send(gate.url, '/orders/42', { method: 'PATCH', headers: { expect: '100-continue', 'content-length': '5' }, body: 'hello' });
    expect(denied.status).toBe(401);
    expect(up.requests.length).toBe(before);
  });

  it('case=upstream response headers pass through minus hop-by-hop and Connection-named ones', async () => {
    up.respond = (_req, res) => {
      res.writeHead(201, [
        'Set-Cookie', 'a=1',
        'Set-Cookie', 'b=2',
        'X-Backend', 'legacy',
        'Connection', 'X-Internal-Hop',
        'X-Internal-Hop', 'secret',
        'Proxy-Authenticate', 'Basic',
        'Content-Type', 'text/plain',
      ]);
      res.end('created');
    };
    try {
      const token = await gate.token();
      const res = await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(201);
      expect(res.text).toBe('created');
      expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
      expect(res.headers['x-backend']).toBe('legacy');
      expect(res.headers['x-internal-hop']).toBeUndefined();
      expect(res.headers['proxy-authenticate']).toBeUndefined();
      const audit = gate.logs.filter((l) => l.type === 'audit').at(-1)!;
      expect(audit).toMatchObject({ decision: 'allow', reason: 'granted', status: 201, method: 'GET', path: '/orders/42', jti: 'jti-1' });
    } finally {
      up.respond = (await import('../../fixtures/servers.ts')).answerOk;
    }
  });

  it('case=HEAD and upstream 404/500 are the backend answers, passed through', async () => {
    const token = await gate.token({ authorization_details: [{ type: 'jit_grant', actions: ['read'], paths: ['/orders/**'] }] });
    up.respond = (req, res) => {
      res.writeHead(req.url === '/orders/missing' ? 404 : 500, { 'content-type': 'text/plain', 'content-length': '4' });
      res.end('nope');
    };
    try {
      const head = await send(gate.url, '/orders/missing', { method: 'HEAD', headers: { authorization: `Bearer ${token}` } });
      expect(head.status).toBe(404);
      expect(head.headers['content-length']).toBe('4');
      expect(head.body.length).toBe(0);
      const err = await send(gate.url, '/orders/boom', { headers: { authorization: `Bearer ${token}` } });
      expect(err.status).toBe(500);
      expect(err.text).toBe('nope');
      expect(err.headers['cache-control']).toBeUndefined();
    } finally {
      up.respond = (await import('../../fixtures/servers.ts')).answerOk;
    }
  });
});

describe('proxy forwarding, header options', () => {
  it('case=headers.forward_authorization keeps Authorization; method_override: strip removes the override headers', async () => {
    const up2 = await startRecordingUpstream();
    const g = await startGateInProcess(up2.url, (c) => {
      c.headers = { forward_authorization: true, method_override: 'strip' };
    });
    try {
      const token = await g.token();
      const res = await send(g.url, '/orders/42', { headers: { authorization: `Bearer ${token}`, 'x-http-method-override': 'DELETE', 'X-Method-Override': 'DELETE' } });
      expect(res.status).toBe(200);
      const rec = up2.requests[0]!;
      const h = received(rec.rawHeaders);
      expect(h.get('authorization')).toEqual([`Bearer ${token}`]);
      expect(h.has('x-http-method-override')).toBe(false);
      expect(h.has('x-method-override')).toBe(false);
      expect(rec.method).toBe('GET');
    } finally {
      await g.close();
      await up2.close();
    }
  });
});
