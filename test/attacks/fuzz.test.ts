/**
 * Property fuzzing of the whole decision (issue 7) with fast-check: random methods, targets built
 * from the pieces path attacks are made of, random header sets and token mutations.
 * 1. Through the real proxy over raw sockets: never a 5xx for client garbage, the gate keeps
 *    answering, and whatever reaches the upstream lies inside the grant (GET/PATCH under
 *    /orders/42, or the public GET /healthz) and carries neither a spoofed identity nor an override.
 * 2. Straight into Gate.decide with arbitrary Unicode: never a throw, never a 5xx reason, and an
 *    allow only where an independent decoder (decodeURIComponent per segment) agrees it is inside.
 * Runs are bounded (FUZZ_RUNS scales them) so the file stays well under 20 s.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REASONS } from '../../src/core/reasons.ts';
import { bearer as bearerOf, input, makeGate, makeTestKeys, type TestGate, type TestKeys } from '../fixtures/gate.ts';
import { sign } from '../fixtures/tokens.ts';
import { head, rawExchange, startAttackGate, type AttackGate, type Header } from './harness.ts';
import { b64u, claims, signed } from './jws.ts';

const SCALE = Number(process.env.FUZZ_RUNS ?? '1');
const PIECES = ['orders', '42', '43', 'admin', 'public', 'healthz', '..', '.', '%2e', '%2E%2e', '%2f', '%2F', '%5c', '\\', ';', ';x', '%3b', '%00', '%25', '%252e', '%c0%ae', '%EF%BC%8E', '%EF%BC%8F', '%41', '%34%32', '~', '*', '**', '&', '=', '+', '%', '%zz', '%ff', ''];
const SAFE = fc.constantFrom(...'!$&\'()*+,-.0123456789:;=@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~%/\\?#[]{}|^`"<>'.split(''));

const piece = fc.oneof(fc.constantFrom(...PIECES), fc.string({ unit: SAFE, maxLength: 6 }));
const query = fc.option(fc.string({ unit: SAFE, maxLength: 12 }), { freq: 3 }).map((q) => (q === null ? '' : `?${q}`));

/**
 * A request target as an attacker would build one: usually the granted prefix followed by pieces
 * path attacks are made of (so allows and near-misses are common), sometimes anything at all.
 */
const target = fc.oneof(
  { arbitrary: fc.tuple(fc.array(piece, { maxLength: 5 }), query).map(([segs, q]) => `/orders/42${segs.map((x) => `/${x}`).join('')}${q}`), weight: 4 },
  { arbitrary: fc.tuple(fc.constantFrom('/healthz', '/orders/42', '/orders/43', '/', '//orders/42', '/orders/42/'), query).map(([p, q]) => p + q), weight: 2 },
  { arbitrary: fc.tuple(fc.boolean(), fc.array(piece, { maxLength: 7 }), query).map(([slash, segs, q]) => `${slash ? '/' : ''}${segs.join('/')}${q}`), weight: 3 },
);

const methods = fc.constantFrom('GET', 'GET', 'PATCH', 'HEAD', 'POST', 'DELETE', 'PUT', 'OPTIONS', 'PROPFIND', 'TRACE');

type Mutation = (t: string, rnd: number) => string;
const MUTATIONS: readonly Mutation[] = [
  (t) => t,
  (t, r) => { const i = Math.floor(r * t.length); return t.slice(0, i) + (t[i] === 'A' ? 'B' : 'A') + t.slice(i + 1); },
  (t, r) => t.slice(0, Math.floor(r * t.length)),
  (t) => t.split('.').reverse().join('.'),
  (t) => `${b64u(JSON.stringify({ alg: 'none', typ: 'jit+jwt' }))}.${t.split('.')[1]}.`,
  (t) => `${t}.x`,
  (t) => `${t.split('.')[0]}.${b64u(JSON.stringify(claims({ authorization_details: [{ type: 'jit_grant', actions: ['GET', 'DELETE'], paths: ['/**'] }] })))}.${t.split('.')[2]}`,
  (t) => t.toLowerCase(),
  () => '',
];

/** The token-related header lines of one run. */
const credentials = fc.record({
  mutation: fc.oneof({ arbitrary: fc.constant(0), weight: 3 }, { arbitrary: fc.nat(MUTATIONS.length - 1), weight: 4 }),
  rnd: fc.double({ min: 0, max: 1, noNaN: true }),
  scheme: fc.oneof({ arbitrary: fc.constantFrom('Bearer ', 'bearer ', 'BEARER\t'), weight: 4 }, { arbitrary: fc.constantFrom('Basic ', 'Bearer', 'DPoP ', 'Bearer  '), weight: 1 }),
  twice: fc.oneof({ arbitrary: fc.constant(false), weight: 5 }, { arbitrary: fc.constant(true), weight: 1 }),
  present: fc.oneof({ arbitrary: fc.constant(true), weight: 5 }, { arbitrary: fc.constant(false), weight: 1 }),
});

const extras = fc.subarray<Header>(
  [
    ['X-Jit-Subject', 'spiffe://evil'],
    ['x_jit_subject', 'spiffe://evil'],
    ['X-HTTP-Method-Override', 'DELETE'],
    ['X_HTTP_Method_Override', 'DELETE'],
    ['X-Original-URL', '/orders/43'],
    ['Connection', 'x-jit-subject, x-forwarded-for'],
    ['Transfer-Encoding', 'chunked'],
    ['Content-Length', '3'],
    ['Cookie', 'access_token=x'],
  ],
  { maxLength: 2 },
);

let g: AttackGate;
let valid = '';
beforeAll(async () => {
  g = await startAttackGate();
  valid = signed(g.keys.a);
});
afterAll(async () => {
  await g?.close();
});

/** Inside the grant by an independent reading: decodeURIComponent per raw segment, no dot/slash games. */
function insideByOracle(method: string, raw: string): boolean {
  const path = raw.split('?')[0]!;
  if (!path.startsWith('/')) return false;
  let segs: string[];
  try {
    segs = path.slice(1).split('/').map((s) => decodeURIComponent(s));
  } catch {
    return false;
  }
  if (segs.some((s) => s === '.' || s === '..' || s.includes('/') || s.includes('\\'))) return false;
  if (method === 'GET' && segs.length === 1 && segs[0] === 'healthz') return true;
  return (method === 'GET' || method === 'PATCH') && segs[0] === 'orders' && segs[1] === '42';
}

describe('fuzz: the real proxy', () => {
  it('never a 5xx, never an allow outside the grant, never a spoofed header upstream', { timeout: 20_000 }, async () => {
    const upstreamBefore = g.upstream.requests.length;
    const statuses = new Set<number>();
    await fc.assert(
      fc.asyncProperty(methods, target, credentials, extras, async (method, t, cred, extra) => {
        const token = MUTATIONS[cred.mutation]!(valid, cred.rnd);
        const headers: Header[] = [];
        if (cred.present) headers.push(['Authorization', `${cred.scheme}${token}`]);
        if (cred.twice) headers.push(['Authorization', `Bearer ${valid}`]);
        headers.push(...extra);
        const chunked = extra.some(([n]) => n === 'Transfer-Encoding');
        const withLength = extra.some(([n]) => n === 'Content-Length');
        const body = chunked ? '3\r\nabc\r\n0\r\n\r\n' : withLength ? 'abc' : '';
        const before = g.upstream.requests.length;
        const a = await rawExchange(g.ports.proxy, Buffer.concat([head(method, t, headers), Buffer.from(body)]), 5000);
        statuses.add(a.status);
        expect(a.status, `${method} ${t}`).toBeGreaterThanOrEqual(200);
        expect(a.status, `${method} ${t}`).toBeLessThan(500);
        for (const rec of g.upstream.requests.slice(before)) {
          expect(insideByOracle(rec.method, rec.url), `${rec.method} ${rec.url} reached the upstream`).toBe(true);
          const names = rec.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase().replaceAll('_', '-'));
          expect(names.filter((n) => n === 'x-jit-subject').length).toBeLessThanOrEqual(1);
          expect(names).not.toContain('x-http-method-override');
          expect(names).not.toContain('x-original-url');
          if (names.includes('x-jit-subject')) expect(rec.headers['x-jit-subject']).toBe('spiffe://prod/ci-deployer');
        }
      }),
      { numRuns: Math.round(800 * SCALE), interruptAfterTimeLimit: 15_000 },
    );
    // Not vacuous: allows, 400s, 401s and 403s all happened.
    expect(g.upstream.requests.length - upstreamBefore).toBeGreaterThan(5);
    for (const s of [400, 401, 403]) expect(statuses, `some run got ${s}`).toContain(s);
    const ok = await rawExchange(g.ports.proxy, head('GET', '/orders/42', [['Authorization', `Bearer ${valid}`]]));
    expect(ok.status, 'the gate still answers').toBe(200);
  });
});

describe('fuzz: Gate.decide with arbitrary input', () => {
  let keys: TestKeys;
  let t: TestGate;
  let token = '';
  beforeAll(async () => {
    keys = await makeTestKeys();
    t = await makeGate(keys);
    token = await sign(keys.a, { jti: 'fuzz' });
  });
  afterAll(() => t?.gate.stop());

  it('never throws, never answers 5xx to garbage, allows only inside the grant', { timeout: 20_000 }, async () => {
    const kinds = new Map<string, number>();
    const anyTarget = fc.oneof(
      { arbitrary: target, weight: 3 },
      { arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => `/orders/42/${s}`), weight: 1 },
      { arbitrary: fc.string({ unit: 'binary', maxLength: 30 }), weight: 1 },
    );
    const anyMethod = fc.oneof({ arbitrary: methods, weight: 4 }, { arbitrary: fc.string({ maxLength: 8 }), weight: 1 });
    await fc.assert(
      fc.asyncProperty(anyMethod, anyTarget, credentials, fc.boolean(), fc.string({ unit: 'binary', maxLength: 30 }), async (method, raw, cred, override, junk) => {
        const tok = cred.mutation === MUTATIONS.length - 1 ? junk : MUTATIONS[cred.mutation]!(token, cred.rnd);
        const auth = cred.present ? `${cred.scheme}${tok}` : undefined;
        const d = await t.gate.decide(input(method, raw, auth, { methodOverride: override, authorizationCount: (cred.present ? 1 : 0) + (cred.twice ? 1 : 0) }));
        kinds.set(d.reason, (kinds.get(d.reason) ?? 0) + 1);
        expect(REASONS[d.reason].status, `${d.reason} for ${JSON.stringify(raw)}`).toBeLessThan(500);
        if (d.kind === 'allow') expect(insideByOracle(method, raw), `allowed ${method} ${JSON.stringify(raw)}`).toBe(true);
      }),
      { numRuns: Math.round(5000 * SCALE), interruptAfterTimeLimit: 12_000 },
    );
    expect(kinds.get('granted') ?? 0, 'some runs were allowed').toBeGreaterThan(10);
    expect(kinds.size, 'many different reasons were reached').toBeGreaterThan(12);
    // The valid token still decides (the cache was not poisoned by mutations of it).
    expect((await t.gate.decide(input('GET', '/orders/42', bearerOf(token)))).kind).toBe('allow');
  });
});
