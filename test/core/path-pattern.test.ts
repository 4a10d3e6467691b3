import { describe, expect, it } from 'vitest';
import { compilePattern, matchPattern } from '../../src/core/path-pattern.ts';
import { parseTarget } from '../../src/core/request-target.ts';

function segmentsOf(raw: string): readonly string[] {
  const r = parseTarget(raw);
  if (!r.ok) throw new Error(`test target ${raw} refused: ${r.reason}`);
  return r.target.segments;
}

function matches(pattern: string, target: string): boolean {
  const p = compilePattern(pattern);
  if (p === null) throw new Error(`test pattern ${pattern} is malformed`);
  return matchPattern(p, segmentsOf(target));
}

const cases: ReadonlyArray<readonly [pattern: string, yes: readonly string[], no: readonly string[]]> = [
  ['/orders/42', ['/orders/42', '/orders/42?x=1'], ['/orders/42/', '/orders/42/x', '/Orders/42', '/orders/421', '/orders', '/']],
  ['/orders/*', ['/orders/42', '/orders/*', '/orders/%2A', '/orders/a%20b'], ['/orders', '/orders/', '/orders/42/x', '/orders/42/']],
  [
    '/orders/42/**',
    ['/orders/42', '/orders/42/', '/orders/42/a/b', '/orders/42/a/b/', '/orders/42/..a'],
    ['/orders/421', '/orders/4', '/orders', '/orders/', '/', '/orders/43/a'],
  ],
  ['/orders/*/items', ['/orders/7/items', '/orders/x%20y/items'], ['/orders/items', '/orders/7/items/', '/orders/7/8/items']],
  ['/orders/', ['/orders/'], ['/orders', '/orders/42', '/']],
  ['/', ['/', '/?q'], ['/a', '/a/']],
  ['/**', ['/', '/a', '/a/', '/a/b/c'], []],
  ['/*', ['/a', '/*'], ['/', '/a/', '/a/b']],
  ['/*/', ['/a/'], ['/a', '/', '/a/b']],
  ['/*/**', ['/a', '/a/', '/a/b'], ['/']],
  ['/files/a%20b', ['/files/a%20b'], ['/files/a+b', '/files/ab']],
  ['/caf%C3%A9', ['/caf%c3%a9', '/caf%C3%A9'], ['/cafe', '/CAF%C3%A9']],
  // Written decoded (SPEC §1: a literal matches the same decoded segment): a raw space or
  // non-ASCII character means what its percent-encoding means.
  ['/files/a b', ['/files/a%20b'], ['/files/a+b', '/files/ab', '/files/a_b']],
  ['/café/**', ['/caf%C3%A9', '/caf%c3%a9/x'], ['/cafe', '/caf%C3%89']],
  ['/档案/😀', ['/%E6%A1%A3%E6%A1%88/%F0%9F%98%80'], ['/%E6%A1%A3%E6%A1%88']],
  ['/a b/caf%C3%A9', ['/a%20b/caf%C3%A9'], []],
  ['/a~b', ['/a%7Eb', '/a%7eb', '/a~b'], ['/ab']],
  ['/a%7eb', ['/a~b'], []],
  ['/a;b', ['/a;b', '/a%3Bb'], ['/a']],
];

describe('matchPattern', () => {
  for (const [pattern, yes, no] of cases) {
    describe(pattern, () => {
      for (const t of yes) it(`matches ${t}`, () => expect(matches(pattern, t)).toBe(true));
      for (const t of no) it(`does not match ${t}`, () => expect(matches(pattern, t)).toBe(false));
    });
  }

  it('is case-sensitive on literals', () => {
    expect(matches('/Orders', '/orders')).toBe(false);
    expect(matches('/Orders', '/Orders')).toBe(true);
  });
});

describe('compilePattern', () => {
  it('keeps the source and freezes the compiled form', () => {
    const p = compilePattern('/orders/*/items/**');
    expect(p).not.toBeNull();
    expect(p!.source).toBe('/orders/*/items/**');
    expect(Object.isFrozen(p)).toBe(true);
    expect(Object.isFrozen(p!.parts)).toBe(true);
  });

  it.each([
    ['not absolute', ['', 'orders', '*', '**', 'orders/*', ' /a', 'http://x/a']],
    ['empty segments', ['//', '//a', '/a//b', '/a//', '/;x', '/a/;x']],
    ['dot segments', ['/.', '/..', '/a/./b', '/a/..', '/a/../b', '/%2e', '/%2E%2e', '/..;', '/.;x', '/a/..;x/b']],
    ['partial or misplaced globs', ['/a*', '/*b', '/a*b', '/***', '/**/a', '/a/**/b', '/**/', '/*/**/**', '/a/%2A', '/%2A%2A', '/a%2Ab']],
    ['bad encoding', ['/a%', '/a%2', '/a%zz', '/a%252e', '/a%C0%AE', '/%FF', '/%ED%A0%80']],
    ['encoded structure or controls', ['/a%2Fb', '/a%2fb', '/a%5Cb', '/a\\b', '/a%00', '/a%0A', '/a%7F', '/a%C2%85']],
    ['raw controls and lone surrogates', ['/a\tb', '/a\nb', '/a\u007fb', '/\ud800', '/caf\u00e9\udc00', '/a\u0085b']],
    ['query or fragment', ['/a?', '/a?x=1', '/?', '/a#x']],
    ['confusables', ['/%EF%BC%8E%EF%BC%8E', '/a%EF%BC%8Fb', '/a%EF%BC%BCb']],
    ['too long', ['/' + 'a'.repeat(9000)]],
  ] as const)('refuses %s', (_, sources) => {
    for (const s of sources) expect(compilePattern(s), JSON.stringify(s)).toBeNull();
  });

  it('refuses non-string input from untyped claims', () => {
    expect(compilePattern(42 as unknown as string)).toBeNull();
    expect(compilePattern(null as unknown as string)).toBeNull();
  });

  it.each(['/', '/**', '/*', '/a', '/a/', '/a/*/b/**', '/a%20b', '/caf%C3%A9', '/a b', '/café', '/😀', "/!$&'()+,;=:@-._~", '/...', '/.well-known/**'])(
    'accepts %s',
    (s) => {
      expect(compilePattern(s)).not.toBeNull();
    },
  );
});
