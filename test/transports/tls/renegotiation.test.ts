/**
 * TLS renegotiation (SPEC §11, the TLS listener): a client that asks to renegotiate a TLS 1.2
 * connection — a full handshake's CPU on the gate per attempt — has its connection closed, without
 * a plain-text answer, and the attempt is counted as a failed handshake. TLS 1.3 has no
 * renegotiation; this is about 1.2, which the listener still accepts.
 */
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { connect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, type Pki } from '../../fixtures/pki.ts';
import { startGateInProcess, startRecordingUpstream, type InProcessGate, type RecordingUpstream } from '../../fixtures/servers.ts';
import { handshakeFailures, tlsCall } from './helpers.ts';

let pki: Pki;
let upstream: RecordingUpstream;
let gate: InProcessGate;
const sockets: TLSSocket[] = [];

beforeAll(async () => {
  pki = await makePki();
  upstream = await startRecordingUpstream();
  gate = await startGateInProcess(upstream.url, (c) => {
    c.listen.tls = { cert_file: pki.server.cert, key_file: pki.server.key };
  });
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await gate?.close();
  if (gate !== undefined) await rm(gate.dir, { recursive: true, force: true });
  await upstream?.close();
  await pki?.remove();
});

/** A secured TLS 1.2 connection to the gate's proxy listener. */
function connect12(): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: gate.running.listeners.proxy.port, servername: 'localhost', ca: readFileSync(pki.ca.cert), maxVersion: 'TLSv1.2' }, () => resolve(s));
    sockets.push(s);
    s.once('error', reject);
  });
}


describe('a client-initiated renegotiation', () => {
  it('closes the connection without an answer and is counted', async () => {
    const before = await handshakeFailures(gate);
    const s = await connect12();
    expect(s.getProtocol()).toBe('TLSv1.2');
    let bytes = 0;
    s.on('data', (c: Buffer) => (bytes += c.length));
    s.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
    // Node's client asks for it; the gate refuses, so the renegotiation never completes.
    const renegotiated = new Promise<Error | null>((resolve) => {
      const started = s.renegotiate({}, (err) => resolve(err ?? null));
      if (!started) resolve(new Error('renegotiate() refused to start'));
    });
    // Closed by the gate at once, not by an idle timeout later (10 s by default).
    const how = await Promise.race([closed.then(() => 'closed'), new Promise<'open'>((r) => setTimeout(() => r('open'), 3_000))]);
    expect(how).toBe('closed');
    expect(s.destroyed).toBe(true);
    expect(bytes).toBe(0);
    // The client's callback reports a failure, or never fires because the socket closed first.
    const outcome = await Promise.race([renegotiated, new Promise<'pending'>((r) => setTimeout(() => r('pending'), 200))]);
    expect(outcome).not.toBeNull();
    expect(await handshakeFailures(gate)).toBe(before + 1);
  });

  it('leaves other connections served', async () => {
    const r = await tlsCall(gate.running.listeners.proxy.port, '/healthz-of-upstream', { ca: pki.ca });
    // No token: the gate answers 401 itself, over TLS, as usual.
    expect(r.status).toBe(401);
    expect(r.reason).toBe('missing_token');
  });
});
