/**
 * The decoded-header memo of parseCompactJws: tokens that share a header's text share its decoded,
 * frozen value; anything refused is refused every time; the memo's bound changes no answer.
 * (The accept/reject of every token against jose is jws-differential.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { parseCompactJws } from '../../src/core/jws-compact.ts';

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const token = (header: unknown, payload: unknown): string => `${b64(header)}.${b64(payload)}.${b64('signature')}`;

describe('parseCompactJws: decoded headers', () => {
  it('shares one frozen header between tokens with the same header text, each with its own claims', () => {
    const h = { alg: 'ES256', kid: 'k1', typ: 'jit+jwt', x: { nested: [1] } };
    const a = parseCompactJws(token(h, { jti: 'a' }))!;
    const b = parseCompactJws(token(h, { jti: 'b' }))!;
    expect(a.header).toBe(b.header);
    expect(a.header).toStrictEqual(h);
    expect([a.payload.jti, b.payload.jti]).toEqual(['a', 'b']);
    expect(Object.isFrozen(a.header)).toBe(true);
    expect(Object.isFrozen((a.header.x as { nested: unknown }).nested)).toBe(true);
    expect(() => {
      (a.header as Record<string, unknown>).alg = 'none';
    }).toThrow(TypeError);
    expect(parseCompactJws(token(h, { jti: 'c' }))!.header.alg).toBe('ES256');
  });

  it('decodes a header that differs in one character on its own', () => {
    const a = parseCompactJws(token({ alg: 'ES256', kid: 'k1' }, {}))!;
    const b = parseCompactJws(token({ alg: 'ES256', kid: 'k2' }, {}))!;
    expect([a.header.kid, b.header.kid]).toEqual(['k1', 'k2']);
  });

  it('refuses a bad header every time, also after a good one with the same claims', () => {
    for (const bad of ['{"alg":"ES256","alg":"none"}', '[1]', 'null', '{"alg":', '\u00ff'.repeat(3)]) {
      parseCompactJws(token({ alg: 'ES256' }, { n: 1 }));
      for (let i = 0; i < 3; i++) expect(parseCompactJws(`${b64(bad)}.${b64({ n: 1 })}.${b64('s')}`), bad).toBeUndefined();
    }
    // Invalid UTF-8 bytes in the header segment.
    const raw = Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]).toString('base64url');
    for (let i = 0; i < 2; i++) expect(parseCompactJws(`${raw}.${b64({})}.${b64('s')}`)).toBeUndefined();
  });

  it('gives the same answers past the bound of remembered headers', () => {
    const headers = Array.from({ length: 200 }, (_, i) => ({ alg: 'ES256', kid: `key-${i}` }));
    for (let round = 0; round < 2; round++) {
      for (const [i, h] of headers.entries()) expect(parseCompactJws(token(h, { i }))).toMatchObject({ header: h, payload: { i } });
    }
  });
});

describe('parseCompactJws: deeply nested headers', () => {
  it('answers a header nested to the limit of what the duplicate count can walk, and never throws', () => {
    for (const depth of [1_000, 5_000, 8_950, 9_000, 20_000, 100_000]) {
      const header = `{"alg":"ES256","x":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      const t = `${b64(header)}.${b64({ n: 1 })}.${b64('s')}`;
      for (let i = 0; i < 2; i++) {
        const r = parseCompactJws(t);
        if (r !== undefined) expect(r.header.alg).toBe('ES256');
      }
    }
  });
});
