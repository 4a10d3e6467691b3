/**
 * Binding a node:http server as a `Listener` with a graceful close, shared by the proxy and the
 * admin listener (and open to the ext_authz HTTP service).
 *
 * Drain (SIGTERM): stop accepting; answers written from now on carry `Connection: close`;
 * connections close as soon as they go idle; after `graceMs` whatever is left is cut.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StartupError } from '../errors.ts';
import type { Listener } from './context.ts';

export interface HttpListener extends Listener {
  /** True once close() was called: handlers should answer with `Connection: close`. */
  readonly draining: boolean;
}

/** Idle keep-alive connections are swept this often while draining. */
const SWEEP_MS = 50;

const LISTEN_ERRORS: ReadonlyMap<string, string> = new Map([
  ['EADDRINUSE', 'address in use'],
  ['EACCES', 'permission denied'],
  ['EADDRNOTAVAIL', 'address not available on this host'],
  ['ENOTFOUND', 'host name not found'],
  ['EAI_AGAIN', 'host name lookup failed'],
]);

export async function listenHttp(server: Server, name: string, host: string, port: number): Promise<HttpListener> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const why = LISTEN_ERRORS.get(err.code ?? '') ?? err.message;
      reject(new StartupError(`${name}: listen ${host}:${port}: ${why}`, { cause: err }));
    };
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
    close(graceMs: number): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        const sweep = setInterval(() => server.closeIdleConnections(), SWEEP_MS);
        const deadline = setTimeout(() => server.closeAllConnections(), graceMs);
        server.close(() => {
          clearInterval(sweep);
          clearTimeout(deadline);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
