/**
 * The admin revocation API on a real loopback listener: refused without a configured token, 401
 * without the right bearer token, 400 naming the entry and field, 503 without a journal, entries
 * durable before 201 and enforced right after, GET with counts and sync status.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRevocationsApi, MAX_BODY_BYTES } from '../../src/admin/revocations-api.ts';
import { FixedClock } from '../../src/core/clock.ts';
import { AuditLog } from '../../src/observability/audit.ts';
import { buildTestGate, logged, type BuiltGate } from '../fixtures/built-gate.ts';
import { bearer, input } from '../fixtures/gate.ts';
import { jwksOf, makeKey, tempDir, writeJson, type TestKey } from '../fixtures/keys.ts';
import { ISSUER_A, NOW, sign } from '../fixtures/tokens.ts';

const TOKEN = 'adm-0123456789abcdef-secret';
let key: TestKey;
let jwksFile: string;
const cleanup: Array<() => unknown> = [];

beforeAll(async () => {
  key = await makeKey('ES256', 'k1');
  jwksFile = await writeJson(await tempDir(), 'jwks.json', jwksOf(key));
});
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

interface Api extends BuiltGate {
  url: string;
  journal: string;
  call(method: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; headers: Headers; json: any }>;
}

async function api(opts: { token?: boolean; journal?: boolean } = {}): Promise<Api> {
  const dir = await tempDir();
  const journal = join(dir, 'revocations.journal');
  const tokenFile = join(dir, 'admin-token');
  await writeFile(tokenFile, `${TOKEN}\n`);
  const built = await buildTestGate(
    {
      issuers: [{ issuer: ISSUER_A, jwks_file: jwksFile }],
      revocation: opts.journal === false ? {} : { journal },
      admin: opts.token === false ? {} : { token_file: tokenFile },
    },
    new FixedClock(NOW * 1000),
  );
  const route = createRevocationsApi({ config: built.config, gate: built.gate, metrics: built.metrics, audit: new AuditLog(undefined), logger: built.logger });
  const server: Server = createServer((req, res) => {
    if (!route(req, res)) res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(() => built.gate.stop(), () => new Promise((r) => server.close(r)));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/revocations`;
  const call: Api['call'] = async (method, body, headers = {}) => {
    const res = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...headers },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
  };
  return { ...built, url, journal, call };
}

const decide = async (a: Api, claims: Record<string, unknown>) => {
  const d = await a.gate.decide(input('GET', '/orders/42', bearer(await sign(key, claims))));
  return `${d.kind}:${d.reason}`;
};

describe('authentication', () => {
  it('refuses every call when no admin token is configured', async () => {
    const a = await api({ token: false });
    for (const method of ['GET', 'POST']) {
      const r = await a.call(method, method === 'POST' ? { jti: 'x' } : undefined);
      expect(r.status).toBe(403);
      expect(r.json).toMatchObject({ reason: 'api_disabled' });
      expect(r.json.message).toMatch(/disabled/);
    }
  });

  it('answers 401 without the token, with a wrong one, or with another scheme', async () => {
    const a = await api();
    const cases: Array<[Record<string, string>, string]> = [
      [{ authorization: '' }, 'Bearer realm="jitgate-admin", error="invalid_token"'],
      [{ authorization: `Bearer ${TOKEN}x` }, 'Bearer realm="jitgate-admin", error="invalid_token"'],
      [{ authorization: `Bearer ${TOKEN.slice(0, -1)}` }, 'Bearer realm="jitgate-admin", error="invalid_token"'],
      [{ authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` }, 'Bearer realm="jitgate-admin", error="invalid_token"'],
    ];
    for (const [headers, challenge] of cases) {
      for (const method of ['GET', 'POST']) {
        const r = await a.call(method, method === 'POST' ? { jti: 'x' } : undefined, headers);
        expect(r.status).toBe(401);
        expect(r.headers.get('www-authenticate')).toBe(challenge);
        expect(r.json.reason).toBe('admin_token_required');
      }
    }
    const none = await fetch(a.url, { method: 'POST', body: '{"jti":"x"}', headers: { 'content-type': 'application/json' } });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="jitgate-admin"');
    expect(a.gate.revocation.size).toBe(0);
    expect(await readFile(a.journal, 'utf8')).toBe('');
  });

  it('leaves other paths to the admin server', async () => {
    const a = await api();
    expect((await fetch(a.url.replace('/revocations', '/revocations/x'))).status).toBe(404);
    expect((await fetch(a.url.replace('/revocations', '/metrics'))).status).toBe(404);
  });
});

describe('POST /revocations', () => {
  it('journals one entry before 201 and enforces it', async () => {
    const a = await api();
    expect(await decide(a, { jti: 'rev-1' })).toBe('allow:granted');
    const r = await a.call('POST', { jti: 'rev-1', exp: NOW + 3600 });
    expect(r.status).toBe(201);
    expect(r.json).toEqual({ accepted: 1, entries: 1 });
    expect(r.headers.get('cache-control')).toBe('no-store');
    expect(await readFile(a.journal, 'utf8')).toBe(`{"jti":"rev-1","exp":${NOW + 3600}}\n`);
    expect(await decide(a, { jti: 'rev-1' })).toBe('deny:revoked');
    expect(logged(a.logs, 'revocations accepted')[0]).toMatchObject({ accepted: 1, jti: 1 });
  });

  it('accepts an array of jti, sub+before and txn entries', async () => {
    const a = await api();
    const r = await a.call('POST', [{ jti: 'j' }, { sub: 'spiffe://prod/ci-deployer', before: NOW + 1 }, { txn: 'deploy-9' }]);
    expect(r.status).toBe(201);
    expect(r.json.accepted).toBe(3);
    expect(await decide(a, { jti: 'any' })).toBe('deny:revoked'); // sub issued before NOW+1
    expect(await decide(a, { jti: 'any', sub: 'spiffe://prod/other', txn: 'deploy-9' })).toBe('deny:revoked');
    expect(await decide(a, { jti: 'any', sub: 'spiffe://prod/other' })).toBe('allow:granted');
  });

  it('answers 400 naming the entry and field, and accepts nothing of a bad batch', async () => {
    const a = await api();
    const r = await a.call('POST', [{ jti: 'fine' }, { jti: 'also-fine' }, { sub: 'x' }, { jti: '' }]);
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ reason: 'invalid_entry', message: 'entries[2]: "before" must be a number (epoch seconds) with "sub"' });
    expect(r.json.problems).toEqual([
      { index: 2, message: 'entries[2]: "before" must be a number (epoch seconds) with "sub"' },
      { index: 3, message: 'entries[3]: "jti" must be a non-empty string' },
    ]);
    expect(await readFile(a.journal, 'utf8')).toBe('');
    expect(a.gate.revocation.size).toBe(0);
    expect((await a.call('POST', '{"jti": ')).json.reason).toBe('invalid_json');
    expect((await a.call('POST', [])).status).toBe(400);
    expect((await a.call('POST', 'null')).json.message).toMatch(/entries\[0\]: expected a JSON object/);
    expect((await a.call('POST', { jti: 'x' }, { 'content-type': 'text/plain' })).status).toBe(415);
    expect((await a.call('POST', JSON.stringify({ jti: 'x'.repeat(MAX_BODY_BYTES) }))).status).toBe(413);
    expect((await a.call('DELETE')).status).toBe(405);
  });

  it('refuses entries no token could match and bodies that name a member twice (a review: both were 201)', async () => {
    const a = await api();
    for (const id of ['abc\n', 'abc\u0000', ' abc', 'abc ', 'caf\u00e9', 'x'.repeat(1025), '\u2028']) {
      const r = await a.call('POST', { jti: id });
      expect(r.status).toBe(400);
      expect(r.json).toMatchObject({ reason: 'invalid_entry' });
      expect(r.json.message).toMatch(/can never match a token/);
    }
    expect((await a.call('POST', { txn: 'x'.repeat(1024) })).status).toBe(201); // the longest a token may carry
    const twice = await a.call('POST', '{"jti":"dupA","jti":"dupB"}');
    expect(twice.status).toBe(400);
    expect(twice.json).toMatchObject({ reason: 'invalid_json' });
    expect((await a.call('POST', `[${'['.repeat(20_000)}${']'.repeat(20_000)}]`)).status).toBe(400);
    expect(await decide(a, { jti: 'dupB' })).toBe('allow:granted');
    expect(a.gate.revocation.size).toBe(1);
  });

  it('refuses to acknowledge anything when no journal is configured (503)', async () => {
    const a = await api({ journal: false });
    const r = await a.call('POST', { jti: 'x' });
    expect(r.status).toBe(503);
    expect(r.json).toMatchObject({ reason: 'journal_not_configured' });
    expect(a.gate.revocation.size).toBe(0);
  });
});

describe('GET /revocations', () => {
  it('reports counts and sync status per source', async () => {
    const a = await api();
    await a.call('POST', [{ jti: 'a' }, { txn: 'b' }]);
    const r = await a.call('GET');
    expect(r.status).toBe(200);
    expect(r.json).toEqual({
      entries: 2,
      stale: false,
      journal: a.journal,
      sources: [{ name: `journal:${a.journal}`, kind: 'journal', entries: 2, last_sync_at: null, age_ms: null, max_stale_ms: null, stale: false }],
    });
  });
});
