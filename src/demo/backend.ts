/**
 * The demo "legacy" backend for `jitgate demo`: a plain node:http server that trusts whatever reaches it — which
 * is the point of putting jitgate in front. It answers every request under `/orders/...` with a JSON echo of the
 * method, the path exactly as received and the identity headers jitgate set (SPEC §4), so a demo user can see
 * what the backend was told. Anything else is 404. It never looks at `Authorization`; it reports only whether one
 * arrived, which should be never.
 *
 * @module
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface DemoBackendOptions {
  /** Default 127.0.0.1: the backend must only be reachable through the gate. */
  host?: string;
  /** Default 0 (a free port). */
  port?: number;
  /** Identity header prefix to echo; default `x-jit-`. */
  identityPrefix?: string;
}

export interface DemoBackend {
  readonly host: string;
  readonly port: number;
  /** `http://host:port`, ready for `upstream.url`. */
  readonly url: string;
  close(): Promise<void>;
}

/** What the backend answers for a request it serves. */
export interface DemoEcho {
  readonly backend: 'demo-orders';
  readonly method: string;
  /** The request target as received (path and query). */
  readonly path: string;
  /** Identity headers (prefix-matched), in arrival order. */
  readonly identity: Readonly<Record<string, string>>;
  /** True if an Authorization header reached the backend (jitgate strips it by default). */
  readonly authorization_forwarded: boolean;
  /** Request body size in bytes (drained, not kept). */
  readonly body_bytes: number;
}

const ORDERS = /^\/orders(?:\/|$|\?)/;

/** Starts the backend; resolves once it listens. */
export async function startDemoBackend(options: DemoBackendOptions = {}): Promise<DemoBackend> {
  const host = options.host ?? '127.0.0.1';
  const prefix = (options.identityPrefix ?? 'x-jit-').toLowerCase();
  const server = createServer((req, res) => void handle(req, res, prefix));
  // Keep-alive sockets from the gate's pool must not hold close() open for their idle timeout.
  server.keepAliveTimeout = 2_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  return {
    host,
    port,
    url: `http://${urlHost}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, prefix: string): Promise<void> {
  let bodyBytes = 0;
  try {
    for await (const chunk of req) bodyBytes += (chunk as Buffer).length;
  } catch {
    res.destroy();
    return;
  }
  const target = req.url ?? '/';
  if (!ORDERS.test(target)) {
    send(res, 404, { backend: 'demo-orders', error: 'not_found', path: target });
    return;
  }
  // Null prototype: header names come from the network.
  const identity: Record<string, string> = Object.create(null);
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name.startsWith(prefix)) identity[name] = raw[i + 1]!;
  }
  const echo: DemoEcho = {
    backend: 'demo-orders',
    method: req.method ?? '',
    path: target,
    identity,
    authorization_forwarded: req.headers.authorization !== undefined,
    body_bytes: bodyBytes,
  };
  send(res, 200, echo);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
