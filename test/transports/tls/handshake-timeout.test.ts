/**
 * Handshakes that never finish (SPEC §11, the TLS listener): a TCP client that sends nothing or half
 * a ClientHello is cut after the listener's handshake timeout (limits.headers_timeout), is counted
 * as a failed handshake, and a drain ends such connections at once — while a secured connection
 * with a request in flight still gets its answer.
 */
import { rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, type Pki } from '../../fixtures/pki.ts';
import { startGateInProcess, startRecordingUpstream, answerOk, type InProcessGate, type RecordingUpstream } from '../../fixtures/servers.ts';
import { handshakeFailures, tlsCall } from './helpers.ts';

let pki: Pki;
let upstream: RecordingUpstream;
/** Handshake timeout 300 ms (limits.headers_timeout). */
let quick: InProcessGate;
const gates: InProcessGate[] = [];
const sockets: Socket[] = [];

const tls = (p: Pki) => ({ cert_file: p.server.cert, key_file: p.server.key, client_ca_file: p.ca.cert, require_client_cert: false });

beforeAll(async () => {
  pki = await makePki();
  upstream = await startRecordingUpstream();
  quick = await startGateInProcess(upstream.url, (c) => {
    c.listen.tls = tls(pki);
    c.limits = { ...c.limits, headers_timeout: '300ms' };
  });
  gates.push(quick);
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(gates.map((g) => g.close()));
  await Promise.all(gates.map((g) => rm(g.dir, { recursive: true, force: true })));
  await upstream?.close();
  await pki?.remove();
});

/** A raw TCP client that writes `bytes` and reports when the server closes the connection. */
function rawClient(port: number, bytes: Buffer): { socket: Socket; closed: Promise<number> } {
  const started = Date.now();
  const socket = connect(port, '127.0.0.1', () => {
    if (bytes.length > 0) socket.write(bytes);
  });
  sockets.push(socket);
  socket.on('error', () => undefined);
  socket.resume();
  const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now() - started)));
  return { socket, closed };
}

/** Resolves with the elapsed ms when `closed` settles within `ms`, else with 'open'. */
const within = (closed: Promise<number>, ms: number): Promise<number | 'open'> =>
  Promise.race([closed, new Promise<'open'>((r) => setTimeout(() => r('open'), ms))]);


describe('a handshake that never completes', () => {
  it.each([
    ['sends nothing', Buffer.alloc(0)],
    ['sends half a ClientHello', Buffer.from('16030100c8010000c40303', 'hex')],
  ])('is closed by the gate after the handshake timeout when the client %s, and counted', async (_name, bytes) => {
    const before = await handshakeFailures(quick);
    const c = rawClient(quick.running.listeners.proxy.port, bytes);
    const elapsed = await within(c.closed, 5_000);
    expect(elapsed).not.toBe('open');
    expect(elapsed as number).toBeGreaterThanOrEqual(250);
    expect(await handshakeFailures(quick)).toBe(before + 1);
    // Closed without an answer: no plain-text HTTP error written into a TLS connection.
    expect(c.socket.bytesRead).toBe(0);
  });
});

describe('drain', () => {
  it('ends connections still in their handshake at once, and lets a secured request in flight finish', async () => {
    // Default handshake timeout (10 s): only the drain can end the handshaking connection in time.
    const g = await startGateInProcess(upstream.url, (c) => (c.listen.tls = tls(pki)));
    gates.push(g);
    const port = g.running.listeners.proxy.port;
    const token = await g.token();
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    upstream.respond = (_req, res) => void released.then(() => res.writeHead(200, { 'content-type': 'text/plain' }).end('slow but done'));
    try {
      const before = upstream.requests.length;
      const inFlight = tlsCall(port, '/orders/42', { ca: pki.ca, client: pki.workloadA, headers: { authorization: `Bearer ${token}` } });
      await upstream.waitFor(before + 1);
      const stuck = rawClient(port, Buffer.from('16030100c8010000c40303', 'hex'));
      await new Promise((r) => setTimeout(r, 100));
      const started = Date.now();
      const closing = g.running.close(8_000);
      expect(await within(stuck.closed, 1_000)).not.toBe('open');
      release();
      const r = await inFlight;
      expect(r.status).toBe(200);
      expect(r.body).toBe('slow but done');
      await closing;
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      release();
      upstream.respond = answerOk;
    }
  });
});

