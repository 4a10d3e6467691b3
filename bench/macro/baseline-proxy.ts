/**
 * The same-runtime ceiling: a plain reverse proxy with no authorization, written the way jitgate
 * forwards (src/transports/proxy/forward.ts) — node:http in, one undici Pool out with the same
 * options, `pool.dispatch` with a handler object, hop-by-hop headers dropped, X-Forwarded-*
 * added, bodies streamed with backpressure both ways. Whatever jitgate costs beyond this row is
 * the price of the decision, metrics and audit line.
 *
 *   node bench/macro/baseline-proxy.ts <upstream origin> [connections=128] [dispatch|stream|request]
 *   node bench/macro/baseline-proxy.ts <upstream origin> <connections> sync-verify <jwks> <issuer> <audience> <path prefix>
 * The default, dispatch, is what jitgate uses; stream and request are undici's higher layers,
 * kept to show what they would cost. sync-verify adds the minimal synchronous token check of sync-verify.ts.
 * Runs as a child process and reports its port on the IPC channel.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { serveForRunner } from './processes.ts';
import { syncVerifier } from './sync-verify.ts';

const origin = process.argv[2];
if (origin === undefined) throw new Error('usage: baseline-proxy.ts <upstream origin> [connections] [dispatch|stream|request]');
const connections = Number(process.argv[3] ?? 128);

const pool = new Pool(origin, { connections, pipelining: 1, keepAliveTimeout: 4_000, connectTimeout: 2_000, headersTimeout: 30_000, bodyTimeout: 30_000 });

const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'proxy-authenticate']);

function requestHeaders(req: IncomingMessage): { headers: string[]; hasBody: boolean } {
  const raw = req.rawHeaders;
  const out: string[] = [];
  let xff: string | undefined;
  let host: string | undefined;
  let hasBody = false;
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (lower === 'transfer-encoding') hasBody = true;
    if (HOP.has(lower)) continue;
    if (lower === 'x-forwarded-for') {
      xff = xff === undefined ? raw[i + 1]! : `${xff}, ${raw[i + 1]!}`;
      continue;
    }
    if (lower === 'content-length') hasBody = true;
    if (lower === 'host') host ??= raw[i + 1];
    out.push(raw[i]!, raw[i + 1]!);
  }
  const peer = req.socket.remoteAddress ?? '';
  out.push('x-forwarded-for', xff === undefined ? peer : `${xff}, ${peer}`, 'x-forwarded-proto', 'http');
  if (host !== undefined) out.push('x-forwarded-host', host);
  return { headers: out, hasBody };
}

function responseHeaders(raw: readonly Buffer[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    if (HOP.has(name.toLowerCase())) continue;
    out.push(name, raw[i + 1]!.toString('latin1'));
  }
  return out;
}

class Exchange implements Dispatcher.DispatchHandler {
  readonly #res: ServerResponse;
  #controller: Dispatcher.DispatchController | undefined;

  constructor(res: ServerResponse) {
    this.#res = res;
    res.on('drain', () => this.#controller?.resume());
    res.on('close', () => {
      if (!res.writableFinished) this.#controller?.abort(new Error('client closed'));
    });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number): void {
    if (status < 200) return;
    this.#res.writeHead(status, responseHeaders(controller.rawHeaders as Buffer[]));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#res.write(chunk)) controller.pause();
  }

  onResponseEnd(): void {
    this.#res.end();
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    const res = this.#res;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.shouldKeepAlive = false;
    res.writeHead((err as { code?: string }).code === 'UND_ERR_HEADERS_TIMEOUT' ? 504 : 502, { 'content-length': '0' });
    res.end();
  }
}

/** undici's higher layers, for the comparison in bench/README.md: a promise and a Readable per request. */
function objectHeaders(h: Record<string, string | string[] | undefined>): string[] {
  const out: string[] = [];
  for (const k in h) {
    const v = h[k];
    if (v === undefined || HOP.has(k)) continue;
    if (Array.isArray(v)) for (const x of v) out.push(k, x);
    else out.push(k, v);
  }
  return out;
}

function fail(res: ServerResponse): void {
  if (res.headersSent) res.destroy();
  else {
    res.writeHead(502, { 'content-length': '0' });
    res.end();
  }
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const handlers: Record<string, Handler> = {
  dispatch(req, res) {
    const { headers, hasBody } = requestHeaders(req);
    pool.dispatch({ path: req.url ?? '/', method: req.method as Dispatcher.HttpMethod, headers, body: hasBody ? req : null }, new Exchange(res));
  },
  stream(req, res) {
    const { headers, hasBody } = requestHeaders(req);
    pool
      .stream({ path: req.url ?? '/', method: req.method as Dispatcher.HttpMethod, headers, body: hasBody ? req : null }, ({ statusCode, headers: h }) => {
        res.writeHead(statusCode, objectHeaders(h));
        return res;
      })
      .catch(() => fail(res));
  },
  request(req, res) {
    const { headers, hasBody } = requestHeaders(req);
    pool
      .request({ path: req.url ?? '/', method: req.method as Dispatcher.HttpMethod, headers, body: hasBody ? req : null })
      .then(({ statusCode, headers: h, body }) => {
        res.writeHead(statusCode, objectHeaders(h));
        body.pipe(res);
      })
      .catch(() => fail(res));
  },
};

const mode = process.argv[4] ?? 'dispatch';
if (mode === 'sync-verify') {
  // The minimal synchronous-verify gate (sync-verify.ts): verify, check claims, then forward as `dispatch` does.
  const [jwks, issuer, audience, prefix] = process.argv.slice(5);
  const gate = syncVerifier(jwks!, issuer!, audience!, prefix ?? '/');
  handlers['sync-verify'] = (req, res) => {
    const status = gate.check(req.headers.authorization, req.method ?? 'GET', req.url ?? '/');
    if (status === undefined) return handlers.dispatch!(req, res);
    res.writeHead(status, { 'content-length': '0' });
    res.end();
  };
}
const handler = handlers[mode];
if (handler === undefined) throw new Error(`mode ${mode}: expected dispatch, stream, request or sync-verify`);
const server = createServer({ keepAliveTimeout: 5_000, requireHostHeader: true }, handler);
server.maxRequestsPerSocket = 0;
serveForRunner(server);
