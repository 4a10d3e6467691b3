/**
 * `limits` checks that node:http would otherwise make at start with a RangeError and a stack trace
 * (a re-probe: request_timeout below headers_timeout passed check-config, then serve crashed).
 */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.ts';

const base = { upstream: { url: 'http://127.0.0.1:8081' }, service: { audience: 'orders' }, issuers: [{ issuer: 'https://broker.internal', jwks_file: './jwks.json' }] };
const check = (limits: Record<string, unknown>) => () => validateConfig({ ...base, limits }, 'jitgate.yaml');

describe('limits', () => {
  it('request_timeout below headers_timeout is refused naming request_timeout', () => {
    expect(check({ request_timeout: '5s' })).toThrow(/limits\.request_timeout: must be at least limits\.headers_timeout \(10s\)/);
    expect(check({ request_timeout: '2s', headers_timeout: '3s' })).toThrow(/limits\.request_timeout: must be at least limits\.headers_timeout \(3s\)/);
  });

  it('request_timeout equal to or above headers_timeout is accepted', () => {
    expect(check({ request_timeout: '10s' })).not.toThrow();
    expect(check({ request_timeout: '2s', headers_timeout: '2s' })).not.toThrow();
  });
});
