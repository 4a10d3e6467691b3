/**
 * A client certificate is evidence only while it is valid and trusted, on every request (SPEC §11;
 * a review of 2026-12-06): a keep-alive connection, and a TLS session resumed from a ticket, both
 * outlive the handshake that checked the certificate. Found then: a certificate that expired after
 * its handshake kept its identity headers for as long as the connection or the ticket (7,200 s)
 * lived, and a CA removed from the bundle kept its certificates' sessions resumable.
 * Real TLS on loopback; a certificate that expires a few seconds into the test, made by openssl.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { copyFile, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { Agent, request as httpsRequest, type RequestOptions } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeLeaf, type CertFiles } from '../../../src/issuing/dev-pki.ts';
import { makePki, SPIFFE_A, type Pki } from '../../fixtures/pki.ts';
import { startGateInProcess, startRecordingUpstream, type InProcessGate, type RecordingUpstream } from '../../fixtures/servers.ts';

let pki: Pki;
let upstream: RecordingUpstream;
/** Expires LIFETIME_MS after it was made. */
let shortLived: CertFiles;
let expiresAt: number;
let strict: InProcessGate;
let optional: InProcessGate;
const gates: InProcessGate[] = [];
const LIFETIME_MS = 6_000;

/** openssl's ASN.1 time, to the second. */
const asn1 = (ms: number): string => `${new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;

beforeAll(async () => {
  pki = await makePki();
  upstream = await startRecordingUpstream();
  const now = Date.now();
  expiresAt = Math.floor((now + LIFETIME_MS) / 1000) * 1000;
  shortLived = await makeLeaf(pki.dir, 'short-lived', 'ca', 'short', `URI:${SPIFFE_A}`, 'clientAuth', [asn1(now - 60_000), asn1(expiresAt)]);
  const tls = (require: boolean) => ({ cert_file: pki.server.cert, key_file: pki.server.key, client_ca_file: pki.ca.cert, require_client_cert: require });
  strict = await startGateInProcess(upstream.url, (c) => {
    c.listen.tls = tls(true);
    c.admin.tls = tls(true);
  });
  optional = await startGateInProcess(upstream.url, (c) => (c.listen.tls = tls(false)));
  gates.push(strict, optional);
}, 60_000);
afterAll(async () => {
  await Promise.all(gates.map((g) => g.close()));
  await upstream?.close();
  await pki?.remove();
});

const port = (g: InProcessGate) => g.running.listeners.proxy.port;

interface Answer {
  status: number;
  reason: string | undefined;
  connection: string | undefined;
  resumed: boolean;
  session: Buffer | undefined;
}

/** One request with `client`'s certificate: on `agent`'s keep-alive connection, or fresh (resuming `session`). */
function call(g: InProcessGate, token: string, client: CertFiles, opts: { agent?: Agent; session?: Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: port(g),
        path: '/orders/42',
        servername: 'localhost',
        ca: readFileSync(pki.ca.cert),
        cert: readFileSync(client.cert),
        key: readFileSync(client.key),
        agent: opts.agent ?? false,
        session: opts.session,
        headers: { authorization: `Bearer ${token}` },
      } as RequestOptions,
      (res) => {
        const chunks: Buffer[] = [];
        const resumed = (res.socket as TLSSocket).isSessionReused();
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let reason: string | undefined;
          try {
            reason = (JSON.parse(Buffer.concat(chunks).toString()) as { reason?: string }).reason;
          } catch {
            reason = undefined;
          }
          resolve({ status: res.statusCode ?? 0, reason, connection: res.headers.connection, resumed, session });
        });
      },
    );
    req.on('socket', (sock) => sock.on('session', (b: Buffer) => (session = b)));
    req.on('error', reject);
    req.end();
  });
}

/** GET /healthz on `g`'s admin listener with `client`'s certificate, on `agent`'s keep-alive connection. */
function adminCall(g: InProcessGate, client: CertFiles, agent: Agent): Promise<{ status: number; reason: string | undefined; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port: g.running.listeners.admin.port, path: '/healthz', servername: 'localhost', ca: readFileSync(pki.ca.cert), cert: readFileSync(client.cert), key: readFileSync(client.key), agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = JSON.parse(Buffer.concat(chunks).toString()) as { reason?: string };
          resolve({ status: res.statusCode ?? 0, reason: body.reason, connection: res.headers.connection });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const lastUpstream = () => upstream.requests.at(-1)!;
const untilExpired = async () => {
  const wait = expiresAt + 300 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
};

describe('a client certificate that expires after its handshake', () => {
  it('keep-alive: identity headers while valid; after notAfter the strict listener refuses (401 client_cert_expired, connection closed), the optional one forwards without identity', async () => {
    const strictAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    const optionalAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    const adminAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    const token = await strict.token({ jti: 'short-keepalive' });
    const token2 = await optional.token({ jti: 'short-keepalive-opt' });
    try {
      const a = await call(strict, token, shortLived, { agent: strictAgent });
      expect(a.status).toBe(200);
      expect(lastUpstream().headers['x-jit-spiffe-id']).toBe(SPIFFE_A);
      const b = await call(optional, token2, shortLived, { agent: optionalAgent });
      expect(b.status).toBe(200);
      expect(lastUpstream().headers['x-jit-client-cert-sha256']).toBe(shortLived.x5t);
      expect((await adminCall(strict, shortLived, adminAgent)).status).toBe(200);
      const sessions = { strict: a.session, optional: b.session };
      expect(sessions.strict).toBeDefined();
      expect(sessions.optional).toBeDefined();

      // Kept busy (the gate closes a keep-alive connection idle for 5 s) until the certificate expires.
      while (Date.now() < expiresAt - 1_000) {
        await new Promise((r) => setTimeout(r, 700));
        expect((await call(strict, token, shortLived, { agent: strictAgent })).status).toBe(200);
        expect((await call(optional, token2, shortLived, { agent: optionalAgent })).status).toBe(200);
        expect((await adminCall(strict, shortLived, adminAgent)).status).toBe(200);
      }
      await untilExpired();
      const before = upstream.requests.length;
      const late = await call(strict, token, shortLived, { agent: strictAgent });
      expect([late.status, late.reason, late.connection]).toEqual([401, 'client_cert_expired', 'close']);
      expect(upstream.requests.length).toBe(before);
      // Refused before the token is read (so the line names no jti), naming the certificate that expired.
      await until(() => strict.logs.some((l) => l.type === 'audit' && l.reason === 'client_cert_expired'));
      expect(strict.logs.find((l) => l.type === 'audit' && l.reason === 'client_cert_expired')).toMatchObject({ status: 401, path: '/orders/42', client_cert_sha256: shortLived.x5t });

      // The admin listener with require_client_cert: the same rule on its keep-alive connection.
      const lateAdmin = await adminCall(strict, shortLived, adminAgent);
      expect([lateAdmin.status, lateAdmin.reason, lateAdmin.connection]).toEqual([401, 'client_cert_expired', 'close']);

      const lateOpt = await call(optional, token2, shortLived, { agent: optionalAgent });
      expect(lateOpt.status).toBe(200);
      const got = lastUpstream();
      expect(got.headers['x-jit-client-cert-sha256']).toBeUndefined();
      expect(got.headers['x-jit-spiffe-id']).toBeUndefined();
      const line = optional.logs.filter((l) => l.type === 'audit' && l.jti === 'short-keepalive-opt').at(-1)!;
      expect(line.client_cert_sha256).toBeUndefined();

      // A session resumed from a ticket taken while it was valid: refused at the strict listener before
      // any request is read; resumed at the optional one, where the certificate now counts for nothing.
      const decisions = strict.logs.filter((l) => l.type === 'audit').length;
      await expect(call(strict, token, shortLived, { session: sessions.strict })).rejects.toThrow();
      expect(strict.logs.filter((l) => l.type === 'audit').length).toBe(decisions);
      const resumed = await call(optional, token2, shortLived, { session: sessions.optional });
      expect([resumed.status, resumed.resumed]).toEqual([200, true]);
      expect(lastUpstream().headers['x-jit-client-cert-sha256']).toBeUndefined();
      // A token bound to it is refused there with the precise reason.
      const bound = await optional.token({ cnf: { 'x5t#S256': shortLived.x5t } });
      expect((await call(optional, bound, shortLived, { session: sessions.optional })).reason).toBe('client_cert_expired');
    } finally {
      strictAgent.destroy();
      optionalAgent.destroy();
      adminAgent.destroy();
    }
  }, 30_000);
});

describe('the client CA bundle changes', () => {
  it('sessions made under the old bundle no longer resume: a removed CA\'s certificate must handshake again, and fails', async () => {
    const caFile = join(pki.dir, 'session-bundle.pem');
    await writeFile(caFile, `${readFileSync(pki.ca.cert, 'utf8')}${readFileSync(pki.untrusted.cert, 'utf8')}`);
    const g = await startGateInProcess(upstream.url, (c) => (c.listen.tls = { cert_file: pki.server.cert, key_file: pki.server.key, client_ca_file: caFile, require_client_cert: true, reload_interval: '50ms' }));
    gates.push(g);
    const token = await g.token();
    const first = await call(g, token, pki.rogue);
    expect(first.status).toBe(200);
    // Resumable for 5 minutes (nginx's default), not OpenSSL's 2 hours: what openssl's own client is told.
    expect(await sessionTimeoutSeen(port(g), pki.rogue)).toMatch(/ticket lifetime hint: 300 \(seconds\)/);
    const again = await call(g, token, pki.rogue, { session: first.session });
    expect([again.status, again.resumed]).toEqual([200, true]);
    const workload = await call(g, token, pki.workloadA);

    // The server's own certificate rotates, the bundle stays: sessions still resume.
    const reloaded = () => g.logs.filter((l) => l.msg === 'TLS certificate files changed; new handshakes use them').length;
    await copyFile(caFile, `${caFile}.same`);
    const n = reloaded(); // counted first: the 50 ms poll may see the change before the next line runs
    await writeFile(caFile, readFileSync(`${caFile}.same`)); // same bytes, new mtime: a reload
    await until(() => reloaded() > n);
    expect((await call(g, token, pki.workloadA, { session: workload.session })).resumed).toBe(true);

    // The untrusted CA leaves the bundle.
    const m = reloaded();
    await writeFile(caFile, readFileSync(pki.ca.cert));
    await until(() => reloaded() > m);
    await expect(call(g, token, pki.rogue, { session: again.session ?? first.session })).rejects.toThrow();
    // The remaining CA's workloads handshake again (their old sessions are gone too) and are served.
    const after = await call(g, token, pki.workloadA, { session: workload.session });
    expect([after.status, after.resumed]).toEqual([200, false]);
  }, 30_000);
});

async function until(ok: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** `openssl s_client` makes one request with `client`'s certificate and saves its session; `sess_id -text` of it. */
async function sessionTimeoutSeen(p: number, client: CertFiles): Promise<string> {
  const out = join(pki.dir, `session-${p}.pem`);
  await new Promise<void>((resolve, reject) => {
    const c = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${p}`, '-servername', 'localhost', '-CAfile', pki.ca.cert, '-cert', client.cert, '-key', client.key, '-sess_out', out, '-quiet'], { stdio: ['pipe', 'ignore', 'ignore'] });
    c.on('error', reject);
    c.on('exit', () => resolve());
    c.stdin.end('GET /orders/42 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  });
  return (await promisify(execFile)('openssl', ['sess_id', '-in', out, '-noout', '-text'], { encoding: 'utf8' })).stdout;
}
