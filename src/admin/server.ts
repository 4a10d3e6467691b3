/**
 * The admin listener (SPEC §8): loopback by default, never the traffic port. `/healthz` says the
 * process runs, `/readyz` whether it can decide (keys loaded, revocation fresh, not draining),
 * `/metrics` is the Prometheus text, and the revocation API (src/admin/revocations-api.ts) is asked
 * first for every request. Every answer is `cache-control: no-store`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { TlsMetrics } from '../observability/metrics.ts';
import type { ProblemBoard } from '../observability/problem-board.ts';
import { listenHttp, type HttpListener } from '../transports/http-listener.ts';
import { outsideValidity } from '../core/cert-binding.ts';
import { clientCertOf } from '../transports/tls/client-cert.ts';
import { createTlsServer } from '../transports/tls/server-tls.ts';
import type { AdminSource } from './health.ts';
import type { AdminRoute } from './revocations-api.ts';

export interface AdminOptions {
  readonly config: Config;
  readonly source: AdminSource;
  readonly logger: Logger;
  /** The revocation API; absent where it cannot work (see src/cluster.ts). */
  readonly revocations?: AdminRoute;
  /** Where a refused admin.tls reload is listed; `source` shows it on /readyz. */
  readonly problems?: ProblemBoard;
  /**
   * Where admin.tls handshake failures and reloads are counted (`listener="admin"`): the gate's
   * registry, or a cluster primary's own, which its /metrics adds to the workers' sum.
   */
  readonly metrics?: TlsMetrics;
}

const NO_STORE = 'no-store';
/** The admin listener's head timeout (a slow or stalled client is cut within about a second of it). */
export const ADMIN_HEADERS_TIMEOUT_MS = 10_000;

function json(res: ServerResponse, status: number, body: unknown, headOnly: boolean): void {
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(bytes.length), 'cache-control': NO_STORE });
  res.end(headOnly ? undefined : bytes);
}

export async function startAdmin(options: AdminOptions): Promise<HttpListener> {
  const { source, revocations } = options;
  const log = options.logger.child({ component: 'admin' });
  let listener: HttpListener | undefined;

  const certRequired = options.config.admin.tls?.require_client_cert === true;

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (listener?.draining === true) res.shouldKeepAlive = false;
    // As on the traffic listener: a required certificate must be valid on every request, not only at
    // the handshake (a keep-alive connection outlives it; a review of 2026-12-06).
    if (certRequired) {
      const cert = clientCertOf(req.socket);
      const invalid = cert === undefined ? 'cert_required' : outsideValidity(cert, Date.now());
      if (invalid !== undefined) {
        res.shouldKeepAlive = false;
        json(res, 401, { error: 'unauthorized', reason: invalid, message: 'the connection\'s client certificate is not valid now; connect again with a valid one' }, req.method === 'HEAD');
        return;
      }
    }
    if (revocations !== undefined && revocations(req, res)) return;
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const method = req.method ?? 'GET';
    const get = method === 'GET' || method === 'HEAD';
    const headOnly = method === 'HEAD';
    if (path !== '/healthz' && path !== '/readyz' && path !== '/metrics') {
      json(res, 404, { error: 'not_found', reason: 'unknown_path' }, headOnly);
      return;
    }
    if (!get) {
      res.setHeader('allow', 'GET, HEAD');
      json(res, 405, { error: 'method_not_allowed', reason: 'method_not_allowed' }, false);
      return;
    }
    if (path === '/healthz') {
      json(res, 200, { status: 'ok' }, headOnly);
    } else if (path === '/readyz') {
      const r = await source.readiness();
      // Ready with problems: degraded but deciding correctly (e.g. a refused revocation reload).
      const body = r.ready ? (r.problems.length === 0 ? { status: 'ready' } : { status: 'ready', problems: r.problems }) : { status: 'not_ready', problems: r.problems };
      json(res, r.ready ? 200 : 503, body, headOnly);
    } else {
      const m = await source.metrics();
      res.writeHead(200, { 'content-type': m.contentType, 'content-length': String(Buffer.byteLength(m.text)), 'cache-control': NO_STORE });
      res.end(headOnly ? undefined : m.text);
    }
  }

  // node checks headersTimeout/requestTimeout only every connectionsCheckingInterval (default 30 s),
  // which let a slowloris client hold an admin connection ~30 s against a 10 s headers timeout.
  const httpOptions = { requireHostHeader: false, headersTimeout: ADMIN_HEADERS_TIMEOUT_MS, requestTimeout: 30_000, connectionsCheckingInterval: 1000 };
  // admin.tls: the same listener over TLS, with client certificates when configured (SPEC §11).
  const tlsConfig = options.config.admin.tls;
  const tls = tlsConfig === undefined ? undefined : createTlsServer(httpOptions, tlsConfig, { name: 'admin', key: 'admin.tls', logger: log, problems: options.problems, metrics: options.metrics });
  const server = tls?.server ?? createServer(httpOptions);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (tls !== undefined && !tls.admit(req, res)) return;
    route(req, res).catch((err: unknown) => {
      log.error({ err }, 'admin request failed');
      if (!res.headersSent) json(res, 500, { error: 'internal', reason: 'internal_error' }, false);
      else res.destroy();
    });
  });
  const { host, port } = options.config.admin.listen;
  try {
    listener = await listenHttp(server, 'admin', host, port);
  } catch (err) {
    tls?.stop();
    throw err;
  }
  if (tls === undefined) return listener;
  const inner = listener;
  return {
    name: inner.name,
    host: inner.host,
    port: inner.port,
    get draining() {
      return inner.draining;
    },
    close(graceMs: number) {
      tls.stop();
      return inner.close(graceMs);
    },
  };
}
