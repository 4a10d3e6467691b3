/**
 * A backend that refuses jitgate's client certificate (SPEC §11, mTLS to the backend) answers with a
 * TLS alert: in TLS 1.3 after jitgate's side of the handshake is done (certificate_required), in
 * TLS 1.2 during it (handshake_failure). Both are 502 upstream_tls, counted kind="tls" and logged
 * with the TLS code — not upstream_unreachable, which stays for a backend that drops the connection.
 */
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { SecureVersion } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, type Pki } from '../../fixtures/pki.ts';
import { startGateInProcess, type InProcessGate } from '../../fixtures/servers.ts';

let pki: Pki;
const backends: Server[] = [];
const gates: InProcessGate[] = [];

beforeAll(async () => {
  pki = await makePki();
});
afterAll(async () => {
  await Promise.all(gates.map((g) => g.close()));
  await Promise.all(gates.map((g) => rm(g.dir, { recursive: true, force: true })));
  for (const b of backends) b.closeAllConnections();
  await Promise.all(backends.map((b) => new Promise((r) => b.close(r))));
  await pki?.remove();
});

/** An https backend requiring a client certificate from the backend CA; `drop`: it cuts every request instead. */
async function backend(maxVersion: SecureVersion, drop = false): Promise<{ url: string; requests: number }> {
  const state = { url: '', requests: 0 };
  const server = createServer(
    { cert: readFileSync(pki.backend.cert), key: readFileSync(pki.backend.key), ca: readFileSync(pki.backendCa.cert), requestCert: true, rejectUnauthorized: true, maxVersion },
    (req, res) => {
      state.requests++;
      if (drop) req.socket.destroy();
      else res.end('backend ok');
    },
  );
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  backends.push(server);
  state.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

async function gateTo(url: string, withCert: boolean): Promise<InProcessGate> {
  const g = await startGateInProcess(url, (c) => (c.upstream.tls = withCert ? { ca_file: pki.backendCa.cert, cert_file: pki.gateClient.cert, key_file: pki.gateClient.key } : { ca_file: pki.backendCa.cert }));
  gates.push(g);
  return g;
}

const get = async (g: InProcessGate) => {
  const res = await fetch(`${g.url}/orders/42`, { headers: { authorization: `Bearer ${await g.token()}` } });
  const body = await res.text();
  return { status: res.status, reason: res.headers.get('content-type')?.includes('json') === true ? (JSON.parse(body) as { reason?: string }).reason : body };
};

describe('a backend that refuses jitgate\'s client certificate', () => {
  it.each([
    ['TLSv1.3', 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'],
    ['TLSv1.2', 'ERR_SSL_SSL/TLS_ALERT_HANDSHAKE_FAILURE'],
  ] as const)('over %s is 502 upstream_tls, counted kind="tls", logged with %s', async (version, code) => {
    const b = await backend(version);
    const g = await gateTo(b.url, false);
    expect(await get(g)).toEqual({ status: 502, reason: 'upstream_tls' });
    expect(b.requests).toBe(0);
    const text = await g.running.metrics.metrics();
    expect(text).toMatch(/jitgate_upstream_errors_total\{kind="tls"\} 1\b/);
    expect(text).not.toMatch(/jitgate_upstream_errors_total\{kind="reset"\} [1-9]/);
    expect(g.logs.find((l) => l.msg === 'upstream request failed')).toMatchObject({ code });
  });

  it('with the right certificate the same backend answers (the premise)', async () => {
    const b = await backend('TLSv1.3');
    expect(await get(await gateTo(b.url, true))).toEqual({ status: 200, reason: 'backend ok' });
  });
});

describe('a TLS backend that drops the connection without an alert', () => {
  it('stays 502 upstream_unreachable (kind="reset")', async () => {
    const b = await backend('TLSv1.3', true);
    const g = await gateTo(b.url, true);
    expect(await get(g)).toEqual({ status: 502, reason: 'upstream_unreachable' });
    expect(b.requests).toBeGreaterThan(0);
    const text = await g.running.metrics.metrics();
    expect(text).toMatch(/jitgate_upstream_errors_total\{kind="reset"\} [1-9]/);
    expect(text).not.toMatch(/jitgate_upstream_errors_total\{kind="tls"\} [1-9]/);
  });
});
