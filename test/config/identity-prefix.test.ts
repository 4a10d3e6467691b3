/**
 * `headers.prefix` (SPEC §4): inbound headers with it are removed by the proxy and refused by forward-auth, so a
 * prefix that begins a header every client or front proxy sends (`x-` begins x-forwarded-method) would refuse
 * every forward-auth request and strip forwarding headers on the proxy. A re-probe found `x-`, `a`, `h` and
 * `x-forwarded-` accepted; they are start-up errors naming the key and the header.
 */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.ts';

const config = (prefix: string) => ({
  upstream: { url: 'http://127.0.0.1:9' },
  service: { audience: 'orders' },
  issuers: [{ issuer: 'https://broker.internal', jwks_file: './jwks.json' }],
  headers: { prefix },
});

describe('headers.prefix', () => {
  it.each([
    ['x-', 'x-forwarded-method'],
    ['x', 'x-forwarded-method'],
    ['x-forwarded-', 'x-forwarded-method'],
    ['a', 'accept'],
    ['h', 'host'],
    ['user-', 'user-agent'],
  ])('%s → a start-up error naming the key and %s', (prefix, header) => {
    expect(() => validateConfig(config(prefix), 'jitgate.yaml')).toThrow(new RegExp(`headers\\.prefix: ${prefix} would also match ${header}, a header clients and proxies send`));
  });

  it.each(['x-jit-', 'x-gate-', 'x-auth-', 'jit-'])('%s is accepted', (prefix) => {
    expect(validateConfig(config(prefix), 'jitgate.yaml').headers.prefix).toBe(prefix);
  });
});
