/**
 * Token Status List through the real Gate (SPEC §10): lists served by a real HTTP server on loopback,
 * verified with the issuer's key files, on a FixedClock. Every bad list and bad claim of issue 15 is a
 * refusal with its reason — never an allow, never a crash — and a URI outside allowed_uris is never
 * fetched.
 */
import { KeyObject, sign as cryptoSign } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { deflateSync } from 'node:zlib';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeGate, makeTestKeys, type TestGate, type TestKeys } from '../fixtures/gate.ts';
import type { TestKey } from '../fixtures/keys.ts';
import { b64u, ISSUER_B, NOW, sign } from '../fixtures/tokens.ts';
import { decideToken, outcome, statusToken } from './helpers.ts';
import { cliList, rawList, StatusListServer } from './list-server.ts';

/** A list signed (ES256) over a header text of our choosing: what a JWT library would never produce. */
async function signedHeaderText(key: TestKey, header: string | Buffer, payload: Record<string, unknown>): Promise<string> {
  const input = `${Buffer.from(header).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  const signature = cryptoSign('sha256', Buffer.from(input), { key: KeyObject.from(key.privateKey as Parameters<typeof KeyObject.from>[0]), dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

let keys: TestKeys;
let server: StatusListServer;
let elsewhere: StatusListServer;
let t: TestGate;
const THIRD = 'https://third-broker.internal';

/** The main list: 2 bits, 64 entries; 3 and 17 INVALID, 5 SUSPENDED, 7 has the undefined value 3. */
const MAIN = '/status/main';

beforeAll(async () => {
  keys = await makeTestKeys();
  server = await new StatusListServer().start();
  elsewhere = await new StatusListServer().start();
  t = await makeGate(keys, (c) => {
    const block = { allowed_uris: [server.uri('/status/')], refresh: '1m', max_stale: '5m', timeout: '400ms', max_bytes: 64 * 1024, max_list_bytes: 64 * 1024 };
    c.issuers[0].status_list = block;
    c.issuers[1].status_list = { ...block, allowed_uris: [server.uri('/b/')], required: true };
    // A third issuer without a status_list block: its tokens' status claims are not acted on.
    c.issuers.push({ ...c.issuers[1], issuer: THIRD, status_list: undefined });
  });
  server.lists.set(MAIN, await cliList(keys.a, { uri: server.uri(MAIN), bits: 2, size: 64, iat: NOW, expSeconds: 3600, statuses: new Map([[3, 1], [17, 1], [5, 2], [7, 3]]) }));
});

afterAll(async () => {
  t.gate.stop();
  await Promise.all([server.stop(), elsewhere.stop(), rm(t.dir, { recursive: true, force: true })]);
});

describe('status values', () => {
  it.each([
    [0, 'allow', 'granted'],
    [3, 'deny', 'revoked'],
    [17, 'deny', 'revoked'],
    [5, 'deny', 'suspended'],
    [7, 'deny', 'status_not_valid'],
    [63, 'allow', 'granted'],
    [64, 'deny', 'status_index_out_of_range'],
    [1_000_000, 'deny', 'status_index_out_of_range'],
  ])('idx %i → %s %s', async (idx, kind, reason) => {
    const o = await outcome(t.gate, await statusToken(keys.a, server.uri(MAIN), idx));
    expect(o).toMatchObject({ kind, reason });
    if (kind === 'deny') expect(o.status).toBe(401);
  });

  it('fetches with Accept: application/statuslist+jwt', () => {
    const first = server.seen.find((s) => s.path === MAIN);
    expect(first?.accept).toBe('application/statuslist+jwt');
  });

  it('a cached token is re-checked on every request, synchronously: no promise, no fetch', async () => {
    const token = await statusToken(keys.a, server.uri(MAIN), 3);
    expect((await decideToken(t.gate, token)).reason).toBe('revoked');
    const fetches = server.requestsFor(MAIN);
    for (let i = 0; i < 50; i++) {
      const d = decideToken(t.gate, token);
      expect(d).not.toBeInstanceOf(Promise);
      expect((d as { reason: string }).reason).toBe('revoked');
    }
    expect(server.requestsFor(MAIN)).toBe(fetches);
  });

  it('concurrent first requests for one list share one fetch', async () => {
    const path = '/status/coalesce';
    server.lists.set(path, await cliList(keys.a, { uri: server.uri(path), bits: 1, size: 128, iat: NOW, statuses: new Map([[1, 1]]) }));
    const tokens = await Promise.all(Array.from({ length: 25 }, (_, i) => statusToken(keys.a, server.uri(path), i % 2)));
    const results = await Promise.all(tokens.map((tok) => outcome(t.gate, tok)));
    expect(results.map((r) => r.reason)).toEqual(tokens.map((_, i) => (i % 2 === 1 ? 'revoked' : 'granted')));
    expect(server.requestsFor(path)).toBe(1);
  });
});

describe('bad lists: each a refusal with its reason', () => {
  const cases: [string, string, (uri: string) => Promise<string | Buffer>][] = [
    ['non-JWT body', 'status_list_malformed', async () => 'hello, this is not a list'],
    ['an HTML page', 'status_list_malformed', async () => '<html><body>Service Temporarily Unavailable</body></html>'],
    ['a JSON document', 'status_list_malformed', async () => '{"status_list":{"bits":1,"lst":"eNrbuRgAAhcBXQ"}}'],
    ['wrong typ (JWT)', 'status_list_typ', (uri) => rawList(keys.a, { sub: uri, iat: NOW, status_list: { bits: 1, lst: 'eNrbuRgAAhcBXQ' } }, { typ: 'JWT' })],
    ['no typ', 'status_list_typ', (uri) => rawList(keys.a, { sub: uri, iat: NOW, status_list: { bits: 1, lst: 'eNrbuRgAAhcBXQ' } }, { typ: undefined })],
    ['wrong signer (issuer B)', 'status_list_signature', (uri) => cliList(keys.b, { uri, bits: 1, size: 16, iat: NOW, statuses: new Map() })],
    ['a stranger key under A’s kid', 'status_list_signature', (uri) => cliList(keys.stranger, { uri, bits: 1, size: 16, iat: NOW, statuses: new Map() })],
    ['HS256 (symmetric)', 'status_list_signature', (uri) => new SignJWT({ sub: uri, iat: NOW, status_list: { bits: 1, lst: 'eNrbuRgAAhcBXQ' } }).setProtectedHeader({ alg: 'HS256', typ: 'statuslist+jwt' }).sign(new Uint8Array(32))],
    ['wrong sub', 'status_list_sub', (uri) => cliList(keys.a, { uri: `${uri}-other`, bits: 1, size: 16, iat: NOW, statuses: new Map() })],
    ['missing iat', 'status_list_claims', (uri) => rawList(keys.a, { sub: uri, status_list: { bits: 1, lst: 'eNrbuRgAAhcBXQ' } })],
    ['iat in the future', 'status_list_claims', (uri) => rawList(keys.a, { sub: uri, iat: NOW + 600, status_list: { bits: 1, lst: 'eNrbuRgAAhcBXQ' } })],
    // RFC 7519 §4.1.5: not accepted before nbf (beyond the clock tolerance); found missing by a black-box probe.
    ['nbf in the future', 'status_list_claims', (uri) => rawList(keys.a, { sub: uri, iat: NOW, nbf: NOW + 600, status_list: { bits: 1, lst: 'eNrbuRgAAhcBXQ' } })],
    ['nbf not a number', 'status_list_claims', (uri) => rawList(keys.a, { sub: uri, iat: NOW, nbf: 'soon', status_list: { bits: 1, lst: 'eNrbuRgAAhcBXQ' } })],
    ['expired', 'status_list_expired', (uri) => cliList(keys.a, { uri, bits: 1, size: 16, iat: NOW - 3600, expSeconds: 3000, statuses: new Map() })],
    ['bits 3', 'status_list_claims', (uri) => rawList(keys.a, { sub: uri, iat: NOW, status_list: { bits: 3, lst: 'eNrbuRgAAhcBXQ' } })],
    ['no status_list', 'status_list_claims', (uri) => rawList(keys.a, { sub: uri, iat: NOW })],
    ['invalid base64url lst', 'status_list_encoding', (uri) => rawList(keys.a, { sub: uri, iat: NOW, status_list: { bits: 1, lst: 'eNrb+RgAAhcBXQ==' } })],
    ['two concatenated ZLIB streams in lst', 'status_list_encoding', (uri) => rawList(keys.a, { sub: uri, iat: NOW, status_list: { bits: 1, lst: Buffer.concat([deflateSync(Buffer.alloc(2)), deflateSync(Buffer.alloc(2, 0xff))]).toString('base64url') } })],
    ['lst with a non-canonical last character', 'status_list_encoding', (uri) => rawList(keys.a, { sub: uri, iat: NOW, status_list: { bits: 1, lst: 'eNrbuRgAAhcBXR' } })],
    ['truncated lst', 'status_list_encoding', (uri) => rawList(keys.a, { sub: uri, iat: NOW, status_list: { bits: 1, lst: deflateSync(Buffer.alloc(4096, 0x5a)).toString('base64url').slice(0, -6) } })],
    ['a zip bomb lst (16 MiB inflated, bound 64 KiB)', 'status_list_too_large', (uri) => rawList(keys.a, { sub: uri, iat: NOW, status_list: { bits: 1, lst: deflateSync(Buffer.alloc(16 * 1024 * 1024)).toString('base64url') } })],
    ['a body over max_bytes', 'status_list_too_large', async () => Buffer.alloc(65 * 1024, 0x41)],
    // The header is decoded once, by the same rule as grant tokens' (jws-compact.ts jsonObject): signed, but refused.
    ['a header naming typ twice (JWT, then statuslist+jwt)', 'status_list_malformed', (uri) => signedHeaderText(keys.a, '{"alg":"ES256","kid":"a-es256","typ":"JWT","typ":"statuslist+jwt"}', { sub: uri, iat: NOW, status_list: { bits: 1, lst: 'eNrbuRgAAhcBXQ' } })],
    ['a header that is a JSON array', 'status_list_malformed', (uri) => signedHeaderText(keys.a, '["ES256"]', { sub: uri, iat: NOW, status_list: { bits: 1, lst: 'eNrbuRgAAhcBXQ' } })],
    // RFC 7797 b64:false without crit, signed over the ordinary input: refused as a token with it is (a probe).
    ['a header asking for an unencoded payload (b64: false)', 'status_list_malformed', (uri) => signedHeaderText(keys.a, '{"alg":"ES256","kid":"a-es256","typ":"statuslist+jwt","b64":false}', { sub: uri, iat: NOW, status_list: { bits: 1, lst: 'eNrbuRgAAhcBXQ' } })],
    // A payload that is not a JSON object is malformed whatever the signature, as a token's is (the
    // structure is judged before any key: a spec conformance review found a junk signature said "signature").
    ['a payload that is not JSON, with a junk signature', 'status_list_malformed', async () => `${b64u({ alg: 'ES256', kid: 'a-es256', typ: 'statuslist+jwt' })}.${b64u('not json')}.${b64u('sig')}`],
    ['a payload that is a JSON array, with a junk signature', 'status_list_malformed', async () => `${b64u({ alg: 'ES256', kid: 'a-es256', typ: 'statuslist+jwt' })}.${b64u('[1,2]')}.${b64u('sig')}`],
    ['a payload naming sub twice, with a junk signature', 'status_list_malformed', async (uri) => `${b64u({ alg: 'ES256', kid: 'a-es256', typ: 'statuslist+jwt' })}.${b64u(`{"sub":"x","sub":${JSON.stringify(uri)}}`)}.${b64u('sig')}`],
    ['a well-formed list with a junk signature', 'status_list_signature', async (uri) => `${b64u({ alg: 'ES256', kid: 'a-es256', typ: 'statuslist+jwt' })}.${b64u({ sub: uri, iat: NOW, status_list: { bits: 1, lst: 'eNrbuRgAAhcBXQ' } })}.${b64u('sig')}`],
    ['a header that is not UTF-8', 'status_list_malformed', (uri) => signedHeaderText(keys.a, Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), { sub: uri, iat: NOW, status_list: { bits: 1, lst: 'eNrbuRgAAhcBXQ' } })],
  ];

  it.each(cases)('%s → %s (401)', async (name, reason, make) => {
    const path = `/status/bad-${cases.findIndex((c) => c[0] === name)}`;
    server.modes.set(path, { kind: 'body', body: await make(server.uri(path)) });
    const o = await outcome(t.gate, await statusToken(keys.a, server.uri(path), 0));
    expect(o).toEqual({ kind: 'deny', reason, status: 401 });
    expect(server.requestsFor(path)).toBe(1);
  });

  it.each([
    [{ kind: 'status', status: 500 } as const, 'status_list_unavailable'],
    [{ kind: 'status', status: 404 } as const, 'status_list_unavailable'],
    // 304 to the first fetch, which sent no If-None-Match: there is nothing it could confirm.
    [{ kind: 'status', status: 304 } as const, 'status_list_unavailable'],
  ])('HTTP %o → 503 %s', async (mode, reason) => {
    const path = `/status/http-${mode.status}`;
    server.modes.set(path, mode);
    expect(await outcome(t.gate, await statusToken(keys.a, server.uri(path), 0))).toEqual({ kind: 'unavailable', reason, status: 503 });
    // One list that never loads is named on /readyz, but does not take the gate out of service.
    const r = t.gate.readiness();
    expect(r.problems.find((p) => p.includes(server.uri(path)))).toMatch(`of issuer https://broker.internal has never loaded (last error: ${reason}: HTTP ${mode.status}`);
    expect(r.ready).toBe(true);
  });

  it('a redirect to another host is not followed → 503 status_list_redirect', async () => {
    const path = '/status/moved';
    elsewhere.lists.set(path, await cliList(keys.a, { uri: server.uri(path), bits: 1, size: 16, iat: NOW, statuses: new Map() }));
    server.modes.set(path, { kind: 'redirect', location: elsewhere.uri(path) });
    expect(await outcome(t.gate, await statusToken(keys.a, server.uri(path), 0))).toEqual({ kind: 'unavailable', reason: 'status_list_redirect', status: 503 });
    expect(elsewhere.seen).toHaveLength(0);
  });

  it('a slow list: the first request waits at most timeout (400 ms), then 503 status_list_timeout; later ones get it at once until the retry', async () => {
    const path = '/status/slow';
    server.lists.set(path, await cliList(keys.a, { uri: server.uri(path), bits: 1, size: 16, iat: NOW, statuses: new Map() }));
    server.modes.set(path, { kind: 'slow', ms: 10_000 });
    const started = performance.now();
    expect(await outcome(t.gate, await statusToken(keys.a, server.uri(path), 0))).toEqual({ kind: 'unavailable', reason: 'status_list_timeout', status: 503 });
    // Far below the server's 10 s: the request did not wait for the answer (headroom for a loaded machine).
    expect(performance.now() - started).toBeLessThan(3_000);

    // Until the retry (min(refresh, 5 s) after the first fetch started) the list's other tokens get the
    // same answer at once, without waiting and without a fetch of their own.
    // Once the aborted fetch has ended (its failure recorded, as /readyz shows); until then a request
    // waits for it, as the first did. The token is signed before the clock starts.
    const settledBy = Date.now() + 5_000;
    while (!t.gate.readiness().problems.some((p) => p.startsWith(`status list ${server.uri(path)} `))) {
      if (Date.now() > settledBy) throw new Error('the aborted fetch never ended');
      await new Promise((r) => setTimeout(r, 20));
    }
    const token = await statusToken(keys.a, server.uri(path), 1);
    const second = performance.now();
    expect(await outcome(t.gate, token)).toEqual({ kind: 'unavailable', reason: 'status_list_timeout', status: 503 });
    expect(performance.now() - second).toBeLessThan(300);
    expect(server.requestsFor(path)).toBe(1);
  });
});

describe('bad status claims and URIs: refused without a request', () => {
  it.each([
    ['negative idx', -1],
    ['fractional idx', 1.5],
    ['string idx', '3'],
    ['huge idx', 2 ** 60],
  ])('%s → status_claim_invalid', async (_name, idx) => {
    const before = server.seen.length;
    expect(await outcome(t.gate, await statusToken(keys.a, server.uri(MAIN), idx))).toEqual({ kind: 'deny', reason: 'status_claim_invalid', status: 401 });
    expect(server.seen.length).toBe(before);
  });

  it.each([
    ['status is a string', { status: 'revoked' }],
    ['status names no mechanism (the draft, 6.1: at least one)', { status: {} }],
    ['status_list is an array', { status: { status_list: [0, 'x'] } }],
    ['uri is a number', { status: { status_list: { idx: 0, uri: 7 } } }],
  ])('%s → status_claim_invalid', async (_name, claims) => {
    expect(await outcome(t.gate, await sign(keys.a, { jti: `c-${_name}`, ...claims }))).toMatchObject({ reason: 'status_claim_invalid', status: 401 });
  });

  it.each([
    ['another host', 'https://evil.example/status/1'],
    ['another path on the same host', '/other/1'],
    ['a sibling of the prefix', '/statusX/1'],
    ['a dot segment', '/status/../admin'],
    ['an encoded dot segment', '/status/%2e%2e/admin'],
    // Fetched verbatim, but an origin or CDN that decodes them would route outside the prefix.
    ['an encoded slash', '/status/%2F..%2Fctl'],
    ['an encoded slash, lower case', '/status/a%2fb'],
    ['an encoded backslash', '/status/%5C..%5Cctl'],
    ['an encoded dot inside a segment', '/status/a%2Eb'],
    // The fifteenth round: the proxy's path_encoded_delimiter and its ..%3F / ..%23 dot-like segments.
    ['dots and an encoded ?', '/status/..%3F/x'],
    ['dots and an encoded #', '/status/..%23/x'],
    ['an encoded ? inside a segment, lower case', '/status/a%3fb'],
    // Spellings other origins fold onto a separator or a dot (found reaching the list server by a black-box probe).
    ['a Tomcat path parameter', '/status/..;/ctl'],
    ['a path parameter in a segment', '/status/main;x=1'],
    ['double encoding', '/status/%252e%252e/ctl'],
    ['double-encoded slashes', '/status/%252F..%252Fctl'],
    ['overlong UTF-8 dots', '/status/%C0%AE%C0%AE/ctl'],
    ['full-width dots', '/status/%EF%BC%8E%EF%BC%8E/ctl'],
    ['dots and an encoded space', '/status/..%20/ctl'],
    ['an encoded control byte', '/status/a%00b'],
    // The thirteenth round's: forms the proxy refuses in a request path, fetched verbatim until then.
    ['an encoded path parameter', '/status/x/..%3B/y'],
    ['IIS %u dots', '/status/%u002e%u002e/%u002e%u002e/ctl'],
    ['IIS %u dots and slash', '/status/%u002e%u002e%u2215ctl'],
    ['%-encoded hex digits', '/status/%%32%65%%32%65/ctl'],
    ['a % without two hex digits', '/status/%zz'],
    ['a % cut short at the end', '/status/%2'],
    ['an empty segment', '/status//a'],
    ['an empty last segment', '/status/a//'],
    ['an empty fragment', '/status/main#'],
    ['user info', 'user@'],
    ['a fragment', '/status/main#x'],
    ['not a URL', 'status/main'],
  ])('uri with %s → status_uri_not_allowed, nothing fetched', async (_name, uri) => {
    const full = uri === 'user@' ? server.uri(MAIN).replace('http://', 'http://user@') : uri.startsWith('/') ? server.uri(uri) : uri;
    const before = server.seen.length;
    expect(await outcome(t.gate, await statusToken(keys.a, full, 0))).toEqual({ kind: 'deny', reason: 'status_uri_not_allowed', status: 401 });
    expect(server.seen.length).toBe(before);
  });

  it('required: a token of issuer B without a status claim → status_missing', async () => {
    expect(await outcome(t.gate, await sign(keys.b, { iss: ISSUER_B, jti: 'b-none' }))).toEqual({ kind: 'deny', reason: 'status_missing', status: 401 });
  });

  it("a list is verified with the tokens' own issuer: B's token pointing at a list signed by A → status_list_signature", async () => {
    const path = '/b/signed-by-a';
    server.lists.set(path, await cliList(keys.a, { uri: server.uri(path), bits: 1, size: 16, iat: NOW, statuses: new Map() }));
    expect(await outcome(t.gate, await statusToken(keys.b, server.uri(path), 0, { iss: ISSUER_B }))).toMatchObject({ reason: 'status_list_signature' });
    const ok = '/b/signed-by-b';
    server.lists.set(ok, await cliList(keys.b, { uri: server.uri(ok), bits: 1, size: 16, iat: NOW, statuses: new Map() }));
    expect(await outcome(t.gate, await statusToken(keys.b, server.uri(ok), 0, { iss: ISSUER_B }))).toMatchObject({ reason: 'granted' });
  });

  it('an issuer without a status_list block: the claim is not acted on and nothing is fetched', async () => {
    const before = server.seen.length;
    expect(await outcome(t.gate, await statusToken(keys.b, server.uri('/status/never'), 0, { iss: THIRD }))).toMatchObject({ reason: 'granted' });
    expect(server.seen.length).toBe(before);
  });
});

describe('list lifetime on the gate clock', () => {
  it('a held list past its exp with no newer copy → 503 status_list_stale; /readyz names it, the gate stays ready', async () => {
    const path = '/status/short-exp';
    server.lists.set(path, await cliList(keys.a, { uri: server.uri(path), bits: 1, size: 16, iat: NOW, expSeconds: 30, statuses: new Map() }));
    const token = await statusToken(keys.a, server.uri(path), 0);
    expect(await outcome(t.gate, token)).toMatchObject({ reason: 'granted' });
    try {
      t.clock.advance(36_000); // exp + 5 s tolerance passed
      expect(await outcome(t.gate, token)).toEqual({ kind: 'unavailable', reason: 'status_list_stale', status: 503 });
      const r = t.gate.readiness();
      expect(r.problems).toContain(`status list ${server.uri(path)} of issuer https://broker.internal expired and no newer copy came`);
      expect(r.ready).toBe(true);
    } finally {
      t.clock.set(NOW * 1000);
    }
  });
});
