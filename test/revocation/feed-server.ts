/**
 * A real revocation feed on loopback: serves `body` (JSON Lines) with an ETag, answers
 * If-None-Match with 304, counts 200s and 304s, and can fail (503, an HTML page with 200) or go
 * away (stop: connection refused) and come back on the same port.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export class FeedServer {
  body = '';
  mode: 'ok' | 'error' | 'html' = 'ok';
  readonly byStatus = new Map<number, number>();
  /** performance.now() of the last 200 served. */
  lastFullAt = 0;
  #server: Server | undefined;
  #port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.#port}/revocations.jsonl`;
  }

  count(status: number): number {
    return this.byStatus.get(status) ?? 0;
  }

  set(lines: ReadonlyArray<object | string>): void {
    this.body = lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n';
  }

  async start(): Promise<this> {
    const server = createServer((req, res) => {
      const answer = (status: number, body: string, headers: Record<string, string> = {}) => {
        this.byStatus.set(status, this.count(status) + 1);
        res.writeHead(status, headers);
        res.end(body);
      };
      if (this.mode === 'error') return answer(503, 'down for maintenance');
      if (this.mode === 'html') return answer(200, '<html><body>Oops</body></html>\n', { 'content-type': 'text/html' });
      const etag = `"${createHash('sha256').update(this.body).digest('base64url').slice(0, 16)}"`;
      if (req.headers['if-none-match'] === etag) return answer(304, '', { etag });
      this.lastFullAt = performance.now();
      answer(200, this.body, { etag, 'content-type': 'application/jsonl' });
    });
    server.keepAliveTimeout = 1_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, '127.0.0.1', () => resolve());
    });
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
    return this;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
