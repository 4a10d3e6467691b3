/**
 * ConnectionLanes on a real node:http server: what it relies on in node:http (a pipelined request's
 * response has no socket until the answers before it are done, then gets one with a 'socket'
 * event), and what it promises (one request handled at a time per connection, in order, reading
 * paused while requests wait and resumed after, at most `max` per connection).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionLanes } from '../../../src/transports/proxy/connection-lane.ts';

const servers: Server[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function serve(onRequest: (req: IncomingMessage, res: ServerResponse) => void): Promise<number> {
  const server = createServer(onRequest);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

function client(port: number): { socket: Socket; statuses: () => string[]; answers: (n: number) => Promise<string[]> } {
  const socket = connect(port, '127.0.0.1');
  sockets.push(socket);
  let text = '';
  let wake: (() => void) | undefined;
  socket.on('data', (d: Buffer) => {
    text += d.toString('latin1');
    wake?.();
  });
  // "status body" per complete answer; every answer here has a content-length.
  const statuses = (): string[] => {
    const out: string[] = [];
    let at = 0;
    for (;;) {
      const end = text.indexOf('\r\n\r\n', at);
      if (end === -1) return out;
      const head = text.slice(at, end);
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
      if (text.length < end + 4 + length) return out;
      out.push(`${head.slice(9, 12)} ${text.slice(end + 4, end + 4 + length)}`);
      at = end + 4 + length;
    }
  };
  const answers = async (n: number): Promise<string[]> => {
    while (statuses().length < n) await new Promise<void>((r) => (wake = r));
    return statuses();
  };
  return { socket, statuses, answers };
}

const get = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;

describe('node:http, as ConnectionLanes relies on it', () => {
  it('a pipelined request’s response has no socket until the one before is done, then a socket event', async () => {
    const seen: string[] = [];
    const port = await serve((req, res) => {
      seen.push(`${req.url} ${res.socket === null ? 'queued' : 'active'}`);
      res.once('socket', () => seen.push(`${req.url} socket`));
      setTimeout(() => res.writeHead(200, { 'content-length': req.url!.length - 1 }).end(req.url!.slice(1)), 20);
    });
    const c = client(port);
    c.socket.write(get('/a') + get('/b') + get('/c'));
    expect(await c.answers(3)).toEqual(['200 a', '200 b', '200 c']);
    expect(seen).toEqual(['/a active', '/b queued', '/c queued', '/b socket', '/c socket']);
    // A keep-alive request after the answers: the connection's only one again.
    c.socket.write(get('/d'));
    await c.answers(4);
    expect(seen.at(-1)).toBe('/d active');
  });
});

describe('ConnectionLanes', () => {
  /** `hold`: each request is answered only once the promise it returns resolves (default: after 15 ms). */
  async function laneServer(max: number, hold?: (req: IncomingMessage) => Promise<void>): Promise<{ port: number; log: string[]; inFlight: () => number; peak: () => number }> {
    const log: string[] = [];
    let inFlight = 0;
    let peak = 0;
    const lanes = new ConnectionLanes(
      max,
      (req, res) => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        log.push(`handle ${req.url}`);
        const answer = (): void => {
          inFlight--;
          if (!res.destroyed) res.writeHead(200, { 'content-length': req.url!.length - 1 }).end(req.url!.slice(1));
        };
        if (hold === undefined) setTimeout(answer, 15);
        else void hold(req).then(answer);
      },
      (req, res) => {
        log.push(`refuse ${req.url}`);
        res.writeHead(429, { 'content-length': '0' });
        res.end();
      },
    );
    const port = await serve((req, res) => lanes.admit(req, res, false));
    return { port, log, inFlight: () => inFlight, peak: () => peak };
  }

  it('handles pipelined requests one at a time, in order, and reads on afterwards', async () => {
    const g = await laneServer(100);
    const c = client(g.port);
    c.socket.write(['/1', '/2', '/3', '/4', '/5'].map(get).join(''));
    expect(await c.answers(5)).toEqual(['200 1', '200 2', '200 3', '200 4', '200 5']);
    expect(g.peak()).toBe(1);
    expect(g.log).toEqual(['handle /1', 'handle /2', 'handle /3', 'handle /4', 'handle /5']);
    // The socket was paused while they waited; it reads again now.
    expect(c.socket.readyState).toBe('open');
    c.socket.write(get('/6') + get('/7'));
    expect((await c.answers(7)).slice(5)).toEqual(['200 6', '200 7']);
    expect(g.peak()).toBe(1);
  });

  it('refuses what is beyond max per connection (active one included), and the connection closes after it', async () => {
    const g = await laneServer(3);
    const c = client(g.port);
    const closed = new Promise((r) => c.socket.once('close', r));
    c.socket.write(['/1', '/2', '/3', '/4', '/5'].map(get).join(''));
    await closed;
    expect(c.statuses().slice(0, 4)).toEqual(['200 1', '200 2', '200 3', '429 ']);
    expect(g.log.filter((l) => l.startsWith('handle'))).toEqual(['handle /1', 'handle /2', 'handle /3']);
    expect(g.log).toContain('refuse /4');
  });

  it('a connection that goes away while requests wait: they are never handled', async () => {
    // /1 is answered only after the server has seen the connection close, so /2 and /3 are still waiting then
    // (a fixed 5 ms before the client left raced the answer on a loaded machine).
    let gone!: () => void;
    const closed = new Promise<void>((r) => (gone = r));
    const g = await laneServer(100, (req) => {
      req.socket.once('close', gone);
      return closed;
    });
    const c = client(g.port);
    c.socket.write(['/1', '/2', '/3'].map(get).join(''));
    while (g.log.length === 0) await new Promise((r) => setTimeout(r, 5));
    c.socket.destroy();
    await closed;
    // Time for the lane to take /2 if it were going to.
    await new Promise((r) => setTimeout(r, 100));
    expect(g.log).toEqual(['handle /1']);
  });

  it('separate connections do not wait for each other', async () => {
    const g = await laneServer(100);
    const a = client(g.port);
    const b = client(g.port);
    a.socket.write(get('/a1') + get('/a2'));
    b.socket.write(get('/b1') + get('/b2'));
    await Promise.all([a.answers(2), b.answers(2)]);
    expect(g.peak()).toBe(2);
  });
});
