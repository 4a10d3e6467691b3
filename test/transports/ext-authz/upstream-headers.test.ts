/**
 * The removal list an allow hands Envoy (SPEC §4, §7), across the config switches that change it.
 */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.ts';
import type { Allow } from '../../../src/core/decision.ts';
import { identityHeaderNames } from '../../../src/core/policy.ts';
import type { VerifiedToken } from '../../../src/core/verified-token.ts';
import { compileUpstreamHeaders } from '../../../src/transports/ext-authz/upstream-headers.ts';
import { OVERRIDE_SPELLINGS } from '../../../src/transports/override-headers.ts';
import { CLIENT_CERT_HEADERS } from '../../../src/transports/proxy/client-cert-headers.ts';

function plan(headers: Record<string, unknown> = {}) {
  const config = validateConfig(
    { upstream: { url: 'http://127.0.0.1:9' }, service: { audience: 'orders' }, issuers: [{ issuer: 'https://i', jwks_file: './j.json' }], headers },
    'x.yaml',
  );
  return compileUpstreamHeaders(config, identityHeaderNames(config.headers.prefix));
}

const publicAllow: Allow = { kind: 'allow', reason: 'public', path: '/healthz', query: '', token: null, grantIndex: -1 };
const tokenAllow = (unset: string[]): Allow => ({ ...publicAllow, reason: 'granted', token: { identityUnset: unset } as unknown as VerifiedToken, grantIndex: 0 });

describe('removal list', () => {
  it('defaults: authorization, dpop, then the unset identity names and stray prefixed headers', () => {
    const p = plan();
    expect(p.removals(tokenAllow(['x-jit-actor']), [])).toEqual(['authorization', 'dpop', ...OVERRIDE_SPELLINGS, ...CLIENT_CERT_HEADERS, 'x-jit-actor', 'x-jit-client-cert-sha256', 'x-jit-spiffe-id']);
    expect(p.removalHeader(tokenAllow([]), ['x-jit-role'])).toBe(['authorization', 'dpop', ...OVERRIDE_SPELLINGS, ...CLIENT_CERT_HEADERS, 'x-jit-client-cert-sha256', 'x-jit-spiffe-id', 'x-jit-role'].join(', '));
    expect(p.removals(publicAllow, [])).toEqual(['authorization', 'dpop', ...OVERRIDE_SPELLINGS, ...CLIENT_CERT_HEADERS, 'x-jit-subject', 'x-jit-token-id', 'x-jit-issuer', 'x-jit-txn', 'x-jit-actor', 'x-jit-client-cert-sha256', 'x-jit-spiffe-id']);
  });

  it('keeps Authorization when headers.forward_authorization; removes every override spelling in both method_override modes', () => {
    expect(plan({ forward_authorization: true }).removals(tokenAllow([]), [])).toEqual(['dpop', ...OVERRIDE_SPELLINGS, ...CLIENT_CERT_HEADERS, 'x-jit-client-cert-sha256', 'x-jit-spiffe-id']);
    expect(plan({ method_override: 'strip' }).removals(tokenAllow([]), [])).toEqual(['authorization', 'dpop', ...OVERRIDE_SPELLINGS, ...CLIENT_CERT_HEADERS, 'x-jit-client-cert-sha256', 'x-jit-spiffe-id']);
    expect(OVERRIDE_SPELLINGS).toHaveLength(24);
    expect(OVERRIDE_SPELLINGS).toEqual(expect.arrayContaining(['x-http-method-override', 'x_http_method_override', 'x-http_method-override', 'x-original-url', 'x_rewrite_url']));
  });

  it('follows the configured identity prefix', () => {
    const p = plan({ prefix: 'x-grant-' });
    expect(p.removals(publicAllow, [])).toContain('x-grant-subject');
    expect(p.isStray('x-grant-role')).toBe(true);
    expect(p.isStray('x-grant-subject')).toBe(false);
    expect(p.isStray('x-jit-role')).toBe(false);
  });

  it('lists the `_` spelling of every header the proxy owns, as the proxy drops it (CVE-2024-45614)', () => {
    const p = plan();
    for (const name of ['x_forwarded_for', 'x_forwarded_proto', 'x_forwarded_host', 'content_length', 'transfer_encoding', 'x_http_method_override', 'x_original_url', 'x_jit_subject']) {
      expect(p.isStray(name), name).toBe(true);
    }
    // Dash spellings are Envoy's to manage, and unrelated underscored names pass.
    for (const name of ['x-forwarded-for', 'content-length', 'x_request_id', 'accept']) expect(p.isStray(name), name).toBe(false);
    expect(p.isStray('x-original-url')).toBe(true);
  });
});
