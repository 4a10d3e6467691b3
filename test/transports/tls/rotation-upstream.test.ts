/**
 * Certificates that change and certificates jitgate must check (SPEC §11):
 * - the listener's certificate and key rotated on disk are served to new handshakes without a
 *   restart; a half-written pair keeps the old one; the admin listener speaks TLS the same way;
 * - TLS to the backend: verified against upstream.tls.ca_file, mTLS with cert_file/key_file; an
 *   untrusted backend certificate or a wrong name is a 502, never a plain-text retry; jitgate's
 *   client certificate rotated on disk reaches the backend without a restart.
 */
import { copyFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import { readFileSync } from 'node:fs';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, type CertFiles, type Pki } from '../../fixtures/pki.ts';
import { assertRefusedPort, REFUSED_PORT } from '../../fixtures/ports.ts';
import { makeLeaf } from '../../../src/issuing/dev-pki.ts';
import { validateConfig } from '../../../src/config/load.ts';
import { send, startGateInProcess, startupError, writeGateConfig, type InProcessGate } from '../../fixtures/servers.ts';
import { colonHex, serverFingerprint, tlsCall } from './helpers.ts';

let pki: Pki;
/** Every gate's temp dir (config, keys), removed at the end. */
const dirs: string[] = [];

beforeAll(async () => {
  pki = await makePki();
});
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  await pki?.remove();
});

async function started(url: string, patch: (c: Record<string, any>) => void): Promise<InProcessGate> {
  const g = await startGateInProcess(url, patch);
  dirs.push(g.dir);
  return g;
}

/** Polls `probe` until it returns `want` (the reload interval is 50ms); fails after `ms`. */
async function until<T>(probe: () => Promise<T>, want: T, ms = 5_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last = await probe();
  while (last !== want && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 25));
    last = await probe();
  }
  return last;
}

describe('listener certificate rotation', () => {
  let gate: InProcessGate;
  let certFile: string;
  let keyFile: string;

  beforeAll(async () => {
    certFile = join(pki.dir, 'live.crt');
    keyFile = join(pki.dir, 'live.key');
    await copyFile(pki.server.cert, certFile);
    await copyFile(pki.server.key, keyFile);
    gate = await started('http://127.0.0.1:9', (c) => {
      c.listen.tls = { cert_file: certFile, key_file: keyFile, client_ca_file: pki.ca.cert, reload_interval: '50ms' };
      c.admin.tls = { cert_file: pki.server.cert, key_file: pki.server.key };
    });
  });
  afterAll(() => gate?.close());

  it('serves the new certificate to new handshakes without a restart, and keeps answering; /readyz lists a refused change while it stands', async () => {
    const port = gate.running.listeners.proxy.port;
    /** /readyz (over admin.tls): its status and the problems it lists. */
    const readyz = async () => {
      const r = await tlsCall(gate.running.listeners.admin.port, '/readyz', { ca: pki.ca });
      return { status: r.status, problems: (JSON.parse(r.body) as { problems?: string[] }).problems ?? [] };
    };
    expect(await readyz()).toEqual({ status: 200, problems: [] });
    expect(await serverFingerprint(port, pki.ca)).toBe(colonHex(pki.server.hashHex));
    // A half-written pair (new key, old cert) does not load: the old pair stays in service.
    await copyFile(pki.server2.key, keyFile);
    const reloadFailed = async () => /jitgate_tls_reloads_total\{listener="proxy",result="error"\} [1-9]/.test(await gate.running.metrics.metrics());
    expect(await until(reloadFailed, true)).toBe(true);
    expect(await serverFingerprint(port, pki.ca)).toBe(colonHex(pki.server.hashHex));
    // Still ready (it serves the pair it had), and says why the new files are not in service.
    const refused = await readyz();
    expect(refused.status).toBe(200);
    expect(refused.problems).toHaveLength(1);
    expect(refused.problems[0]).toMatch(/^proxy TLS: TLS certificate files changed but do not load; keeping the previous ones: listen\.tls: the certificate and key do not load/);
    // The cert arrives by atomic rename, as Kubernetes and SPIRE helpers write files.
    const tmp = join(pki.dir, 'live.crt.tmp');
    await copyFile(pki.server2.cert, tmp);
    await rename(tmp, certFile);
    expect(await until(() => serverFingerprint(port, pki.ca), colonHex(pki.server2.hashHex))).toBe(colonHex(pki.server2.hashHex));
    const r = await tlsCall(port, '/orders/42', { ca: pki.ca, client: pki.workloadA });
    expect([r.status, r.reason]).toEqual([401, 'missing_token']);
    const text = await gate.running.metrics.metrics();
    expect(text).toMatch(/jitgate_tls_reloads_total\{listener="proxy",result="ok"\} [1-9]/);
    expect(text).toMatch(/jitgate_tls_reloads_total\{listener="proxy",result="error"\} [1-9]/);
    expect(await readyz()).toEqual({ status: 200, problems: [] }); // mended by the change that loaded

    // An expired pair copied over the valid one (a re-probe: put in service and logged as a successful
    // reload, so every new handshake failed): refused, and the valid certificate stays.
    const errors = async () => Number(/jitgate_tls_reloads_total\{listener="proxy",result="error"\} (\d+)/.exec(await gate.running.metrics.metrics())?.[1] ?? 0);
    const before = await errors();
    await copyFile(pki.expired.key, join(pki.dir, 'live.key.tmp'));
    await copyFile(pki.expired.cert, tmp);
    await rename(join(pki.dir, 'live.key.tmp'), keyFile);
    await rename(tmp, certFile);
    expect(await until(async () => (await errors()) > before, true)).toBe(true);
    // Given a second (20 reload intervals) to go wrong: the code before put the pair in service within one.
    const served = () => serverFingerprint(port, pki.ca).catch((e: NodeJS.ErrnoException) => String(e.code));
    expect(await until(served, 'CERT_HAS_EXPIRED', 1_000)).toBe(colonHex(pki.server2.hashHex));
    expect((await readyz()).problems).toEqual([expect.stringMatching(/^proxy TLS: TLS certificate files changed but are not valid now .*listen\.tls\.cert_file: the certificate expired/)]);

    // A renewal whose notBefore is a few seconds ahead (a CA that does not backdate, a clock behind it): kept
    // out while not yet valid, and put in service once it is, without another change to the files (a re-probe:
    // it was never looked at again, and the gate went on to serve its old certificate past expiry).
    const stamp = (ms: number) => new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
    const soon = await makeLeaf(pki.dir, 'soon', 'ca', 'gate renewed', 'DNS:localhost,IP:127.0.0.1', 'serverAuth', [stamp(Date.now() + 3_000), stamp(Date.now() + 86_400_000)]);
    const laterErrors = await errors();
    await copyFile(soon.key, join(pki.dir, 'live.key.tmp'));
    await copyFile(soon.cert, tmp);
    await rename(join(pki.dir, 'live.key.tmp'), keyFile);
    await rename(tmp, certFile);
    expect(await until(async () => (await errors()) > laterErrors, true)).toBe(true);
    expect(await served()).toBe(colonHex(pki.server2.hashHex));
    expect(await until(served, colonHex(soon.hashHex), 10_000)).toBe(colonHex(soon.hashHex));
    // Said once while it waited, not at every poll; listed no longer once it is in service.
    expect(await errors()).toBeLessThan(laterErrors + 5);
    expect(await readyz()).toEqual({ status: 200, problems: [] });
  }, 30_000);

  it('the admin listener speaks TLS when admin.tls is set, and counts its failed handshakes under listener="admin"', async () => {
    const r = await tlsCall(gate.running.listeners.admin.port, '/healthz', { ca: pki.ca });
    expect(r.status).toBe(200);
    const failures = async () => Number(/jitgate_tls_handshake_failures_total\{listener="admin"\} (\d+)/.exec(await gate.running.metrics.metrics())?.[1] ?? 0);
    const before = await failures();
    // Plain HTTP to the TLS port: not a handshake.
    const s = netConnect(gate.running.listeners.admin.port, '127.0.0.1', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
    s.on('error', () => undefined);
    await new Promise((done) => s.on('close', done));
    expect(await until(failures, before + 1)).toBe(before + 1);
  });
});

describe('TLS to the backend (upstream.url https://)', () => {
  const backends: Server[] = [];
  const gates: InProcessGate[] = [];
  afterAll(async () => {
    await Promise.all(gates.map((g) => g.close()));
    for (const b of backends) b.closeAllConnections();
    await Promise.all(backends.map((b) => new Promise((r) => b.close(r))));
  });

  /** An https backend with `cert`; with `clientCa` it requires a client certificate from that CA. */
  async function backend(cert: CertFiles, clientCa?: CertFiles): Promise<{ url: string; seen: (string | undefined)[]; server: Server }> {
    const seen: (string | undefined)[] = [];
    const server = createServer(
      { cert: readFileSync(cert.cert), key: readFileSync(cert.key), ...(clientCa === undefined ? {} : { ca: readFileSync(clientCa.cert), requestCert: true, rejectUnauthorized: true }) },
      (req, res) => {
        seen.push((req.socket as import('node:tls').TLSSocket).getPeerX509Certificate()?.subject);
        res.end('backend ok');
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    backends.push(server);
    return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
  }

  async function gateTo(url: string, tls?: Record<string, string>): Promise<InProcessGate> {
    const g = await started(url, (c) => {
      if (tls !== undefined) c.upstream.tls = tls;
    });
    gates.push(g);
    return g;
  }

  const get = async (g: InProcessGate) => {
    const res = await fetch(`${g.url}/orders/42`, { headers: { authorization: `Bearer ${await g.token()}` } });
    return { status: res.status, body: await res.text() };
  };

  it('verifies the backend against ca_file and forwards', async () => {
    const b = await backend(pki.backend);
    const g = await gateTo(b.url, { ca_file: pki.backendCa.cert });
    expect(await get(g)).toEqual({ status: 200, body: 'backend ok' });
  });

  it('an untrusted backend certificate is a 502 upstream_tls (its own reason, counted as such), and nothing reaches the backend', async () => {
    const b = await backend(pki.rogueBackend);
    const g = await gateTo(b.url, { ca_file: pki.backendCa.cert });
    const r = await get(g);
    expect(r.status).toBe(502);
    expect(JSON.parse(r.body)).toEqual({ error: 'bad_gateway', reason: 'upstream_tls' });
    expect(b.seen).toEqual([]);
    const text = await g.running.metrics.metrics();
    expect(text).toMatch(/jitgate_upstream_errors_total\{kind="tls"\} [1-9]/);
    expect(text).toMatch(/jitgate_decisions_total\{transport="proxy",result="deny",reason="upstream_tls"\} 1\b/);
    expect(text).not.toMatch(/reason="upstream_unreachable"\} [1-9]/);
  });

  it('a backend that is down stays 502 upstream_unreachable, not upstream_tls', async () => {
    // Not a just-closed server's port: under load another test's server took it once, with another answer.
    await assertRefusedPort();
    const g = await gateTo(`https://127.0.0.1:${REFUSED_PORT}`, { ca_file: pki.backendCa.cert });
    const r = await get(g);
    expect([r.status, JSON.parse(r.body)]).toEqual([502, { error: 'bad_gateway', reason: 'upstream_unreachable' }]);
  });

  it('without ca_file a private CA is not trusted either (Node\'s roots): 502', async () => {
    const b = await backend(pki.backend);
    const g = await gateTo(b.url);
    expect((await get(g)).status).toBe(502);
  });

  it('a servername the certificate does not carry is a 502; the one it carries is fine', async () => {
    const b = await backend(pki.backend);
    const wrong = await gateTo(b.url, { ca_file: pki.backendCa.cert, servername: 'other.internal' });
    expect((await get(wrong)).status).toBe(502);
    const right = await gateTo(b.url, { ca_file: pki.backendCa.cert, servername: 'backend.internal' });
    expect((await get(right)).status).toBe(200);
  });

  it("the client's Host never names the certificate: upstream.tls.servername (else the upstream's host) does", async () => {
    const b = await backend(pki.backend);
    let handshakes = 0;
    b.server.on('secureConnection', () => handshakes++);
    const hostGet = async (g: InProcessGate, host: string) => (await send(g.url, '/orders/42', { headers: { host, authorization: `Bearer ${await g.token()}` } })).status;
    // The certificate carries backend.internal, not other.internal: a client naming the one it does
    // carry must not make the gate accept it (before: 200), and with the right servername a client
    // naming anything at all is served, on one pooled connection (before: 502, and a new handshake
    // for every change of Host).
    const wrong = await gateTo(b.url, { ca_file: pki.backendCa.cert, servername: 'other.internal' });
    expect(await hostGet(wrong, 'backend.internal')).toBe(502);
    const right = await gateTo(b.url, { ca_file: pki.backendCa.cert, servername: 'backend.internal' });
    const before = handshakes;
    for (const host of ['evil.example', 'orders.local', 'evil.example', 'localhost']) expect(await hostGet(right, host)).toBe(200);
    expect(handshakes - before).toBe(1);
    // No servername: the upstream URL's host (an IP here, checked against the certificate's IP SAN).
    const byUrl = await gateTo(b.url, { ca_file: pki.backendCa.cert });
    expect(await hostGet(byUrl, 'backend.internal')).toBe(200);
    expect(await hostGet(byUrl, 'evil.example')).toBe(200);
  });

  it('mTLS: the backend that requires a client certificate gets jitgate\'s; without one it is a 502', async () => {
    const b = await backend(pki.backend, pki.backendCa);
    const g = await gateTo(b.url, { ca_file: pki.backendCa.cert, cert_file: pki.gateClient.cert, key_file: pki.gateClient.key });
    expect((await get(g)).status).toBe(200);
    expect(b.seen).toEqual(['CN=jitgate']);
    const without = await gateTo(b.url, { ca_file: pki.backendCa.cert });
    expect((await get(without)).status).toBe(502);
  });

  it('mTLS: a client certificate rotated on disk reaches the backend without a restart; a pair that does not load keeps the old one', async () => {
    const b = await backend(pki.backend, pki.backendCa);
    const rotated = await makeLeaf(pki.dir, 'gate-client-rotated', 'backend-ca', 'jitgate rotated', 'URI:spiffe://prod/jitgate', 'clientAuth');
    const certFile = join(pki.dir, 'upstream-live.crt');
    const keyFile = join(pki.dir, 'upstream-live.key');
    await copyFile(pki.gateClient.cert, certFile);
    await copyFile(pki.gateClient.key, keyFile);
    const g = await gateTo(b.url, { ca_file: pki.backendCa.cert, cert_file: certFile, key_file: keyFile, reload_interval: '50ms' });
    /** One request on a new upstream connection (the backend drops the pooled ones); the certificate it saw. */
    const freshConnection = async () => {
      b.server.closeAllConnections();
      expect(await get(g)).toEqual({ status: 200, body: 'backend ok' });
      return b.seen.at(-1);
    };
    const reloads = async (result: 'ok' | 'error') => new RegExp(`jitgate_tls_reloads_total\\{listener="upstream",result="${result}"\\} [1-9]`).test(await g.running.metrics.metrics());
    expect(await freshConnection()).toBe('CN=jitgate');

    // Half-written: the new key beside the old certificate does not load; the old pair stays in service.
    await copyFile(rotated.key, keyFile);
    expect(await until(() => reloads('error'), true)).toBe(true);
    expect(await freshConnection()).toBe('CN=jitgate');
    expect(await reloads('ok')).toBe(false);
    const readyz = async () => (await fetch(`http://127.0.0.1:${g.running.listeners.admin.port}/readyz`)).json();
    expect(await readyz()).toEqual({ status: 'ready', problems: [expect.stringMatching(/^upstream TLS: TLS certificate files changed but do not load; keeping the previous ones: upstream\.tls/)] });

    // The certificate arrives by atomic rename: new connections present it, no restart.
    const tmp = join(pki.dir, 'upstream-live.crt.tmp');
    await copyFile(rotated.cert, tmp);
    await rename(tmp, certFile);
    expect(await until(() => reloads('ok'), true)).toBe(true);
    expect(await freshConnection()).toBe('CN=jitgate rotated');
    expect(await readyz()).toEqual({ status: 'ready' });
  });

  // A black-box probe swapped the CA out of upstream.tls.ca_file under steady keep-alive load: new connections were
  // refused, but the two pooled ones carried 106,570 more requests to the backend in 60 s, never idle long enough to close.
  it('a CA withdrawn from ca_file is not trusted on pooled connections either: under steady traffic the next requests are 502', async () => {
    const b = await backend(pki.backend);
    const caFile = join(pki.dir, 'upstream-ca-live.pem');
    await copyFile(pki.backendCa.cert, caFile);
    const g = await gateTo(b.url, { ca_file: caFile, reload_interval: '50ms' });
    expect(await get(g)).toEqual({ status: 200, body: 'backend ok' });
    let stop = false;
    const statuses: number[] = [];
    const traffic = (async () => {
      while (!stop) statuses.push((await get(g)).status);
    })();
    await new Promise((r) => setTimeout(r, 150));
    const tmp = `${caFile}.tmp`;
    await copyFile(pki.ca.cert, tmp); // another CA: the backend's certificate no longer verifies
    await rename(tmp, caFile);
    const reloaded = async () => /jitgate_tls_reloads_total\{listener="upstream",result="ok"\} [1-9]/.test(await g.running.metrics.metrics());
    expect(await until(reloaded, true)).toBe(true);
    const at = statuses.length;
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await traffic;
    // The one request in flight at the change may finish on its connection; every later one is refused.
    const later = statuses.slice(at + 1);
    expect(later.length).toBeGreaterThan(2);
    expect(later.filter((s) => s !== 502)).toEqual([]);
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
  });

  it('upstream.tls with an http:// url, an unreadable file or a key that is not the certificate\'s stops startup naming the key', async () => {
    expect((await startupError('http://127.0.0.1:9', (c) => (c.upstream.tls = { ca_file: pki.backendCa.cert }))).message).toMatch(/upstream\.tls: is only used with an https:\/\/ upstream\.url/);
    expect((await startupError('https://127.0.0.1:9', (c) => (c.upstream.tls = { ca_file: join(pki.dir, 'missing.pem') }))).message).toMatch(/upstream\.tls\.ca_file: cannot read/);
    const mismatched = { ca_file: pki.backendCa.cert, cert_file: pki.gateClient.cert, key_file: pki.backend.key };
    expect((await startupError('https://127.0.0.1:9', (c) => (c.upstream.tls = mismatched))).message).toMatch(/^upstream\.tls: the certificate and key do not load/);
  });
});

describe('listener TLS config errors', () => {
  it('require_client_cert without client_ca_file is a config error naming the key', async () => {
    const err = await startupError('http://127.0.0.1:9', (c) => (c.listen.tls = { cert_file: pki.server.cert, key_file: pki.server.key, require_client_cert: true }));
    expect(String(err)).toMatch(/listen\.tls\.require_client_cert: needs client_ca_file/);
  });

  it('a key that does not match the certificate stops startup naming listen.tls', async () => {
    const bad = join(pki.dir, 'mismatch.key');
    await writeFile(bad, readFileSync(pki.server2.key));
    expect((await startupError('http://127.0.0.1:9', (c) => (c.listen.tls = { cert_file: pki.server.cert, key_file: bad }))).message).toMatch(/^listen\.tls: the certificate and key do not load/);
  });
});

describe('jitgate check-config with TLS blocks', () => {
  it('accepts loadable TLS blocks and names each unusable one', async () => {
    const { checkConfig } = await import('../../../src/cli/check-config.ts');
    const { dir, file, raw } = await writeGateConfig('https://127.0.0.1:9', (c) => {
      c.listen.tls = { cert_file: pki.server.cert, key_file: pki.server.key, client_ca_file: pki.ca.cert };
      c.upstream.tls = { ca_file: pki.backendCa.cert, cert_file: pki.gateClient.cert, key_file: pki.gateClient.key };
    });
    dirs.push(dir);
    expect(await checkConfig(validateConfig(raw, file), file)).toContain('proxy 127.0.0.1:0');
    raw.listen.tls.key_file = pki.server2.key;
    raw.admin.tls = { cert_file: join(pki.dir, 'missing.crt'), key_file: pki.server.key };
    raw.upstream.tls.key_file = pki.workloadA.key;
    const err = await checkConfig(validateConfig(raw, file), file).then(() => undefined, (e: Error) => e);
    expect(String(err)).toMatch(/listen\.tls: the certificate and key do not load/);
    expect(String(err)).toMatch(/admin\.tls\.cert_file: cannot read/);
    expect(String(err)).toMatch(/upstream\.tls: the certificate and key do not load/);
  });

  it('an expired listener certificate: OK (serve starts with it, as nginx does) with a warning naming the key', async () => {
    const { runCli } = await import('../../fixtures/cli.ts');
    const { dir, file } = await writeGateConfig('http://127.0.0.1:9', (c) => {
      c.listen.tls = { cert_file: pki.expired.cert, key_file: pki.expired.key };
    });
    dirs.push(dir);
    const r = await runCli(['check-config', '-c', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^config OK: /);
    expect(r.stderr).toBe('jitgate check-config: warning: listen.tls.cert_file: the certificate expired at 2021-01-01T00:00:00.000Z\n');
  });
});

describe('jitgate serve with listen.tls', () => {
  it('announces an https:// proxy URL and verifies client certificates as configured', async () => {
    const { spawnGate } = await import('../../fixtures/servers.ts');
    const { dir, file } = await writeGateConfig('http://127.0.0.1:9', (c) => {
      c.listen.tls = { cert_file: pki.server.cert, key_file: pki.server.key, client_ca_file: pki.ca.cert, require_client_cert: true };
    });
    dirs.push(dir);
    const gate = await spawnGate(file);
    try {
      expect(gate.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const port = Number(new URL(gate.url).port);
      const r = await tlsCall(port, '/orders/42', { ca: pki.ca, client: pki.workloadB });
      expect([r.status, r.reason]).toEqual([401, 'missing_token']);
      await expect(tlsCall(port, '/orders/42', { ca: pki.ca })).rejects.toThrow();
    } finally {
      gate.child.kill('SIGTERM');
      await gate.exited;
    }
  });

  it("with workers: 2, a refused change is listed by the primary's /readyz: each worker's listener, and the primary's admin listener", async () => {
    const { spawnGate, startRecordingUpstream } = await import('../../fixtures/servers.ts');
    const up = await startRecordingUpstream();
    const live = (name: string) => join(pki.dir, `cluster-${name}`);
    for (const n of ['proxy.crt', 'admin.crt']) await copyFile(pki.server.cert, live(n));
    for (const n of ['proxy.key', 'admin.key']) await copyFile(pki.server.key, live(n));
    const { dir, file } = await writeGateConfig(up.url, (c) => {
      c.listen.tls = { cert_file: live('proxy.crt'), key_file: live('proxy.key'), reload_interval: '50ms' };
      c.admin.tls = { cert_file: live('admin.crt'), key_file: live('admin.key'), reload_interval: '50ms' };
      c.workers = 2;
    });
    dirs.push(dir);
    const gate = await spawnGate(file);
    try {
      const adminPort = Number(new URL(gate.adminUrl).port);
      const readyz = async () => {
        const r = await tlsCall(adminPort, '/readyz', { ca: pki.ca });
        return { status: r.status, problems: ((JSON.parse(r.body) as { problems?: string[] }).problems ?? []).sort() };
      };
      expect(await readyz()).toEqual({ status: 200, problems: [] });
      // Half-written pairs on both listeners: the old ones stay in service, and the cluster stays ready.
      await copyFile(pki.server2.key, live('proxy.key'));
      await copyFile(pki.server2.key, live('admin.key'));
      const listed = await until(async () => (await readyz()).problems.length, 3);
      const r = await readyz();
      expect([listed, r.status]).toEqual([3, 200]);
      expect(r.problems[0]).toMatch(/^admin TLS: TLS certificate files changed but do not load; keeping the previous ones: admin\.tls: the certificate and key do not load/);
      expect(r.problems[1]).toMatch(/^worker 1: proxy TLS: .*: listen\.tls: the certificate and key do not load/);
      expect(r.problems[2]).toMatch(/^worker 2: proxy TLS: .*: listen\.tls: the certificate and key do not load/);
      // The matching certificates arrive: nothing is listed any more.
      await copyFile(pki.server2.cert, live('proxy.crt'));
      await copyFile(pki.server2.cert, live('admin.crt'));
      expect(await until(async () => (await readyz()).problems.length, 0)).toBe(0);
      // The primary's admin listener counts into the cluster's /metrics: its refused and applied
      // reloads, and a failed handshake (plain HTTP to its TLS port).
      const s = netConnect(adminPort, '127.0.0.1', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
      s.on('error', () => undefined);
      await new Promise((done) => s.on('close', done));
      const counted = async (name: string): Promise<number> => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec((await tlsCall(adminPort, '/metrics', { ca: pki.ca })).body)?.[1] ?? 0);
      expect(await until(() => counted('jitgate_tls_handshake_failures_total\\{listener="admin"\\}'), 1)).toBe(1);
      expect(await counted('jitgate_tls_reloads_total\\{listener="admin",result="error"\\}')).toBeGreaterThanOrEqual(1);
      expect(await counted('jitgate_tls_reloads_total\\{listener="admin",result="ok"\\}')).toBeGreaterThanOrEqual(1);
      expect(await counted('jitgate_tls_reloads_total\\{listener="proxy",result="ok"\\}')).toBeGreaterThanOrEqual(2);
    } finally {
      gate.child.kill('SIGTERM');
      await gate.exited;
      await up.close();
    }
  });

  // A cluster with TLS on both sides, started and rotated: up to 19 s with two test files at a time and CPU stress beside them.
  it('with workers: 2, every worker checks the binding against its own connections', async () => {
    const { spawnGate, startRecordingUpstream, tokenNow } = await import('../../fixtures/servers.ts');
    const up = await startRecordingUpstream();
    const { dir, file, keys } = await writeGateConfig(up.url, (c) => {
      c.listen.tls = { cert_file: pki.server.cert, key_file: pki.server.key, client_ca_file: pki.ca.cert };
      c.workers = 2;
    });
    dirs.push(dir);
    const gate = await spawnGate(file);
    try {
      expect(gate.url).toMatch(/^https:/);
      const port = Number(new URL(gate.url).port);
      const token = await tokenNow(keys, { cnf: { 'x5t#S256': pki.workloadA.x5t } });
      const headers = { authorization: `Bearer ${token}` };
      // Fresh connections each time, so both workers take some of them.
      for (let i = 0; i < 6; i++) {
        expect((await tlsCall(port, '/orders/42', { ca: pki.ca, client: pki.workloadA, headers })).status).toBe(200);
        expect((await tlsCall(port, '/orders/42', { ca: pki.ca, client: pki.workloadB, headers })).reason).toBe('cert_binding_mismatch');
      }
      expect(up.requests.every((r) => r.headers['x-jit-client-cert-sha256'] === pki.workloadA.x5t)).toBe(true);
      expect(up.requests).toHaveLength(6);
    } finally {
      gate.child.kill('SIGTERM');
      await gate.exited;
      await up.close();
    }
  }, 60_000);
});
