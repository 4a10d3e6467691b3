/**
 * The HAProxy row of the bench is only a fair peer if it checks what a JIT gate checks. Its generated config runs
 * here against a real haproxy (Debian package; .ci/run installs it): a valid token passes, and a forged signature,
 * an expired token, another audience or issuer, a method or a path outside the grant are refused.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUDIENCE, ISSUER, makeFixtures, type Fixtures } from '../../bench/macro/fixtures.ts';
import { haproxyBinary, startHaproxy } from '../../bench/macro/haproxy.ts';
import type { Child } from '../../bench/macro/processes.ts';
import { mintToken } from '../../src/issuing/mint-token.ts';
import { removeLater } from '../fixtures/temp-dirs.ts';

let fx: Fixtures;
let upstream: Server;
let haproxy: Child;
let seen = 0;
let key: Record<string, unknown>;

beforeAll(async () => {
  const binary = haproxyBinary();
  if (binary === undefined) throw new Error('haproxy is not installed (Debian package haproxy; .ci/run installs it)');
  fx = await makeFixtures({ alg: 'ES256', rotating: 0, ttlSeconds: 300 });
  removeLater(fx.dir);
  key = JSON.parse(await readFile(fx.jwksPath.replace(/jwks\.json$/, 'private.jwk.json'), 'utf8')) as Record<string, unknown>;
  upstream = createServer((_req, res) => {
    seen++;
    res.end('ok');
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  haproxy = await startHaproxy(binary, fx, (upstream.address() as AddressInfo).port, 1);
});

afterAll(async () => {
  haproxy?.proc.kill('SIGTERM');
  await new Promise((resolve) => upstream?.close(resolve));
});

async function status(method: string, path: string, token?: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${haproxy.port}${path}`, { method, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  return res.status;
}

const mint = (over: { aud?: string; iss?: string; iat?: number; ttlSeconds?: number } = {}): Promise<string> =>
  mintToken({ key, iss: over.iss ?? ISSUER, aud: over.aud ?? AUDIENCE, sub: 'spiffe://test/peer', actions: ['GET', 'POST'], paths: ['/orders/**'], ttlSeconds: over.ttlSeconds ?? 300, ...(over.iat === undefined ? {} : { iat: over.iat }) });

describe('the HAProxy jwt_verify peer', () => {
  it('passes a valid token inside the grant to the upstream', async () => {
    const before = seen;
    expect(await status('GET', '/orders/small', fx.tokens.hot)).toBe(200);
    expect(seen).toBe(before + 1);
  });

  it('refuses what a gate must refuse, without reaching the upstream', async () => {
    const before = seen;
    expect(await status('GET', '/orders/small')).toBe(401);
    expect(await status('GET', '/orders/small', fx.tokens.badSignature)).toBe(401);
    expect(await status('GET', '/orders/small', await mint({ iat: Math.floor(Date.now() / 1000) - 1200, ttlSeconds: 300 }))).toBe(401);
    expect(await status('GET', '/orders/small', await mint({ aud: 'billing' }))).toBe(401);
    expect(await status('GET', '/orders/small', await mint({ iss: 'https://evil.example' }))).toBe(401);
    expect(await status('DELETE', '/orders/small', fx.tokens.hot)).toBe(403);
    expect(await status('GET', '/admin/users', fx.tokens.hot)).toBe(403);
    expect(seen).toBe(before);
  });
});
