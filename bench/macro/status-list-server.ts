/**
 * The status list publisher of the status-list rows (SPEC §10): a node:http server in the runner
 * process that serves one list JWT at /status/bench with `Content-Type: application/statuslist+jwt`.
 * The gate fetches it once and then once per `refresh` (1m), so it costs the runner nothing measurable.
 * Started before the fixtures, because the tokens carry its URI.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface BenchListServer {
  /** The list URI the tokens name. */
  readonly uri: string;
  /** The allowed_uris prefix for the gate config. */
  readonly prefix: string;
  /** How often the gate fetched the list. */
  readonly fetches: () => number;
  serve(jwt: string): void;
  close(): Promise<void>;
}

export async function startStatusListServer(): Promise<BenchListServer> {
  let body = '';
  let fetches = 0;
  const server = createServer((req, res) => {
    if (req.url !== '/status/bench' || body === '') {
      res.writeHead(404).end();
      return;
    }
    fetches++;
    res.writeHead(200, { 'content-type': 'application/statuslist+jwt', 'cache-control': 'max-age=60' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    uri: `${base}/status/bench`,
    prefix: `${base}/status/`,
    fetches: () => fetches,
    serve: (jwt) => void (body = jwt),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
