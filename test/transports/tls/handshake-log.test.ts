/**
 * A refused client certificate is logged (debug) with OpenSSL's own reason: node reports it as
 * "socket hang up" (ECONNRESET) and keeps the verify error on the socket (a review of 2026-12-06
 * found operators left with "socket hang up" alone). Real TLS on loopback with the openssl PKI.
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverTlsSchema } from '../../../src/config/tls-schema.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { createTlsServer, type TlsServer } from '../../../src/transports/tls/server-tls.ts';
import { makePki, type CertFiles, type Pki } from '../../fixtures/pki.ts';

let pki: Pki;
let tls: TlsServer;
let port: number;
const lines: Record<string, unknown>[] = [];

beforeAll(async () => {
  pki = await makePki();
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const logger = createLogger({ level: 'debug', destination: 'stdout' }, sink);
  const config = serverTlsSchema.parse({ cert_file: pki.server.cert, key_file: pki.server.key, client_ca_file: pki.ca.cert, require_client_cert: true });
  tls = createTlsServer({}, config, { name: 'proxy', key: 'listen.tls', logger });
  tls.server.on('request', (_req, res) => res.end('ok'));
  await new Promise<void>((r) => tls.server.listen(0, '127.0.0.1', r));
  port = (tls.server.address() as AddressInfo).port;
});
afterAll(async () => {
  tls?.stop();
  await new Promise((r) => tls?.server.close(r));
  await pki?.remove();
});

/** A handshake with `client`'s certificate; resolves when the server has dropped it. */
function handshake(client: CertFiles): Promise<void> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(pki.ca.cert), cert: readFileSync(client.cert), key: readFileSync(client.key) });
    s.on('error', () => resolve());
    s.on('close', () => resolve());
    s.on('secureConnect', () => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  });
}

async function logged(n: number): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 3000;
  while (lines.filter((l) => l.msg === 'TLS handshake failed').length < n) {
    if (Date.now() > deadline) throw new Error('no handshake failure logged');
    await new Promise((r) => setTimeout(r, 20));
  }
  return lines.filter((l) => l.msg === 'TLS handshake failed')[n - 1]!;
}

describe('a refused client certificate, logged', () => {
  it('names the verify reason: an untrusted CA, an expired certificate', async () => {
    await handshake(pki.rogue);
    expect(await logged(1)).toMatchObject({ level: 'debug', listener: 'proxy', verify: expect.stringMatching(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/) });
    await handshake(pki.expired);
    expect(await logged(2)).toMatchObject({ verify: 'CERT_HAS_EXPIRED' });
  });
});
