/**
 * The header lists as pure functions (SPEC §4): what goes upstream and what comes back, one case
 * per rule, including the Connection tricks a client might try.
 */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.ts';
import { compileHeaderPolicy, downstreamHeaders, upstreamHeaders } from '../../../src/transports/proxy/hop-headers.ts';

function policy(headers: Record<string, unknown> = {}) {
  const config = validateConfig(
    { upstream: { url: 'http://127.0.0.1:1' }, service: { audience: 'a' }, issuers: [{ issuer: 'i', jwks_file: 'j.json' }], headers },
    '/tmp/jitgate.yaml',
  );
  return compileHeaderPolicy(config);
}

const IDENTITY = [
  ['x-jit-subject', 'spiffe://prod/svc'],
  ['x-jit-token-id', 'jti-1'],
] as const;

/** Pairs, for readable expectations. */
function pairs(flat: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

describe('upstreamHeaders', () => {
  it('case=drops client-certificate headers (RFC 9440, nginx/Apache/HAProxy/Traefik spellings) on a plain listener too', () => {
    const raw = ['Host', 'h', 'Client-Cert', ':AAAA:', 'Client-Cert-Chain', ':AAAA:', 'X-SSL-Client-Verify', 'SUCCESS', 'X-SSL-Client-S-DN', 'CN=admin', 'X-SSL-Client-Cert', 'x', 'X-Client-Cert', 'x', 'X-Client-Verify', 'SUCCESS', 'X-Client-DN', 'CN=admin', 'ssl-client-cert', 'x', 'SSL_CLIENT_CERT', 'x', 'X-Forwarded-Tls-Client-Cert-Info', 'x', 'Accept', '*/*'];
    const head = upstreamHeaders(raw, policy(), null, '10.0.0.9');
    expect(pairs(head.headers).slice(0, 2)).toEqual([
      ['Host', 'h'],
      ['Accept', '*/*'],
    ]);
    expect(head.headers.filter((_, i) => i % 2 === 0).map((h) => h.toLowerCase())).toEqual(['host', 'accept', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-real-ip']);
  });

  it('case=keeps ordinary headers in order and spelling; appends identity and X-Forwarded-*', () => {
    const head = upstreamHeaders(['Host', 'orders.internal', 'Accept', '*/*', 'X-Request-Id', 'r1'], policy(), IDENTITY, '10.0.0.9');
    expect(pairs(head.headers)).toEqual([
      ['Host', 'orders.internal'],
      ['Accept', '*/*'],
      ['X-Request-Id', 'r1'],
      ['x-jit-subject', 'spiffe://prod/svc'],
      ['x-jit-token-id', 'jti-1'],
      ['x-forwarded-for', '10.0.0.9'],
      ['x-forwarded-proto', 'http'],
      ['x-forwarded-host', 'orders.internal'],
      ['x-real-ip', '10.0.0.9'],
    ]);
    expect(head.hasBody).toBe(false);
  });

  it('case=drops credentials, hop-by-hop, Expect and every identity-prefixed header in any case', () => {
    const raw = ['Authorization', 'Bearer t', 'DPoP', 'p', 'Connection', 'keep-alive', 'Keep-Alive', '5', 'TE', 'trailers', 'Trailer', 'x', 'Upgrade', 'websocket', 'Proxy-Connection', 'keep-alive', 'Proxy-Authorization', 'Basic x', 'Expect', '100-continue', 'X-JIT-SUBJECT', 'evil', 'x-Jit-Token-Id', 'evil', 'x-jit-custom', 'evil'];
    expect(pairs(upstreamHeaders(raw, policy(), null, '1.2.3.4').headers)).toEqual([
      ['x-forwarded-for', '1.2.3.4'],
      ['x-forwarded-proto', 'http'],
      ['x-real-ip', '1.2.3.4'],
    ]);
  });

  it('case=Connection-nominated headers go, except Host and Content-Length; keep-alive/close nominate nothing', () => {
    const raw = ['Host', 'h', 'Content-Length', '3', 'Connection', 'X-A, host', 'connection', 'Content-Length,  x-b ', 'X-A', '1', 'X-B', '2', 'X-C', '3'];
    const head = upstreamHeaders(raw, policy(), null, '1.2.3.4');
    expect(pairs(head.headers).slice(0, 3)).toEqual([
      ['Host', 'h'],
      ['Content-Length', '3'],
      ['X-C', '3'],
    ]);
    expect(head.hasBody).toBe(true);
  });

  it('case=a Connection header cannot remove identity or X-Forwarded-* headers jitgate sets', () => {
    const raw = ['Host', 'h', 'Connection', 'x-jit-subject, x-jit-token-id, x-forwarded-for, x-forwarded-proto, x-forwarded-host', 'X-Forwarded-For', '9.9.9.9'];
    const names = pairs(upstreamHeaders(raw, policy(), IDENTITY, '1.2.3.4').headers);
    expect(names).toEqual([
      ['Host', 'h'],
      ['x-jit-subject', 'spiffe://prod/svc'],
      ['x-jit-token-id', 'jti-1'],
      ['x-forwarded-for', '1.2.3.4'],
      ['x-forwarded-proto', 'http'],
      ['x-forwarded-host', 'h'],
      ['x-real-ip', '1.2.3.4'],
    ]);
  });

  it('case=X-Forwarded-For appends to every inbound value; -Proto/-Host are overwritten', () => {
    const raw = ['X-Forwarded-For', '1.1.1.1', 'x-forwarded-for', '2.2.2.2, 3.3.3.3', 'X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'spoof', 'Host', 'real'];
    const h = new Map(pairs(upstreamHeaders(raw, policy(), null, '4.4.4.4').headers));
    expect(h.get('x-forwarded-for')).toBe('1.1.1.1, 2.2.2.2, 3.3.3.3, 4.4.4.4');
    expect(h.get('x-forwarded-proto')).toBe('http');
    expect(h.get('x-forwarded-host')).toBe('real');
    expect(h.has('X-Forwarded-Proto')).toBe(false);
  });

  it('case=several Host lines: the first is forwarded, once', () => {
    const h = pairs(upstreamHeaders(['Host', 'a', 'Host', 'b'], policy(), null, '1.2.3.4').headers);
    expect(h.filter(([n]) => n.toLowerCase() === 'host')).toEqual([['Host', 'a']]);
    expect(h.find(([n]) => n === 'x-forwarded-host')).toEqual(['x-forwarded-host', 'a']);
  });

  it('case=Transfer-Encoding marks a body but is not forwarded (undici re-frames it)', () => {
    const head = upstreamHeaders(['Transfer-Encoding', 'chunked'], policy(), null, '1.2.3.4');
    expect(head.hasBody).toBe(true);
    expect(head.headers).not.toContain('Transfer-Encoding');
  });

  it('case=options: forward_authorization keeps it; method_override strip drops the override headers; custom prefix', () => {
    const raw = ['Authorization', 'Bearer t', 'X-HTTP-Method-Override', 'DELETE', 'X-HTTP-Method', 'PUT', 'X-Method-Override', 'PATCH', 'X-Acme-Subject', 'evil', 'X-Jit-Subject', 'other prefix, kept'];
    const kept = pairs(upstreamHeaders(raw, policy({ forward_authorization: true, method_override: 'strip', prefix: 'x-acme-' }), null, '1.2.3.4').headers);
    expect(kept.slice(0, 2)).toEqual([
      ['Authorization', 'Bearer t'],
      ['X-Jit-Subject', 'other prefix, kept'],
    ]);
    const defaults = pairs(upstreamHeaders(raw, policy(), null, '1.2.3.4').headers).map(([n]) => n);
    expect(defaults).toContain('X-HTTP-Method-Override'); // reject mode never reaches forwarding
    expect(defaults).not.toContain('Authorization');
  });
});

describe('downstreamHeaders', () => {
  it('case=passes the upstream answer minus hop-by-hop and Connection-named headers, repeated names kept', () => {
    const raw = ['Set-Cookie', 'a=1', 'Connection', 'keep-alive, X-Hop', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked', 'X-Hop', 'h', 'Set-Cookie', 'b=2', 'Content-Length', '10'].map((s) => Buffer.from(s, 'latin1'));
    expect(pairs(downstreamHeaders(raw))).toEqual([
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
      ['Content-Length', '10'],
    ]);
  });

  it('case=latin1 bytes survive unchanged', () => {
    const raw = [Buffer.from('X-Name'), Buffer.from([0x63, 0x61, 0x66, 0xe9])];
    expect(downstreamHeaders(raw)).toEqual(['X-Name', 'caf\u00e9']);
  });
});

describe('upstreamHeaders: client forwarding headers (issue 21 item 3)', () => {
  it('case=X-Real-IP and X-Forwarded-Port are jitgate\'s; Forwarded, X-Forwarded-Prefix/-Ssl and their _ spellings are dropped', () => {
    const raw = ['Host', 'h', 'Forwarded', 'for=6.6.6.6;host=evil', 'X-Real-IP', '6.6.6.6', 'X-Forwarded-Port', '443', 'X-Forwarded-Prefix', '/admin', 'X-Forwarded-Ssl', 'on', 'x_real_ip', '6.6.6.6', 'X_Forwarded_Prefix', '/x', 'Accept', '*/*'];
    expect(pairs(upstreamHeaders(raw, policy(), null, '10.0.0.9', '8080').headers)).toEqual([
      ['Host', 'h'],
      ['Accept', '*/*'],
      ['x-forwarded-for', '10.0.0.9'],
      ['x-forwarded-proto', 'http'],
      ['x-forwarded-host', 'h'],
      ['x-real-ip', '10.0.0.9'],
      ['x-forwarded-port', '8080'],
    ]);
  });
});
