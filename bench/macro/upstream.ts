/**
 * The bench's backend, run as a child process (its own event loop and core share): node:http with
 * fixed answers, so the numbers measure what sits in front of it.
 *   GET  /orders/small        → 200 "ok"
 *   GET  /orders/1kb          → 200, 1 KiB
 *   GET  /orders/1mb          → 200, 1 MiB (one preallocated buffer)
 *   POST /orders/sink         → reads the body, 200 with the byte count
 *   POST /v1/traces           → an OTLP/HTTP collector stand-in for the tracing row: reads the export, 200 {}
 *   GET  /orders/echo-headers → 200, the raw request headers as JSON (pre-flight checks only)
 * Anything else → 404, which no scenario expects, so a wrong route shows up as unexpected status.
 * Prints its port as JSON on the IPC channel once listening.
 */
import { createServer } from 'node:http';
import { serveForRunner } from './processes.ts';

const SMALL = Buffer.from('ok');
const KB = Buffer.alloc(1024, 'k');
const MB = Buffer.alloc(1024 * 1024, 'm');

function fixed(body: Buffer): [string, string][] {
  return [
    ['content-type', 'text/plain'],
    ['content-length', String(body.length)],
  ];
}
const HEAD_SMALL = fixed(SMALL);
const HEAD_KB = fixed(KB);
const HEAD_MB = fixed(MB);

const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  const url = req.url ?? '';
  if (req.method === 'POST' && url === '/v1/traces') {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 }).end('{}'));
    return;
  }
  if (req.method === 'POST' && url === '/orders/sink') {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => {
      const body = String(n);
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    return;
  }
  if (req.method === 'GET' || req.method === 'HEAD') {
    switch (url) {
      case '/orders/small':
        res.writeHead(200, HEAD_SMALL);
        res.end(SMALL);
        return;
      case '/orders/1kb':
        res.writeHead(200, HEAD_KB);
        res.end(KB);
        return;
      case '/orders/1mb':
        res.writeHead(200, HEAD_MB);
        res.end(MB);
        return;
      case '/orders/echo-headers': {
        const body = JSON.stringify(req.rawHeaders);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
        return;
      }
    }
  }
  req.resume();
  res.writeHead(404, { 'content-length': '0' });
  res.end();
});
server.maxRequestsPerSocket = 0;
serveForRunner(server);
