/**
 * jose is the oracle of our compact-JWS verifier (src/core/jws-compact.ts, jws-signature.ts,
 * token.ts; issue 20). The same tokens go to verifyToken (synchronous and thread-pool forms) and
 * to jose's jwtVerify with the same keys (the CryptoKeys jose imported), the same alg allowlist,
 * the same typ and the same clock; both sides then apply jitgate's own rules (claims, grants).
 * Required: the same accept/reject for every token, and for accepted tokens the same claims.
 *
 * Our verifier may be stricter than jose in exactly the documented ways (jws-compact.ts): a
 * character outside the base64url alphabet, a member named twice, a `crit` header, a `b64` header
 * other than `true` (token.ts), a member name holding `"`, `\` or a control character (json-parse.ts). The oracle
 * applies those to jose's result, so a token jose accepts and we refuse for another cause fails.
 */
import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { errors, jwtVerify, type JWTPayload } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { BadSignatureCache } from '../../src/cache/bad-signatures.ts';
import { checkClaims, checkTime } from '../../src/core/claims.ts';
import { compileGrants } from '../../src/core/grant.ts';
import { hasDuplicateKeys } from '../../src/core/json-duplicates.ts';
import { parseCompactJws } from '../../src/core/jws-compact.ts';
import type { GatePolicy } from '../../src/core/policy.ts';
import { acceptedToken, RefusedToken, verifyToken, type VerifyOutcome } from '../../src/core/token.ts';
import type { VerifyMode } from '../../src/core/verify-mode.ts';
import type { IssuerKeys } from '../../src/keys/issuer-keys.ts';
import { importJwks, type KeySet } from '../../src/keys/key-set.ts';
import { gatePolicy, issuerPolicy } from '../fixtures/policy.ts';
import { makeKey, type TestKey } from '../fixtures/keys.ts';
import { ISSUER_A, ISSUER_B, NOW } from '../fixtures/tokens.ts';
import { claims, claimsArbitrary, ecdsaEdgeSignatures, handCases, header, highS, mutations, rawSignature, signBytes } from './jws-corpus.ts';

const ALGS_A = ['EdDSA', 'Ed25519', 'ES256', 'ES384', 'PS256', 'RS256'] as const;
const NOW_MS = NOW * 1000;

interface Keys {
  readonly es256: TestKey;
  readonly es384: TestKey;
  readonly ps256: TestKey;
  readonly rs256: TestKey;
  readonly ed: TestKey;
  readonly ed25519: TestKey;
  /** RSA without `alg` in its JWK: usable for PS256 and RS256, for cross-padding cases. */
  readonly rsaAny: TestKey;
  /** RSA-1024: jose imports it but refuses to verify with it; jitgate skips it when importing the set. */
  readonly rsaSmall: TestKey;
  readonly b: TestKey;
  /** Same kid as es256, not published. */
  readonly stranger: TestKey;
}

function rsaKey(kid: string, bits: number, alg: string | undefined): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  const publicJwk = { ...publicKey.export({ format: 'jwk' }), kid, use: 'sig', ...(alg === undefined ? {} : { alg }) };
  return { kid, alg: alg ?? 'RS256', privateKey: privateKey as never, publicJwk };
}

let keys: Keys;
let policy: GatePolicy;
const sets = new Map<string, KeySet>();

beforeAll(async () => {
  const [es256, es384, ps256, rs256, ed, ed25519, b, stranger] = await Promise.all([
    makeKey('ES256', 'es256'),
    makeKey('ES384', 'es384'),
    makeKey('PS256', 'ps256'),
    makeKey('RS256', 'rs256'),
    makeKey('EdDSA', 'ed'),
    makeKey('Ed25519', 'ed25519'),
    makeKey('ES256', 'b'),
    makeKey('ES256', 'es256'),
  ]);
  keys = { es256, es384, ps256, rs256, ed, ed25519, b, stranger, rsaAny: rsaKey('rsa-any', 2048, undefined), rsaSmall: rsaKey('rsa-small', 1024, 'RS256') };
  const a = await importJwks({ keys: [es256, es384, ps256, rs256, ed, ed25519, keys.rsaAny, keys.rsaSmall].map((k) => k.publicJwk) }, [...ALGS_A]);
  const bSet = await importJwks({ keys: [b.publicJwk] }, ['ES256']);
  // RSA-1024 is skipped when the set is imported (jose would refuse to verify with it), with why.
  expect(a.set.size).toBe(7);
  expect(a.skipped).toEqual([expect.stringContaining('an RSA key of 1024 bits; at least 2048 are needed')]);
  sets.set(ISSUER_A, a.set);
  sets.set(ISSUER_B, bSet.set);
  policy = gatePolicy([issuerPolicy(ISSUER_A, sets.get(ISSUER_A)!, ALGS_A, 'jit+jwt'), issuerPolicy(ISSUER_B, sets.get(ISSUER_B)!, ['ES256'], undefined)], new Map([['read', ['GET', 'HEAD']]]));
});

type Verdict = { ok: true; payload: JWTPayload } | { ok: false; why: string };

const BASE64URL_COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** jose's verdict under jitgate's rules: jwtVerify per issuer, then the rules jitgate adds. */
async function oracle(token: string): Promise<Verdict> {
  if (token.length > policy.maxTokenBytes) return { ok: false, why: 'too large' };
  for (const issuer of policy.issuers.values()) {
    const set = sets.get(issuer.issuer)!;
    let r;
    try {
      r = await jwtVerify(
        token,
        (h) => {
          const k = set.entryFor(h.kid, h.alg)?.keys.get(h.alg);
          if (k === undefined) throw new Error('no key');
          return k;
        },
        { algorithms: [...issuer.algorithms], typ: issuer.typ, currentDate: new Date(NOW_MS), clockTolerance: issuer.toleranceSec },
      );
    } catch (err) {
      if (err instanceof errors.JWSSignatureVerificationFailed) return { ok: false, why: 'jose: signature' };
      continue;
    }
    if (r.payload.iss !== issuer.issuer) continue;
    // jitgate's documented extra strictness, on what jose accepted:
    if (!BASE64URL_COMPACT.test(token)) return { ok: false, why: 'stricter: not base64url' };
    if (r.protectedHeader.crit !== undefined) return { ok: false, why: 'stricter: crit' };
    if (r.protectedHeader.b64 !== undefined && r.protectedHeader.b64 !== true) return { ok: false, why: 'stricter: b64 other than true' };
    const [h, p] = token.split('.').map((s) => new TextDecoder().decode(Buffer.from(s, 'base64url'))) as [string, string];
    if (hasDuplicateKeys(h, r.protectedHeader) || hasDuplicateKeys(p, r.payload)) return { ok: false, why: 'stricter: duplicate member' };
    if (nameNeedingEscape(r.protectedHeader) || nameNeedingEscape(r.payload)) return { ok: false, why: 'stricter: member name needing an escape' };
    if (typeof r.protectedHeader.kid === 'string' && r.protectedHeader.kid === '') return { ok: false, why: 'empty kid' };
    // jitgate's claim rules, the same code for both sides.
    const c = checkClaims(r.payload, issuer, policy.audience);
    if (typeof c === 'string') return { ok: false, why: c };
    const late = checkTime(c, NOW, issuer.toleranceSec);
    if (late !== undefined) return { ok: false, why: late };
    if (compileGrants(r.payload.authorization_details, policy.grant) === null) return { ok: false, why: 'invalid_grant' };
    return { ok: true, payload: r.payload };
  }
  return { ok: false, why: 'jose: refused' };
}

/** Some member name, at any depth, holds `"`, `\` or a control character. */
function nameNeedingEscape(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  if (Array.isArray(v)) return v.some(nameNeedingEscape);
  return Object.entries(v).some(([k, x]) => /["\\\u0000-\u001f]/.test(k) || nameNeedingEscape(x));
}

/** The outcome's refusal reason (before or after the signature check), or undefined for a verified token. */
function refusalOf(outcome: VerifyOutcome): string | undefined {
  if (typeof outcome === 'string') return outcome;
  return outcome instanceof RefusedToken ? outcome.reason : undefined;
}

const stats = { compared: 0, accepted: 0, stricter: 0, badSignatureBoth: 0 };

async function compare(token: string, mode: VerifyMode): Promise<void> {
  const [ours, theirs] = await Promise.all([Promise.resolve(verifyToken(token, policy, NOW_MS, { mode, badSignatures: undefined })), oracle(token)]);
  const v = acceptedToken(ours);
  const accepted = v !== undefined;
  if (accepted !== theirs.ok) {
    expect.fail(`disagreement on ${JSON.stringify(token)} (${mode}): ours ${accepted ? 'accept' : refusalOf(ours)}, jose ${theirs.ok ? 'accept' : theirs.why}`);
  }
  stats.compared++;
  if (!theirs.ok) {
    if (theirs.why.startsWith('stricter')) stats.stricter++;
    if (theirs.why === 'jose: signature' && ours === 'bad_signature') stats.badSignatureBoth++;
    return;
  }
  stats.accepted++;
  if (v === undefined) return expect.fail('unreachable: accepted');
  const p = theirs.payload;
  // The same claims: the whole decoded payload, and every field the gate keeps from it.
  expect(parseCompactJws(token)?.payload).toStrictEqual(p);
  expect([v.iss, v.sub, v.jti, v.iat, v.exp, v.nbf, v.txn, v.act, v.cnfJkt]).toStrictEqual([
    p.iss,
    p.sub,
    p.jti,
    p.iat,
    p.exp,
    p.nbf,
    p.txn,
    p.act,
    (p.cnf as { jkt?: string } | undefined)?.jkt,
  ]);
  expect(v.grants.map((g) => g.index)).toStrictEqual(compileGrants(p.authorization_details, policy.grant)!.map((g) => g.index));
}

/** Every way a miss can be checked; 64 tokens in flight at once make `batch` check many per loop turn. */
const MODES: readonly VerifyMode[] = ['sync', 'batch', 'pool'];

async function compareAll(tokens: readonly string[]): Promise<void> {
  for (let i = 0; i < tokens.length; i += 64) {
    const batch = tokens.slice(i, i + 64);
    await Promise.all(batch.map((t, n) => compare(t, MODES[(i + n) % MODES.length]!)));
  }
}

function signingKeys(): TestKey[] {
  return [keys.es256, keys.es384, keys.ps256, keys.rs256, keys.ed, keys.ed25519, keys.rsaAny, keys.b];
}

describe('our JWS verifier against jose', () => {
  it('valid tokens of every allowed alg: accepted by both with the same claims', async () => {
    const tokens: string[] = [];
    for (const key of signingKeys()) {
      const iss = key === keys.b ? ISSUER_B : ISSUER_A;
      for (let i = 0; i < 20; i++) tokens.push(signBytes(key, JSON.stringify(header(key)), JSON.stringify(claims({ iss, jti: `j${i}` }))));
    }
    const before = stats.accepted;
    await compareAll(tokens);
    expect(stats.accepted - before).toBe(tokens.length);
  });

  // Four seeded slices of 1,000 generated claim sets each (one test each, so a busy box never
  // pushes one test past its timeout).
  it.each([20, 21, 22, 23])('generated claims under every alg (seed %i): same accept/reject, same claims', async (seed) => {
    const tokens: string[] = [];
    const samples = fc.sample(claimsArbitrary(), { numRuns: 1000, seed });
    const ks = signingKeys();
    samples.forEach((c, i) => {
      const key = ks[i % ks.length]!;
      // RSA signing costs ~1 ms (far more on a busy box): one RSA sample in ten is signed with its
      // RSA key, the others with the EC/Ed keys in turn.
      const k = key.publicJwk.kty === 'RSA' && i % 10 !== 0 ? ks[(i >> 3) % 3 === 0 ? 0 : (i >> 3) % 3 === 1 ? 4 : 5]! : key;
      tokens.push(signBytes(k, JSON.stringify(header(k)), JSON.stringify(c)));
    });
    const before = stats.accepted;
    await compareAll(tokens);
    expect(stats.accepted - before).toBeGreaterThan(25);
  });

  it('damaged tokens (bit flips, trailing bits, padding, whitespace, truncation, swaps): same verdicts', async () => {
    const rnd = fc.sample(fc.double({ min: 0, max: 0.999999, noNaN: true }), { numRuns: 20_000, seed: 7 });
    let r = 0;
    const next = (): number => rnd[r++ % rnd.length]!;
    const tokens: string[] = [];
    for (const key of signingKeys()) {
      const iss = key === keys.b ? ISSUER_B : ISSUER_A;
      for (let i = 0; i < 30; i++) tokens.push(...mutations(signBytes(key, JSON.stringify(header(key)), JSON.stringify(claims({ iss, jti: `m${i}` }))), next));
    }
    await compareAll(tokens);
  });

  it('hand cases (duplicates, crit, b64, alg tricks, BOM, UTF-8, JSON shapes, numbers) under every key', async () => {
    const tokens = signingKeys().flatMap((k) => handCases(k));
    await compareAll(tokens);
  });

  it('signature encodings: high-S accepted like jose; DER, wrong lengths, PSS salts, wrong curve, small RSA refused like jose', async () => {
    const body = JSON.stringify(claims());
    const tokens: string[] = [];
    const expectOk: string[] = [];
    for (const key of [keys.es256, keys.es384]) {
      const t = signBytes(key, JSON.stringify(header(key)), body);
      expectOk.push(highS(t, key.alg as 'ES256' | 'ES384'));
      tokens.push(signBytes(key, JSON.stringify(header(key)), body, { dsaEncoding: 'der' }));
    }
    // ES384 signature under an ES256 header and kid, and an ES256 signature claiming ES384.
    tokens.push(signBytes(keys.es384, JSON.stringify(header(keys.es256)), body));
    tokens.push(signBytes(keys.es256, JSON.stringify(header(keys.es384)), body));
    tokens.push(signBytes(keys.es384, JSON.stringify(header(keys.es384, { alg: 'ES256' })), body));
    tokens.push(signBytes(keys.stranger, JSON.stringify(header(keys.stranger)), body));
    tokens.push(signBytes(keys.b, JSON.stringify(header(keys.b)), body)); // B's key claiming A
    for (const saltLength of [0, 20, 31, 33, 64, 222]) tokens.push(signBytes(keys.rsaAny, JSON.stringify(header(keys.rsaAny, { alg: 'PS256' })), body, { as: 'PS256', saltLength }));
    expectOk.push(signBytes(keys.rsaAny, JSON.stringify(header(keys.rsaAny, { alg: 'PS256' })), body, { as: 'PS256', saltLength: 32 }));
    expectOk.push(signBytes(keys.rsaAny, JSON.stringify(header(keys.rsaAny, { alg: 'RS256' })), body, { as: 'RS256' }));
    tokens.push(signBytes(keys.rsaAny, JSON.stringify(header(keys.rsaAny, { alg: 'PS256' })), body, { as: 'RS256' }));
    tokens.push(signBytes(keys.rsaAny, JSON.stringify(header(keys.rsaAny, { alg: 'RS256' })), body, { as: 'PS256' }));
    tokens.push(signBytes(keys.rsaSmall, JSON.stringify(header(keys.rsaSmall)), body));
    // An Ed25519 key verifies under either name of the algorithm (RFC 8037, RFC 9864), as in jose.
    expectOk.push(signBytes(keys.ed, JSON.stringify(header(keys.ed, { alg: 'Ed25519' })), body));
    expectOk.push(signBytes(keys.ed25519, JSON.stringify(header(keys.ed25519, { alg: 'EdDSA' })), body));
    // A signature with one extra / one missing byte, and all zeros of the right length.
    const input = `${Buffer.from(JSON.stringify(header(keys.es256))).toString('base64url')}.${Buffer.from(body).toString('base64url')}`;
    const sig = rawSignature(keys.es256, input);
    tokens.push(`${input}.${Buffer.concat([sig, Buffer.from([0])]).toString('base64url')}`);
    tokens.push(`${input}.${sig.subarray(1).toString('base64url')}`);
    tokens.push(`${input}.${Buffer.alloc(64).toString('base64url')}`);
    await compareAll([...tokens, ...expectOk]);
    for (const t of expectOk) expect(typeof verifyToken(t, policy, NOW_MS)).toBe('object');
    for (const t of tokens) expect([t, refusalOf(verifyToken(t, policy, NOW_MS) as VerifyOutcome) !== undefined]).toStrictEqual([t, true]);
  });

  it('ECDSA r and s at the edges of the DER they become: leading zero bytes and high bits accepted, zero, n and all ones refused, like jose', async () => {
    for (const key of [keys.es256, keys.es384]) {
      const alg = key.alg as 'ES256' | 'ES384';
      const { valid, invalid } = ecdsaEdgeSignatures(key, alg, JSON.stringify(header(key)), JSON.stringify(claims()));
      await compareAll([...valid, ...invalid]);
      for (const t of valid) expect(typeof verifyToken(t, policy, NOW_MS)).toBe('object');
      for (const t of invalid) expect([t, verifyToken(t, policy, NOW_MS)]).toStrictEqual([t, 'bad_signature']);
    }
  });

  it('compared ≥ 10,000 tokens', () => {
    console.log(`jws differential: ${stats.compared} tokens compared, ${stats.accepted} accepted by both, ${stats.stricter} refused only by jitgate's documented rules, ${stats.badSignatureBoth} bad signatures on both sides`);
    expect(stats.compared).toBeGreaterThanOrEqual(10_000);
    expect(stats.badSignatureBoth).toBeGreaterThan(100);
  });
});

describe('forged tokens are remembered (BadSignatureCache)', () => {
  it('a replayed forged token is refused without a second verify; the genuine token sharing its signature is not', async () => {
    const good = signBytes(keys.es256, JSON.stringify(header(keys.es256)), JSON.stringify(claims()));
    const [h, , s] = good.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify(claims({ sub: 'admin' }))).toString('base64url')}.${s}`;
    const bad = new BadSignatureCache(16);
    const opts = { mode: 'sync' as const, badSignatures: bad };
    expect(verifyToken(forged, policy, NOW_MS, opts)).toBe('bad_signature');
    expect(bad.size).toBe(1);
    expect(bad.hits).toBe(0);
    expect(verifyToken(forged, policy, NOW_MS, opts)).toBe('bad_signature');
    expect(bad.hits).toBe(1);
    expect(typeof verifyToken(good, policy, NOW_MS, opts)).toBe('object');
    expect(await verifyToken(forged, policy, NOW_MS, { mode: 'pool', badSignatures: bad })).toBe('bad_signature');
    expect(bad.hits).toBe(2);
  });

  it('batch mode: the misses of one loop turn are checked together, each gets its own answer, forgeries are remembered', async () => {
    const bad = new BadSignatureCache(64);
    const opts = { mode: 'batch' as const, badSignatures: bad };
    const good = Array.from({ length: 8 }, (_, i) => signBytes(keys.es256, JSON.stringify(header(keys.es256)), JSON.stringify(claims({ jti: `b${i}` }))));
    const forged = good.map((t) => {
      const [h, , s] = t.split('.');
      return `${h}.${Buffer.from(JSON.stringify(claims({ sub: 'admin' }))).toString('base64url')}.${s}`;
    });
    const tokens = good.flatMap((t, i) => [t, forged[i]!]);
    const pending = tokens.map((t) => verifyToken(t, policy, NOW_MS, opts));
    for (const p of pending) expect(p).toBeInstanceOf(Promise);
    // Nothing is checked before the turn's I/O is done.
    expect(bad.size).toBe(0);
    const outcomes = await Promise.all(pending);
    expect(outcomes.map((o) => refusalOf(o) ?? acceptedToken(o)!.jti)).toStrictEqual(tokens.map((_, i) => (i % 2 === 0 ? `b${i / 2}` : 'bad_signature')));
    expect(bad.size).toBe(8);
    expect(verifyToken(forged[0]!, policy, NOW_MS, opts)).toBe('bad_signature');
  });

  it('is bounded, and a refusal stops counting when its key leaves the set', () => {
    const bad = new BadSignatureCache(4);
    const forged = (i: number): string => signBytes(keys.stranger, JSON.stringify(header(keys.stranger)), JSON.stringify(claims({ jti: `f${i}` })));
    const tokens = Array.from({ length: 6 }, (_, i) => forged(i));
    for (const t of tokens) expect(verifyToken(t, policy, NOW_MS, { mode: 'sync', badSignatures: bad })).toBe('bad_signature');
    expect(bad.size).toBe(4);
    expect(bad.has(tokens[0]!)).toBe(false);
    expect(bad.has(tokens[5]!)).toBe(true);
    // Same token, but its issuer's key set no longer holds the key it failed against.
    const entry = sets.get(ISSUER_A)!.entryFor('es256', 'ES256')!;
    const gone: IssuerKeys = { ...policy.issuers.get(ISSUER_A)!.keys, has: () => false };
    const other = new BadSignatureCache(4);
    other.add(tokens[5]!, gone, entry);
    expect(other.has(tokens[5]!)).toBe(false);
    expect(other.size).toBe(0);
  });

  it('an unknown issuer, alg or key is not remembered (no crypto was spent)', () => {
    const bad = new BadSignatureCache(16);
    const t = signBytes(keys.es256, JSON.stringify(header(keys.es256, { kid: 'nope' })), JSON.stringify(claims()));
    expect(verifyToken(t, policy, NOW_MS, { mode: 'sync', badSignatures: bad })).toBe('unknown_key');
    expect(bad.size).toBe(0);
  });
});
