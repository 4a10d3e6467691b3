/**
 * Binding a node:http server as a `Listener` with a graceful close, shared by the proxy and the
 * admin listener (and open to the ext_authz HTTP service).
 *
 * Drain (SIGTERM): stop accepting; answers written from now on carry `Connection: close`;
 * connections close as soon as they go idle; after `graceMs` whatever is left is cut.
 */
import type { Server, ServerOptions, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { createServer as createNetServer, Server as NetServer, type AddressInfo, type Socket } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import type { Config } from '../config/schema.ts';
import { StartupError } from '../errors.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Listener } from './context.ts';

/** The `limits` every client-facing listener applies (the traffic port and the ext_authz HTTP port). */
export function clientServerOptions(limits: Config['limits']): ServerOptions {
  return {
    maxHeaderSize: limits.max_header_bytes,
    headersTimeout: limits.headers_timeout,
    requestTimeout: limits.request_timeout,
    keepAliveTimeout: limits.keep_alive_timeout,
    // node checks the two timeouts above on this interval (default 30s, which would stretch a
    // 10s headers_timeout to 40s); a sweep over the connection list once a second is cheap.
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.headers_timeout / 4))),
    // The handler refuses a missing Host itself (400 missing_host, with the reason body), for
    // HTTP/1.0 too — node's own check answers a bare 400 and only for HTTP/1.1.
    requireHostHeader: false,
  };
}

/**
 * limits.max_connections on a client-facing listener (the proxy, the ext_authz HTTP and gRPC
 * services: node:http2's server is a net.Server too): past it node closes each new connection as it
 * is accepted, before a byte is read, so idle or half-open clients cannot hold every descriptor of
 * the process (HAProxy maxconn). Each one is counted as jitgate_limit_refusals_total{limit="connections"},
 * whichever listener refused it. 0 leaves the listener uncapped.
 */
export function capConnections(server: NetServer, max: number, metrics: Metrics): void {
  if (max <= 0) return;
  server.maxConnections = max;
  const dropped = metrics.limitRefusals.labels('connections');
  server.on('drop', () => dropped.inc());
}

export interface HttpListener extends Listener {
  /** True once close() was called: handlers should answer with `Connection: close`. */
  readonly draining: boolean;
  /** `beforeCut`: called when the grace ends with requests still open, just before their connections are closed. */
  close(graceMs: number, beforeCut?: () => void): Promise<void>;
}

/** Idle keep-alive connections are swept this often while draining. */
const SWEEP_MS = 50;
/** How long an idle keep-alive connection may still bring a request once a drain starts (at most half the grace). */
const IDLE_DRAIN_MS = 250;

const LISTEN_ERRORS: ReadonlyMap<string, string> = new Map([
  ['EADDRINUSE', 'address in use'],
  ['EACCES', 'permission denied'],
  ['EADDRNOTAVAIL', 'address not available on this host'],
  ['ENOTFOUND', 'host name not found'],
  ['EAI_AGAIN', 'host name lookup failed'],
]);

/** A listener that cannot bind, as the startup error names it. */
export function listenError(name: string, host: string, port: number, err: NodeJS.ErrnoException): StartupError {
  return new StartupError(`${name}: listen ${host}:${port}: ${LISTEN_ERRORS.get(err.code ?? '') ?? err.message}`, { cause: err });
}

/**
 * Fails as the listener itself would if one of these addresses cannot be bound now (another gate
 * holds it): bound and released at once. The audit chain asks first, so a second `jitgate serve` on
 * the same config writes nothing into the running gate's audit file before it fails (a black-box
 * probe: its chain_start and final checkpoint forked the live chain, which then never verified).
 * Port 0 is a fresh port each time, so it is not checked.
 */
export async function assertCanListen(addresses: ReadonlyArray<{ readonly name: string; readonly host: string; readonly port: number }>): Promise<void> {
  for (const a of addresses) {
    if (a.port === 0) continue;
    const probe = createNetServer();
    await new Promise<void>((resolve, reject) => {
      probe.once('error', (err: NodeJS.ErrnoException) => reject(listenError(a.name, a.host, a.port, err)));
      probe.listen(a.port, a.host, () => probe.close(() => resolve()));
    });
  }
}

/**
 * A connection that never sends a byte is closed after the server's headers timeout. Node starts
 * that timeout at a request's first byte and the keep-alive timeout after an answer, so a client that
 * connected (or finished its TLS handshake) and stayed silent held its connection for good: 20 of
 * them locked a `max_connections: 20` gate out for as long as they stayed (a re-probe, 330 s and
 * counting). One timer per connection, none per request: once a byte was read, node's own timeouts
 * (and its 408) take over. Returns the open connections, for the drain (closeAfterCurrentAnswers).
 */
function watchConnections(server: Server | HttpsServer): ReadonlySet<Socket> {
  const open = new Set<Socket>();
  const ms = server.headersTimeout;
  server.on(server instanceof TlsServer ? 'secureConnection' : 'connection', (socket: Socket) => {
    open.add(socket);
    const read = socket.bytesRead;
    const timer = ms > 0 ? setTimeout(() => socket.bytesRead === read && socket.destroy(), ms).unref() : undefined;
    socket.once('close', () => {
      clearTimeout(timer);
      open.delete(socket);
    });
  });
  return open;
}

/**
 * At the start of a drain, every answer not yet begun goes out with `Connection: close`. Otherwise a
 * request in flight when SIGTERM came was answered keep-alive, its client sent the next request on
 * that connection, and the drain's idle sweep closed it under that request: a reset, and no audit
 * line (a black-box probe: 5–8 of 10 keep-alive clients per rolling restart). node:http keeps the
 * answer it is writing on the socket (`_httpMessage`); one already begun keeps its keep-alive.
 */
function closeAfterCurrentAnswers(open: ReadonlySet<Socket>): void {
  for (const socket of open) {
    const res = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (res != null && !res.headersSent) res.shouldKeepAlive = false;
  }
}

export async function listenHttp(server: Server | HttpsServer, name: string, host: string, port: number): Promise<HttpListener> {
  const open = watchConnections(server);
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => reject(listenError(name, host, port, err));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    name,
    host,
    port: address.port,
    get draining() {
      return closing !== undefined;
    },
    close(graceMs: number, beforeCut?: () => void): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        closeAfterCurrentAnswers(open);
        let sweep: NodeJS.Timeout | undefined;
        // Idle keep-alive connections get a moment before they are closed: a client that sends its next
        // request right away (Envoy's ext_authz client, back to back) had it reset by a close at the drain's
        // first instant, and with failure_mode_allow: false that is a 403 per rolling restart (a re-probe).
        // Asked within IDLE_DRAIN_MS, it is answered with Connection: close (the request handlers see
        // `draining`). net.Server's close stops accepting without node:http's own immediate idle close.
        const startSweep = setTimeout(() => {
          // node:http's own close now: its idle close, and its timeout-checking timer stopped (the listening
          // socket is already closed, which its callback is told).
          server.close(() => undefined);
          sweep = setInterval(() => server.closeIdleConnections(), SWEEP_MS);
        }, Math.min(IDLE_DRAIN_MS, graceMs / 2));
        const deadline = setTimeout(() => {
          beforeCut?.();
          server.closeAllConnections();
        }, graceMs);
        NetServer.prototype.close.call(server, () => {
          clearTimeout(startSweep);
          clearInterval(sweep);
          clearTimeout(deadline);
          resolve();
        });
      });
      return closing;
    },
  };
}
