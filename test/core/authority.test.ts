/**
 * Host / authority validation (issue 21 item 1; RFC 9112 §3.2, RFC 3986 §3.2.2–3.2.3): exactly one
 * `host [":" port]`, host a DNS-style reg-name, dotted-quad IPv4 or bracketed IPv6.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { authorityRefusal, isValidAuthority } from '../../src/core/authority.ts';

const VALID = [
  'orders.internal', 'orders.internal:8080', 'ORDERS.Internal', 'localhost', 'localhost:1', 'a', 'a-b_c~d.example.',
  '127.0.0.1', '127.0.0.1:443', 'a:0', '0.0.0.0', '255.255.255.255:65535', '10.0.0.1.', '[::1]', '[::1]:8443', '[2001:db8::7]',
  '[::ffff:10.0.0.1]:80', 'x1.example', 'v1.2.example', '1a.example', 'example.1a', 'example.0xg',
];

const INVALID = [
  '', ' ', 'orders.internal/admin?', 'x/admin#', 'orders.internal/admin', 'x#', 'x?', 'a b', 'orders.internal ', 'a\tb',
  'host:', 'host:0x1', 'host:00', 'host:080', 'host:08080', '[::1]:0443', 'host:65536', 'host:123456', 'host:-1', 'host:80:80', ':80', 'host: 80',
  '.example', 'a..b', '..', '.', 'a.b..', 'user@host', 'user:pw@host', 'a%2Fb', 'a%00', "a'b", 'a,b', 'a;b', 'a=b', 'a(b)', 'a*b',
  'a\\b', 'é.example', 'xn--e.example\u0000', 'a'.repeat(254),
  '::1', '[::1', '::1]', '[::1]x', '[::1]:', '[fe80::1%25eth0]', '[fe80::1%eth0]', '[v1.abc]', '[127.0.0.1]', '[]', '[:::1]',
  '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.04', '0x7f.1', '0x7f.0.0.1', 'example.123', 'example.0x1f', 'example.0x', '1.2.3.4:99999',
];

describe('isValidAuthority', () => {
  it.each(VALID)('%s is a valid authority', (s) => expect(isValidAuthority(s)).toBe(true));
  it.each(INVALID)('%j is refused', (s) => expect(isValidAuthority(s)).toBe(false));
});

describe('authorityRefusal', () => {
  it('names missing, duplicated and invalid apart', () => {
    expect(authorityRefusal(undefined, 0)).toBe('missing_host');
    expect(authorityRefusal('a', 2)).toBe('multiple_host');
    expect(authorityRefusal('a/b', 1)).toBe('invalid_host');
    expect(authorityRefusal('', 1)).toBe('invalid_host');
    expect(authorityRefusal('a:1', 1)).toBeUndefined();
  });
});

/** What a fetch-style backend makes of Host + target: the URL it routes. */
function urlOf(host: string, target: string): URL | null {
  return URL.parse(`http://${host}${target}`);
}

const hostChar = fc.constantFrom(...'ab0.-_~:[]/?#@%\\ é;,'.split(''), '::1', '0x', '255', '.1', ':80');

describe('authority properties', () => {
  it('an accepted authority never changes the path or query a URL builder sees, and names the same host back', () => {
    fc.assert(
      fc.property(fc.array(hostChar, { minLength: 1, maxLength: 10 }), (parts) => {
        const host = parts.join('');
        if (!isValidAuthority(host)) return;
        const u = urlOf(host, '/orders/42?x=1');
        expect(u).not.toBeNull();
        expect(u!.pathname).toBe('/orders/42');
        expect(u!.search).toBe('?x=1');
        expect(u!.username + u!.password).toBe('');
        // The host a URL builder derives is the one given (modulo case and a trailing dot).
        expect(u!.host.replace(/\.(?=$|:)/, '')).toBe(host.toLowerCase().replace(/\.(?=$|:)/, '').replace(/:(80)?$/, ''));
      }),
      { numRuns: 5000 },
    );
  });

  it('never throws, on any string', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (s) => {
        expect(typeof isValidAuthority(s)).toBe('boolean');
      }),
      { numRuns: 3000 },
    );
  });
});
