/**
 * Member names written with escapes, and V8's cached names (src/core/json-parse.ts). A review found that after
 * one parse of `{"a":1,"\\u0":2}`, V8's JSON.parse read `{"a":1,"\u0063nf":…}` with a member `\u0` instead of
 * `cnf`; since a token is parsed before its signature is checked, one unsigned request made a later signed token
 * lose its DPoP binding and slip a repeated member past the duplicate check. Every test here primes the cache
 * first, as the attacker would, and then asks what the text means.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import { parseJson } from '../../src/core/json-parse.ts';
import { bearer, input, makeGate, makeTestKeys, type TestGate, type TestKeys } from '../fixtures/gate.ts';
import { b64u, grantPayload, signRaw } from '../fixtures/tokens.ts';

/** Parses `poison` the way any JSON reader in the process might (it is refused by us, see below). */
const prime = (poison: string): unknown => JSON.parse(poison);

describe('parseJson', () => {
  it('reads an escaped member name as JSON means it, after the cache holds a name that is its raw prefix', () => {
    prime('{"a":1,"\\\\u0":2}');
    expect(Object.keys(parseJson('{"a":1,"\\u0063nf":{"jkt":"x"}}') as object)).toEqual(['a', 'cnf']);
    prime('{"sub":"alice","\\\\":0}');
    expect(parseJson('{"sub":"alice","\\u0073":"admin"}')).toEqual({ sub: 'alice', s: 'admin' });
  });

  it.each([
    ['{"\\\\u0":1}', 'a backslash'],
    ['{"a\\"b":1}', 'a quote'],
    ['{"\\n":1}', 'a control character'],
    ['{"x":{"\\u0000":1}}', 'NUL, nested'],
  ])('refuses a member name that needs an escape even unescaped: %s (%s)', (text) => {
    expect(() => parseJson(text)).toThrow(SyntaxError);
  });

  it('keeps the escapes of values, and of strings that only look like names inside values', () => {
    expect(parseJson('{"a":"\\u0063\\n\\"","b":["\\\\",":"],"c":"\\":"}')).toEqual({ a: 'c\n"', b: ['\\', ':'], c: '":' });
  });

  it('throws for what JSON.parse throws for', () => {
    for (const bad of ['{"a\\q":1}', '{"a\\u00zz":1}', '{"a\\', '{"\\u0061":}', '{"a":1,}']) expect(() => parseJson(bad)).toThrow(SyntaxError);
  });

  it('names written with random escapes read as the same value as the plain text, cache primed or not', () => {
    // Names from printable characters that need no escape; each character written as \uXXXX with some chance.
    const nameChar = fc.integer({ min: 0x20, max: 0x7e }).filter((c) => c !== 0x22 && c !== 0x5c);
    const name = fc.array(nameChar, { minLength: 1, maxLength: 8 }).map((cs) => String.fromCharCode(...cs));
    const obj = fc.dictionary(name, fc.oneof(fc.integer(), fc.string(), fc.dictionary(name, fc.integer(), { maxKeys: 3 })), { minKeys: 1, maxKeys: 6 });
    fc.assert(
      fc.property(obj, fc.array(fc.boolean(), { minLength: 64, maxLength: 64 }), (value, coins) => {
        let k = 0;
        const primes: string[] = [];
        /** A name with some characters escaped; the attacker's object: the members before it, then its raw prefix. */
        const escapedName = (n: string, before: readonly string[]): string => {
          const raw = [...n].map((ch) => (coins[k++ % 64] ? `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}` : ch)).join('');
          if (raw !== n) primes.push(`{${[...before, raw.slice(0, n.length)].map((b) => `${JSON.stringify(b)}:0`).join(',')}}`);
          return `"${raw}"`;
        };
        const write = (v: unknown): string => {
          if (typeof v !== 'object' || v === null) return JSON.stringify(v);
          const names = Object.keys(v);
          return `{${names.map((n, i) => `${escapedName(n, names.slice(0, i))}:${write((v as Record<string, unknown>)[n])}`).join(',')}}`;
        };
        const escaped = write(value);
        for (const p of primes) prime(p);
        expect(parseJson(escaped)).toEqual(value);
      }),
      { numRuns: 500 },
    );
  });
});

describe('a gate after an unsigned request that primes the cache', () => {
  let keys: TestKeys;
  let g: TestGate;
  beforeAll(async () => {
    keys = await makeTestKeys();
    g = await makeGate(keys);
  });
  afterAll(async () => {
    g?.gate.stop();
    if (g !== undefined) await rm(g.dir, { recursive: true, force: true });
  });

  const header = (): Record<string, unknown> => ({ alg: keys.a.alg, kid: keys.a.kid, typ: 'jit+jwt' });
  const body = (jti: string): string => JSON.stringify(grantPayload({ jti })).slice(0, -1);
  /** The poison: same header and members, then a name equal to the raw prefix of the escaped one. Refused. */
  const poison = async (jti: string, prefix: string) => {
    const t = `${b64u(header())}.${b64u(`${body(jti)},${JSON.stringify(prefix)}:0}`)}.AAAA`;
    const d = await g.gate.decide(input('GET', '/orders/42', bearer(t)));
    expect(d.kind).toBe('deny');
  };
  const decide = async (token: string) => {
    const d = await g.gate.decide(input('GET', '/orders/42', bearer(token)));
    return `${d.kind}:${d.reason}`;
  };

  it('a certificate-of-possession claim written "\\u0063nf" still binds the token (it was dropped: 200 as Bearer)', async () => {
    const token = await signRaw(keys.a, header(), `${body('cnf-1')},"\\u0063nf":{"jkt":"${'A'.repeat(43)}"}}`);
    await poison('cnf-1', '\\u0');
    expect(await decide(token)).toMatch(/^deny:dpop_/);
  });

  it('a repeated member written "\\u0073ub" is still a repeated member (it was read as another name: allowed)', async () => {
    const token = await signRaw(keys.a, header(), `${body('dup-1')},"\\u0073ub":"admin"}`);
    await poison('dup-1', '\\u0');
    expect(await decide(token)).toBe('deny:malformed_token');
  });

  it('an unsigned token naming a member with a backslash is refused as malformed, before any signature work', async () => {
    const t = `${b64u(header())}.${b64u(`${body('p-1')},"\\\\u0":0}`)}.AAAA`;
    expect(await decide(t)).toBe('deny:malformed_token');
  });
});
