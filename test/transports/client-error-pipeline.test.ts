/**
 * A malformed request pipelined behind one still being answered (a review of the proxy path): its
 * 400 used to go out at once, read by the client as the answer to the earlier request (which the
 * backend may already have run). Now the earlier answer is finished, then the connection closed;
 * the malformed request gets no answer of its own. A malformed request alone still gets its 400.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { answerClientError } from '../../src/transports/client-error.ts';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => (s.closeAllConnections(), s.close(r)))));
});

async function serve(): Promise<{ port: number; held: Promise<ServerResponse>; refused: Promise<void> }> {
  let hold!: (res: ServerResponse) => void;
  const held = new Promise<ServerResponse>((r) => (hold = r));
  let seen!: () => void;
  const refused = new Promise<void>((r) => (seen = r));
  const server = createServer((_req, res) => hold(res));
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    answerClientError(err, socket);
    seen();
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as AddressInfo).port, held, refused };
}

function exchange(port: number, bytes: string): { text: () => string; closed: Promise<void> } {
  const socket = connect(port, '127.0.0.1', () => socket.write(bytes));
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => (text += d));
  socket.on('error', () => undefined);
  return { text: () => text, closed: new Promise((r) => socket.once('close', () => r())) };
}

describe('a malformed request pipelined behind one being answered', () => {
  it('gets no 400 in the earlier answer\'s place: the earlier answer, then the connection closes', async () => {
    const { port, held, refused } = await serve();
    const c = exchange(port, 'GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n');
    const res = await held;
    await refused; // the bad request has been refused while the first is being answered
    await new Promise((r) => setImmediate(r)); // whatever was written then has reached the client
    expect(c.text()).toBe('');
    res.writeHead(200, { 'content-length': '5' }).end('first');
    await c.closed;
    expect(c.text()).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nfirst$/);
    expect(c.text().match(/HTTP\/1\.1 /g)).toHaveLength(1);
  });

  it('the same for a pipelined request whose head is too large (431): the earlier answer only (a re-probe)', async () => {
    const { port, held, refused } = await serve();
    const c = exchange(port, `GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nX-Big: ${'y'.repeat(40_000)}\r\n\r\n`);
    const res = await held;
    await refused;
    await new Promise((r) => setImmediate(r));
    expect(c.text()).toBe('');
    res.writeHead(200, { 'content-length': '5' }).end('first');
    await c.closed;
    expect(c.text()).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nfirst$/);
  });

  it('a malformed request alone is answered 400 at once', async () => {
    const { port } = await serve();
    const c = exchange(port, 'GET /b HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n');
    await c.closed;
    expect(c.text()).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
  });
});

describe('a TLS-layer failure reported as a client error', () => {
  it('is closed, not answered: no HTTP bytes are written into a failed TLS session', async () => {
    const { Duplex } = await import('node:stream');
    const written: Buffer[] = [];
    const socket = new Duplex({ read() {}, write(chunk: Buffer, _enc, done) { written.push(chunk); done(); } });
    const err = Object.assign(new Error('provider signature failure'), { code: 'ERR_SSL_PROVIDER_SIGNATURE_FAILURE' });
    expect(answerClientError(err, socket)).toBeUndefined();
    expect(socket.destroyed).toBe(true);
    expect(written).toEqual([]);
    // The same socket shape with a parse error is answered (the test's stand-in is sound).
    const plain = new Duplex({ read() {}, write(chunk: Buffer, _enc, done) { written.push(chunk); done(); } });
    expect(answerClientError(Object.assign(new Error('bad'), { code: 'HPE_INVALID_METHOD' }), plain)).toBe('bad_request');
    await new Promise((r) => setImmediate(r));
    expect(Buffer.concat(written).toString()).toMatch(/^HTTP\/1\.1 400 /);
  });
});
