/**
 * The traffic listener (SPEC §3, §4): node:http in front of the handler, with the limits that keep
 * a slow or oversized client from holding the gate's sockets (slowloris, header floods).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { answerClientError } from '../client-error.ts';
import type { TransportContext } from '../context.ts';
import { listenHttp, type HttpListener } from '../http-listener.ts';
import { Forwarder } from './forward.ts';
import { createProxyHandler } from './handler.ts';

export interface ProxyListener extends HttpListener {
  readonly forwarder: Forwarder;
}

export async function startProxy(ctx: TransportContext): Promise<ProxyListener> {
  const { config } = ctx;
  const limits = config.limits;
  const forwarder = new Forwarder(config, ctx.metrics, ctx.logger.child({ component: 'proxy' }));
  const handle = createProxyHandler(ctx, forwarder);
  const server = createServer({
    maxHeaderSize: limits.max_header_bytes,
    headersTimeout: limits.headers_timeout,
    requestTimeout: limits.request_timeout,
    keepAliveTimeout: limits.keep_alive_timeout,
    // node checks the two timeouts above on this interval (default 30s, which would stretch a
    // 10s headers_timeout to 40s); a sweep over the connection list once a second is cheap.
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.headers_timeout / 4))),
    requireHostHeader: true,
  });
  // A keep-alive client may send any number of requests; each is judged on its own.
  server.maxRequestsPerSocket = 0;

  let listener: HttpListener | undefined;
  const onRequest = (expectContinue: boolean) => (req: IncomingMessage, res: ServerResponse) => {
    if (listener?.draining === true) res.shouldKeepAlive = false;
    handle(req, res, expectContinue);
  };
  server.on('request', onRequest(false));
  // Decide before inviting the body: a denied client never uploads it.
  server.on('checkContinue', onRequest(true));
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    const reason = answerClientError(err, socket);
    if (reason !== undefined) ctx.metrics.recordReason('proxy', reason);
  });

  try {
    listener = await listenHttp(server, 'proxy', config.listen.host, config.listen.port);
  } catch (err) {
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
      await inner.close(graceMs);
      // Every client connection is gone, so no exchange is left; close upstream sockets.
      await forwarder.close();
    },
  };
}
