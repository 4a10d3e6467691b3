/**
 * The traffic listener (SPEC §3, §4): node:http in front of the handler, with the limits that keep
 * a slow or oversized client from holding the gate's sockets (slowloris, header floods).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { auditEarlyRefusal, refuseEarly } from '../early-refusal.ts';
import { createTlsServer } from '../tls/server-tls.ts';
import type { TransportContext } from '../context.ts';
import { capConnections, clientServerOptions, listenHttp, type HttpListener } from '../http-listener.ts';
import { render } from '../respond.ts';
import { ConnectionLanes } from './connection-lane.ts';
import { Forwarder } from './forward.ts';
import { createProxyHandler, type ProxyHandler } from './handler.ts';
import { PendingDecisions } from '../pending-decisions.ts';

export interface ProxyListener extends HttpListener {
  readonly forwarder: Forwarder;
}

export async function startProxy(ctx: TransportContext): Promise<ProxyListener> {
  const { config } = ctx;
  // listen.tls (SPEC §11): the same server over TLS, client certificates verified when configured.
  const tls = config.listen.tls === undefined ? undefined : createTlsServer(clientServerOptions(config.limits), config.listen.tls, { name: 'proxy', key: 'listen.tls', metrics: ctx.metrics, logger: ctx.logger, problems: ctx.gate.degraded });
  let forwarder: Forwarder;
  try {
    forwarder = new Forwarder(config, ctx.metrics, ctx.logger.child({ component: 'proxy' }), ctx.gate.degraded);
  } catch (err) {
    tls?.stop();
    throw err;
  }
  const pending = new PendingDecisions(ctx);
  const decide = createProxyHandler(ctx, forwarder, pending);
  // A request queued behind another on its connection is judged when its turn comes: if the
  // connection's client trust ended meanwhile (client-trust.ts), it is not served (a re-probe found
  // pipelined requests read before a CA change judged and forwarded after it).
  const handle: ProxyHandler =
    tls === undefined
      ? decide
      : (req, res, expectContinue) => {
          if (tls.trustEnded(req)) req.socket.destroy();
          else decide(req, res, expectContinue);
        };
  const server = tls?.server ?? createServer(clientServerOptions(config.limits));
  // A keep-alive client may send any number of requests; each is judged on its own.
  server.maxRequestsPerSocket = 0;
  capConnections(server, config.limits.max_connections, ctx.metrics);

  let listener: HttpListener | undefined;
  // Pipelined requests are forwarded one at a time per connection (connection-lane.ts).
  const lanes = new ConnectionLanes(config.limits.max_inflight_per_connection, handle, (req, res) => {
    ctx.metrics.limitRefusals.labels('inflight_connection').inc();
    ctx.metrics.recordReason('proxy', 'inflight_limit');
    const r = render('inflight_limit');
    res.writeHead(r.status, r.headers);
    res.end(r.bodyBytes);
    // Refused before any decision, like node:http's own refusals: the same line (SPEC §8), no token fields.
    auditEarlyRefusal(ctx, 'proxy', 'inflight_limit', req.method!, req.socket);
  });
  const onRequest = (expectContinue: boolean) => (req: IncomingMessage, res: ServerResponse) => {
    if (tls !== undefined && !tls.admit(req, res)) return;
    if (listener?.draining === true) res.shouldKeepAlive = false;
    lanes.admit(req, res, expectContinue);
  };
  server.on('request', onRequest(false));
  // Decide before inviting the body: a denied client never uploads it.
  server.on('checkContinue', onRequest(true));
  // Any other expectation is ignored, as nginx does (RFC 9110 §10.1.1 allows either): judged like any
  // request and never forwarded (Expect is dropped upstream), not node:http's bare 417 without a reason,
  // cache-control or audit line (a black-box probe of SPEC §3 found that 417).
  server.on('checkExpectation', onRequest(false));
  // Refused by node:http before the handler: counted always, audited when a request line arrived.
  refuseEarly(server, ctx, 'proxy');

  try {
    listener = await listenHttp(server, 'proxy', config.listen.host, config.listen.port);
  } catch (err) {
    tls?.stop();
    await forwarder.destroy();
    throw err;
  }
  const inner = listener;
  return {
    name: inner.name,
    host: inner.host,
    port: inner.port,
    forwarder,
    get draining() {
      return inner.draining;
    },
    async close(graceMs: number) {
      tls?.stop();
      // Requests still open when the grace ends are cut by the gate, not left by their clients.
      await pending.closing((atCut) =>
        inner.close(graceMs, () => {
          forwarder.cutting();
          atCut();
        }),
      );
      // Every client connection is gone, so no exchange is left; close upstream sockets.
      await forwarder.close();
    },
  };
}
