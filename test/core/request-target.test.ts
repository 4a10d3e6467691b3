import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_TARGET_LENGTH, encodeSegment, parseTarget, type TargetReason } from '../../src/core/request-target.ts';

const refusals: ReadonlyArray<readonly [TargetReason, readonly string[]]> = [
  [
    'bad_request_target',
    ['', '*', 'http://x/a', 'https://example.com/', 'example.com:443', 'a/b', '?x', ' /a', '\\a', '/a#frag', '/a?b#c', '#'],
  ],
  ['path_backslash', ['/a\\b', '/\\', '/a/\\/b', '/a%5cb', '/a%5Cb', '/%5C%5C', '/a/%5c..', '/x%41\\']],
  [
    'path_control_char',
    [
      '/a b', '/a\tb', '/a\nb', '/a\rb', '/a\u0000b', '/a\u007fb', '/a\u001fb',
      '/a%00b', '/a%0a', '/a%0A', '/a%0d%0a', '/a%1f', '/a%7f', '/a%7F', '/%09',
      '/café', '/a\u00a0', '/\u{1F600}', '/a\ud800', '/a\udc00b', '/\ud83d', // raw non-ASCII, lone surrogates
      '/a?q=1 2', '/a?q=\u0000', '/a?é', // the query is checked for the raw character set too
      '/a%C2%80', '/a%C2%9F', '/a%c2%85', // C1 controls (NEL …) after decoding
    ],
  ],
  ['path_bad_encoding', ['/a%', '/a%2', '/a%zz', '/a%2g', '/a%g2', '/%/b', '/a%2/b', '/a%?x=1', '/%%41', '/%-1', '/%+1']],
  ['path_encoded_slash', ['/a%2Fb', '/a%2fb', '/%2F', '/a/%2f..%2f', '/%2F%2F']],
  ['path_double_encoding', ['/%252e%252e/x', '/%252E', '/a%252Fb', '/a%255C', '/a%2500', '/%25%32%65', '/%2541%25']],
  [
    'path_dot_segment',
    [
      '/.', '/..', '/a/.', '/a/..', '/./a', '/../a', '/a/./b', '/a/../b', '/.?x', '/../',
      '/%2e', '/%2E', '/%2e/', '/%2e%2e', '/%2E%2e', '/%2e%2E/x', '/.%2e', '/%2e.', '/a/.%2E/b',
      '/..;/', '/..;', '/.;x', '/a/..;jsessionid=x/b', '/..;jsessionid=1', '/%2e%2e;foo', '/.%3b', '/..%3Bx',
    ],
  ],
  ['path_empty_segment', ['//', '//a', '/a//b', '/a//', '/a///', '///', '/;x', '/a/;jsessionid=1/b', '/a/%3Bx', '/a//?q']],
  [
    'path_invalid_utf8',
    [
      '/%C0%AE', '/%c0%ae', '/%E0%80%AE', '/%C0%AF', '/%C1%BF', '/%F0%80%80%AE', // overlong
      '/%FF', '/%FE', '/%80', '/a%BFb', '/%F8%88%80%80%80', // never valid / stray continuation
      '/%E2%82', '/%E2%82/x', '/%C3', '/%F0%9F%98', // truncated
      '/%ED%A0%80', '/%ED%BF%BF', '/%ED%A0%BD%ED%B8%80', // CESU-8 / UTF-8-encoded surrogates
      '/%F4%90%80%80', '/%F5%80%80%80', // beyond U+10FFFF
    ],
  ],
  [
    'path_unicode_confusable',
    [
      '/%EF%BC%8E%EF%BC%8E', '/a/%EF%BC%8E%EF%BC%8E/b', '/%EF%BC%8E', '/.%EF%BC%8E', '/%EF%BC%8E%EF%BC%8E;x', // ．．
      '/a%EF%BC%8Fb', '/%EF%BC%8F', // ／
      '/a%EF%BC%BCb', '/%EF%B9%A8', // ＼, small reverse solidus
      '/%E2%80%A5', '/%E2%80%A4', // two/one dot leader ‥ ․
      '/%EF%BC%9Bx', // fullwidth semicolon: empty head after folding
      '/%EF%BC%85%EF%BC%92%EF%BD%85', // ％２ｅ folds to %2e
    ],
  ],
  ['path_too_long', ['/' + 'a'.repeat(DEFAULT_MAX_TARGET_LENGTH), '/a?' + 'q'.repeat(DEFAULT_MAX_TARGET_LENGTH)]],
];

describe('parseTarget refusals', () => {
  for (const [reason, targets] of refusals) {
    describe(reason, () => {
      it.each(targets.map((t) => [JSON.stringify(t), t]))('%s', (_, raw) => {
        expect(parseTarget(raw)).toEqual({ ok: false, reason });
      });
    });
  }
});

const accepted: ReadonlyArray<readonly [raw: string, path: string, segments: readonly string[], query: string]> = [
  ['/', '/', [], ''],
  ['/?', '/', [], '?'],
  ['/?a=1&b=%2F..', '/', [], '?a=1&b=%2F..'],
  ['/orders/42', '/orders/42', ['orders', '42'], ''],
  ['/orders/42/', '/orders/42/', ['orders', '42', ''], ''],
  ['/orders/', '/orders/', ['orders', ''], ''],
  ['/a?', '/a', ['a'], '?'],
  ['/a%7eb', '/a~b', ['a~b'], ''],
  ['/a%7Eb', '/a~b', ['a~b'], ''],
  ['/caf%c3%a9', '/caf%C3%A9', ['café'], ''],
  ['/caf%C3%A9', '/caf%C3%A9', ['café'], ''],
  ['/a%20b', '/a%20b', ['a b'], ''],
  ['/%41%42c', '/ABc', ['ABc'], ''],
  ['/a%25zz', '/a%25zz', ['a%zz'], ''],
  ['/a%25', '/a%25', ['a%'], ''],
  ['/a%252', '/a%252', ['a%2'], ''],
  ['/a"b', '/a%22b', ['a"b'], ''],
  ['/a{b}|c^`<>[]', '/a%7Bb%7D%7Cc%5E%60%3C%3E%5B%5D', ['a{b}|c^`<>[]'], ''],
  ["/!$&'()*+,;=:@-._~", "/!$&'()*+,;=:@-._~", ["!$&'()*+,;=:@-._~"], ''],
  ['/a;jsessionid=1', '/a;jsessionid=1', ['a;jsessionid=1'], ''],
  ['/a%3Bb', '/a;b', ['a;b'], ''],
  ['/...', '/...', ['...'], ''],
  ['/.a/..b/a.', '/.a/..b/a.', ['.a', '..b', 'a.'], ''],
  ['/.well-known/x', '/.well-known/x', ['.well-known', 'x'], ''],
  ['/%F0%9F%98%80', '/%F0%9F%98%80', ['\u{1F600}'], ''],
  ['/%EF%BB%BFa', '/%EF%BB%BFa', ['\ufeffa'], ''], // a BOM is kept, not dropped
  ['/%E2%80%A6', '/%E2%80%A6', ['\u2026'], ''], // ellipsis folds to '...', which is no dot segment
  ['/%EF%BC%A1', '/%EF%BC%A1', ['\uff21'], ''], // fullwidth A: folds, but to nothing structural
  ['/%E2%88%95', '/%E2%88%95', ['\u2215'], ''], // division slash: NFKC-stable, so not refused (SPEC uses NFKC)
  ['/*', '/*', ['*'], ''],
  ['/a/b/c?d', '/a/b/c', ['a', 'b', 'c'], '?d'],
];

describe('parseTarget accepts and canonicalizes', () => {
  it.each(accepted.map((r) => [JSON.stringify(r[0]), ...r] as const))(
    '%s',
    (_, raw, path, segments, query) => {
      expect(parseTarget(raw)).toEqual({ ok: true, target: { path, segments, query } });
    },
  );

  it('keeps the query verbatim, including characters the path would refuse', () => {
    const q = '?x=%2e%2e/../%5C\\&y=%zz&z=%252e';
    expect(parseTarget('/a' + q)).toEqual({ ok: true, target: { path: '/a', segments: ['a'], query: q } });
  });

  it('returns the raw path itself when nothing changes', () => {
    const raw = '/orders/42/items';
    const r = parseTarget(raw);
    expect(r.ok && r.target.path).toBe(raw);
  });
});

describe('parseTarget length limit', () => {
  it('accepts a target of exactly the limit', () => {
    const raw = '/' + 'a'.repeat(DEFAULT_MAX_TARGET_LENGTH - 1);
    expect(parseTarget(raw).ok).toBe(true);
  });
  it('honours a custom limit, counting the query', () => {
    expect(parseTarget('/abcd', 5).ok).toBe(true);
    expect(parseTarget('/abcde', 5)).toEqual({ ok: false, reason: 'path_too_long' });
    expect(parseTarget('/a?bcd', 5)).toEqual({ ok: false, reason: 'path_too_long' });
  });
  it('fails closed on a nonsensical limit', () => {
    expect(parseTarget('/a', Number.NaN)).toEqual({ ok: false, reason: 'path_too_long' });
    expect(parseTarget('/a', -1)).toEqual({ ok: false, reason: 'path_too_long' });
  });
  it('decodes segments longer than the default scratch buffer', () => {
    const seg = '%41'.repeat(5000);
    const r = parseTarget('/' + seg, 20_000);
    expect(r.ok && r.target.segments).toEqual(['A'.repeat(5000)]);
  });
});

describe('parseTarget precedence', () => {
  it.each([
    ['/a b/%2F', 'path_control_char'], // raw character set first
    ['/%2F/a b', 'path_control_char'],
    ['/..?#', 'bad_request_target'],
    ['/%2F/..', 'path_encoded_slash'], // then segments left to right
    ['/../%2F', 'path_dot_segment'],
    ['/a//..', 'path_empty_segment'],
  ] as const)('%s → %s', (raw, reason) => {
    expect(parseTarget(raw)).toEqual({ ok: false, reason });
  });
});

describe('the forwarded (canonical) target', () => {
  it('keeps an encoded ? and # encoded when allow_dot_like_segments lets them through', () => {
    expect(parseTarget('/%3F%23', undefined, true)).toEqual({ ok: true, target: { path: '/%3F%23', segments: ['?#'], query: '' } });
  });

  it('is bounded by the limit too: raw characters that are re-encoded cannot triple what the backend receives (a review)', () => {
    const raw = `/m/${'"'.repeat(3000)}`;
    expect(raw.length).toBeLessThanOrEqual(8192);
    expect(parseTarget(raw)).toEqual({ ok: false, reason: 'path_too_long' });
    const fits = `/m/${'"'.repeat(2700)}?q=1`;
    const r = parseTarget(fits);
    expect(r.ok && r.target.path.length + r.target.query.length).toBe(3 + 2700 * 3 + 4);
  });
});

describe('encodeSegment', () => {
  it.each([
    ['', ''],
    ['abc', 'abc'],
    ['a b', 'a%20b'],
    ['a/b', 'a%2Fb'],
    ['a\\b', 'a%5Cb'],
    ['%', '%25'],
    ['?#', '%3F%23'],
    ['café', 'caf%C3%A9'],
    ['\u{1F600}', '%F0%9F%98%80'],
    ['\u0000\u007f', '%00%7F'],
    ["!$&'()*+,;=:@-._~", "!$&'()*+,;=:@-._~"],
    ['\ud800', '%EF%BF%BD'], // lone surrogates become U+FFFD instead of throwing
    ['a\udc00b', 'a%EF%BF%BDb'],
    ['\ud800\ud800\udc00', '%EF%BF%BD%F0%90%80%80'],
  ])('%j → %s', (decoded, encoded) => {
    expect(encodeSegment(decoded)).toBe(encoded);
  });

  it('agrees with encodeURIComponent on well-formed text (modulo the kept sub-delims)', () => {
    const s = 'a b/c?d#e%f\u00e9\u4e2d\u{1F600}';
    expect(encodeSegment(s)).toBe(encodeURIComponent(s));
  });
});
