/**
 * Issue 21 item 3: forwarding headers a client writes never reach the backend as if a proxy had
 * written them. jitgate is the hop that knows the peer, the scheme, the host and the port:
 * - X-Forwarded-For is appended to (unchanged rule); X-Forwarded-Proto/-Host overwritten (unchanged);
 * - X-Real-IP and X-Forwarded-Port are overwritten with the peer address and the listener's port;
 * - Forwarded (RFC 7239), X-Forwarded-Prefix, X-Forwarded-Ssl and the same class (client-IP and
 *   scheme headers frameworks read) are dropped — also in their `_` spellings;
 * - a Connection header cannot nominate the ones jitgate sets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll, send, sendRaw, startGateWithUpstream, type InProcessGate, type RecordingUpstream } from '../../fixtures/servers.ts';

let up: RecordingUpstream;
let gate: InProcessGate;

beforeAll(async () => ({ up, gate } = await startGateWithUpstream()));
afterAll(() => closeAll(gate, up));

/** Every value of one header the upstream received (raw, so repeats and spellings show). */
function values(raw: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) out.push(raw[i + 1]!);
  return out;
}

/** Client-written headers that some framework trusts as a proxy's word, with a spoofed value each. */
const DROPPED: readonly (readonly [string, string])[] = [
  ['Forwarded', 'for=6.6.6.6;host=evil.example;proto=https'],
  ['X-Forwarded-Prefix', '/admin'],
  ['X-Forwarded-Ssl', 'on'],
  ['X-Forwarded-Scheme', 'https'],
  ['X-Forwarded-Protocol', 'ssl'],
  ['X-Url-Scheme', 'https'],
  ['Front-End-Https', 'on'],
  ['X-Forwarded-Server', 'evil.example'],
  ['X-Client-IP', '6.6.6.6'],
  ['True-Client-IP', '6.6.6.6'],
  ['X-Cluster-Client-IP', '6.6.6.6'],
  ['CF-Connecting-IP', '6.6.6.6'],
  ['Fastly-Client-IP', '6.6.6.6'],
  ['X-Forwarded', 'for=6.6.6.6'],
  ['Forwarded-For', '6.6.6.6'],
];

describe('forwarding headers on the proxy', () => {
  it('client-written forwarding headers are dropped; X-Real-IP and X-Forwarded-Port are jitgate\'s', async () => {
    const spoofed = ['X-Real-IP', '6.6.6.6', 'X-Forwarded-Port', '443', ...DROPPED.flat()];
    const before = up.requests.length;
    const r = await send(gate.url, '/public/x', { headers: ['Host', 'orders.internal', ...spoofed] });
    expect(r.status).toBe(200);
    expect(up.requests.length).toBe(before + 1);
    const raw = up.requests.at(-1)!.rawHeaders;
    for (const [name] of DROPPED) expect(values(raw, name.toLowerCase()), name).toEqual([]);
    expect(values(raw, 'x-real-ip')).toEqual(['127.0.0.1']);
    expect(values(raw, 'x-forwarded-port')).toEqual([new URL(gate.url).port]);
    // Unchanged rules, for contrast: the chain is appended to, proto and host are jitgate's.
    expect(values(raw, 'x-forwarded-proto')).toEqual(['http']);
    expect(values(raw, 'x-forwarded-host')).toEqual(['orders.internal']);
  });

  it('the underscore spellings go too (CGI maps _ and - to one variable)', async () => {
    const r = await send(gate.url, '/public/x', { headers: ['Host', 'orders.internal', 'X_Real_IP', '6.6.6.6', 'x_forwarded_port', '443', 'X_Forwarded_Prefix', '/admin', 'x_forwarded_ssl', 'on'] });
    expect(r.status).toBe(200);
    const raw = up.requests.at(-1)!.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) expect(raw[i]!.includes('_'), raw[i]).toBe(false);
    expect(values(raw, 'x-real-ip')).toEqual(['127.0.0.1']);
  });

  it('a repeated X-Real-IP or X-Forwarded-Port still yields exactly one, jitgate\'s', async () => {
    const r = await sendRaw(gate.url, ['GET /public/x HTTP/1.1', 'Host: orders.internal', 'X-Real-IP: 6.6.6.6', 'X-Real-IP: 7.7.7.7', 'X-Forwarded-Port: 1', 'X-Forwarded-Port: 2', 'Connection: close']);
    expect(r.status).toBe(200);
    const raw = up.requests.at(-1)!.rawHeaders;
    expect(values(raw, 'x-real-ip')).toEqual(['127.0.0.1']);
    expect(values(raw, 'x-forwarded-port')).toEqual([new URL(gate.url).port]);
  });

  it('Connection cannot nominate X-Real-IP or X-Forwarded-Port away', async () => {
    const r = await send(gate.url, '/public/x', { headers: ['Host', 'orders.internal', 'Connection', 'x-real-ip, x-forwarded-port, forwarded'] });
    expect(r.status).toBe(200);
    const raw = up.requests.at(-1)!.rawHeaders;
    expect(values(raw, 'x-real-ip')).toEqual(['127.0.0.1']);
    expect(values(raw, 'x-forwarded-port')).toHaveLength(1);
  });
});
