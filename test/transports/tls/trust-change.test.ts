/**
 * A CA removed from `client_ca_file` stops being trusted on the connections that were open when it
 * was removed, not only on new handshakes (SPEC §11; a gap the second review round left open): a
 * changed bundle ends every connection verified under the old one, idle ones at once and busy ones
 * after their current response, as an nginx reload does; a request read on one later is not served,
 * and a connection whose handshake spans the change is refused. An unchanged bundle ends none.
 * Real TLS on loopback, raw HTTP/1.1 over node:tls so the connection's own close is observed.
 */
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CertFiles } from '../../../src/issuing/dev-pki.ts';
import { makePki, type Pki } from '../../fixtures/pki.ts';
import { answerOk, startGateInProcess, startRecordingUpstream, type InProcessGate, type RecordingUpstream } from '../../fixtures/servers.ts';

let pki: Pki;
let upstream: RecordingUpstream;
let bundle: string;
const gates: InProcessGate[] = [];

beforeAll(async () => {
  pki = await makePki();
  upstream = await startRecordingUpstream();
  bundle = join(pki.dir, 'bundle.pem');
}, 60_000);
afterAll(async () => {
  await Promise.all(gates.map((g) => g.close()));
  await upstream?.close();
  await pki?.remove();
});

const BOTH = () => pki.ca.pem + pki.untrusted.pem;

async function gateTrusting(pem: string, where: 'listen' | 'admin' = 'listen'): Promise<InProcessGate> {
  await writeFile(bundle, pem);
  const g = await startGateInProcess(upstream.url, (c) => {
    c[where].tls = { cert_file: pki.server.cert, key_file: pki.server.key, client_ca_file: bundle, require_client_cert: true, reload_interval: '20ms' };
    // Far beyond the test: a connection closed here was closed by the bundle change, not by idling.
    c.limits = { ...c.limits, keep_alive_timeout: '60s' };
  });
  gates.push(g);
  return g;
}

/** A raw keep-alive TLS connection with `client`'s certificate; `closed` resolves when the gate ends it. */
interface Conn {
  readonly socket: TLSSocket;
  readonly closed: Promise<void>;
  /** The bytes received so far. */
  text(): string;
}

function open(port: number, client: CertFiles): Promise<Conn> {
  return new Promise((resolve, reject) => {
    let received = '';
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(pki.ca.cert), cert: readFileSync(client.cert), key: readFileSync(client.key) }, () =>
      resolve({ socket, closed, text: () => received }),
    );
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (received += d));
    socket.once('error', reject);
  });
}

/** Sends one request and waits for a whole answer (head, then a Content-Length or chunked body). */
async function exchange(c: Conn, head: string): Promise<string> {
  const from = c.text().length;
  c.socket.write(head);
  for (;;) {
    const t = c.text().slice(from);
    const end = t.indexOf('\r\n\r\n');
    const len = /\r\ncontent-length: *(\d+)/i.exec(t);
    if (end !== -1 && len !== null && t.length >= end + 4 + Number(len[1])) return t;
    if (end !== -1 && /\r\ntransfer-encoding: *chunked\r\n/i.test(t.slice(0, end + 2)) && t.endsWith('\r\n0\r\n\r\n')) return t;
    if (c.socket.destroyed) throw new Error(`connection closed mid-answer: ${JSON.stringify(t)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Whether the gate closed `c` within `ms`: the bound is below any idle timeout the connection has
 * (60 s on the proxy here, node's 5 s on the admin listener), so only the bundle change can close it.
 */
async function closedWithin(c: Conn, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([c.closed.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

const get = (path: string, token?: string) => `GET ${path} HTTP/1.1\r\nHost: localhost\r\n${token === undefined ? '' : `Authorization: Bearer ${token}\r\n`}\r\n`;

/**
 * The upstream's answer to a GET of `path` is under way (head and a first chunk `part` sent) and held
 * there, a download, until the returned function is called (`-rest`); anything else is answered at
 * once. The test puts `answerOk` back in its `finally`.
 */
function holdDownload(path: string): () => void {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  upstream.respond = (req, res, rec) => {
    if (req.method !== 'GET' || req.url !== path) return answerOk(req, res, rec);
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('part');
    void held.then(() => res.end('-rest'));
  };
  return release;
}

/**
 * A gate trusting both CAs, a connection of workload A sending `requests` (the first of which
 * holdDownload keeps under way), then A's CA removed and the change applied.
 */
async function downloadThenCaRemoved(requests: (token: string) => string): Promise<{ c: Conn; token: string; before: number }> {
  const g = await gateTrusting(BOTH());
  const c = await open(g.running.listeners.proxy.port, pki.workloadA);
  const token = await g.token();
  const before = upstream.requests.length;
  c.socket.write(requests(token));
  await upstream.waitFor(before + 1);
  await writeFile(bundle, pki.untrusted.pem);
  await bundleApplied(g);
  return { c, token, before };
}

/** Resolves once the gate has logged that it applied a changed bundle (`count`-th time). */
async function bundleApplied(g: InProcessGate, count = 1): Promise<void> {
  while (g.logs.filter((l) => l.msg === 'TLS certificate files changed; new handshakes use them').length < count) await new Promise((r) => setTimeout(r, 10));
}

/** A fresh handshake with `client`'s certificate: 'ok' or the failure. */
function handshake(port: number, client: CertFiles): Promise<string> {
  return open(port, client).then(
    async (c) => {
      // TLS 1.3: a refused client certificate shows only once the gate reads; ask and see.
      const answer = await exchange(c, get('/healthz')).catch((err: Error) => `refused: ${err.message}`);
      c.socket.destroy();
      return answer.startsWith('refused') ? answer : 'ok';
    },
    (err: Error) => `refused: ${err.message}`,
  );
}

describe('a changed client CA bundle', () => {
  it('closes an idle keep-alive connection whose CA was removed; new handshakes with its certificates fail', async () => {
    const g = await gateTrusting(BOTH());
    const port = g.running.listeners.proxy.port;
    const c = await open(port, pki.workloadA);
    const first = await exchange(c, get('/orders/42', await g.token()));
    expect(first).toMatch(/^HTTP\/1\.1 200 /);
    expect(first).toMatch(/\r\nconnection: keep-alive\r\n/i);
    expect(c.socket.destroyed).toBe(false);

    await writeFile(bundle, pki.untrusted.pem);
    await bundleApplied(g);
    expect(await closedWithin(c, 10_000)).toBe(true);
    expect(c.text()).toBe(first); // closed without another byte
    expect(await handshake(port, pki.workloadA)).toMatch(/^refused/);
  });

  it('lets a busy connection finish its response with Connection: close, then closes it', async () => {
    const g = await gateTrusting(BOTH());
    const port = g.running.listeners.proxy.port;
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    upstream.respond = (req, res, rec) => void held.then(() => answerOk(req, res, rec));
    try {
      const c = await open(port, pki.workloadA);
      const before = upstream.requests.length;
      const answer = exchange(c, get('/orders/42', await g.token()));
      await upstream.waitFor(before + 1);

      await writeFile(bundle, pki.untrusted.pem);
      await bundleApplied(g);
      expect(c.socket.destroyed).toBe(false); // in flight: not cut
      release();
      const text = await answer;
      expect(text).toMatch(/^HTTP\/1\.1 200 /);
      expect(text).toMatch(/\r\nconnection: close\r\n/i);
      expect(await closedWithin(c, 10_000)).toBe(true);
    } finally {
      upstream.respond = answerOk;
      release();
    }
  });

  it('does not serve a request read on an old-trust connection after the change (a re-probe: pipelined behind a busy one, it reached the backend)', async () => {
    const release = holdDownload('/orders/42');
    try {
      // A download in progress; the bundle changes; then the next request, pipelined.
      const { c, token, before } = await downloadThenCaRemoved((t) => get('/orders/42', t));
      c.socket.write(`PATCH /orders/42 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\nContent-Length: 0\r\n\r\n`);
      await new Promise((r) => setTimeout(r, 100)); // the PATCH is read while the GET is still answering
      release();
      expect(await closedWithin(c, 10_000)).toBe(true);
      expect(c.text()).toMatch(/^HTTP\/1\.1 200 [^]*part[^]*-rest/);
      expect(c.text().match(/HTTP\/1\.1 /g)).toHaveLength(1); // one answer: the PATCH got none
      expect(upstream.requests.slice(before).map((r) => r.method)).toEqual(['GET']);
    } finally {
      upstream.respond = answerOk;
      release();
    }
  });

  it('does not serve requests pipelined before the change and still queued behind a download when it lands (a re-probe)', async () => {
    const release = holdDownload('/orders/42/slow');
    try {
      const { c, before } = await downloadThenCaRemoved((t) => get('/orders/42/slow', t) + get('/orders/42/a', t) + get('/orders/42/b', t));
      release();
      expect(await closedWithin(c, 10_000)).toBe(true);
      expect(c.text()).toMatch(/^HTTP\/1\.1 200 [^]*part[^]*-rest/);
      expect(upstream.requests.slice(before).map((r) => r.url)).toEqual(['/orders/42/slow']);
    } finally {
      upstream.respond = answerOk;
      release();
    }
  });

  it('refuses a connection accepted before the change whose handshake completes after it', async () => {
    const g = await gateTrusting(BOTH());
    const port = g.running.listeners.proxy.port;
    const { connect: tcp } = await import('node:net');
    const raw = tcp(port, '127.0.0.1');
    await new Promise<void>((r, j) => raw.once('connect', () => r()).once('error', j));
    await writeFile(bundle, pki.ca.pem + pki.untrusted.pem + '\n'); // other bytes, same CAs
    await bundleApplied(g);
    // The handshake now, on the socket accepted under the old bundle.
    const answer = await new Promise<string>((resolve) => {
      const t = connect({ socket: raw, servername: 'localhost', ca: readFileSync(pki.ca.cert), cert: readFileSync(pki.workloadA.cert), key: readFileSync(pki.workloadA.key) }, () => t.write(get('/healthz')));
      let got = '';
      t.setEncoding('latin1');
      t.on('data', (d: string) => (got += d));
      t.on('error', () => undefined);
      t.on('close', () => resolve(got));
    });
    expect(answer).toBe('');
    expect(await handshake(port, pki.workloadA)).toBe('ok'); // a fresh connection is fine
  });

  it('survives an allowed request with a body (a re-probe: the first version crashed the process on it)', async () => {
    const g = await gateTrusting(BOTH());
    const port = g.running.listeners.proxy.port;
    const c = await open(port, pki.workloadA);
    const token = await g.token();
    for (let i = 0; i < 3; i++) {
      const a = await exchange(c, `PATCH /orders/42 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\nContent-Length: 5\r\n\r\nhello`);
      expect(a).toMatch(/^HTTP\/1\.1 200 /);
    }
    await new Promise((r) => setImmediate(r));
    expect(await exchange(c, get('/orders/42', token))).toMatch(/^HTTP\/1\.1 200 /);
    c.socket.destroy();
  });

  it('closes nothing when the bundle is rewritten with the same certificates, or when only a CA is added', async () => {
    const g = await gateTrusting(pki.ca.pem);
    const port = g.running.listeners.proxy.port;
    const c = await open(port, pki.workloadA);
    const token = await g.token();
    expect(await exchange(c, get('/orders/42', token))).toMatch(/^HTTP\/1\.1 200 /);

    await writeFile(bundle, pki.ca.pem); // same bytes, new mtime
    await bundleApplied(g, 1);
    const again = await exchange(c, get('/orders/42', token));
    expect(again).toMatch(/^HTTP\/1\.1 200 /);
    expect(again).toMatch(/\r\nconnection: keep-alive\r\n/i);
    expect(c.socket.destroyed).toBe(false);

    // A CA added is a changed bundle: the connection is ended gracefully, and its client is still
    // trusted on the next handshake (the CA it chains to stayed).
    await writeFile(bundle, BOTH());
    await bundleApplied(g, 2);
    expect(await closedWithin(c, 10_000)).toBe(true);
    expect(await handshake(port, pki.workloadA)).toBe('ok');
  });

  it('does the same on the admin listener', async () => {
    const g = await gateTrusting(BOTH(), 'admin');
    const port = g.running.listeners.admin.port;
    const c = await open(port, pki.workloadA);
    expect(await exchange(c, get('/healthz'))).toMatch(/^HTTP\/1\.1 200 /);
    await writeFile(bundle, pki.untrusted.pem);
    await bundleApplied(g);
    expect(await closedWithin(c, 3_000)).toBe(true);
    expect(await handshake(port, pki.workloadA)).toMatch(/^refused/);
  });
});
