/**
 * A real JWKS endpoint on loopback for the remote-key tests. It serves `doc` with an ETag and
 * answers If-None-Match with 304, counts every request by outcome, and can misbehave on demand:
 * answer 503, send an oversized or malformed body, stall past the client's timeout, or go away
 * entirely (stop: connection refused) and come back on the same port.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { etagOf, ScriptedServer } from '../fixtures/scripted-server.ts';

export type JwksMode = 'ok' | 'error' | 'oversized' | 'oversized_chunked' | 'malformed' | 'not_a_jwks' | 'slow';

export class JwksServer extends ScriptedServer {
  doc: unknown = { keys: [] };
  mode: JwksMode = 'ok';
  /** Sent as Cache-Control when set. */
  cacheControl: string | undefined;
  /** Bytes of the oversized body. */
  oversize = 64 * 1024;
  slowMs = 2_000;
  requests = 0;

  constructor() {
    super('/.well-known/jwks.json', 500);
  }

  protected override handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests++;
    switch (this.mode) {
      case 'error':
        return this.answer(res, 503, 'unavailable');
      case 'malformed':
        return this.answer(res, 200, '{"keys": [', { 'content-type': 'application/json' });
      case 'not_a_jwks':
        return this.answer(res, 200, '{"hello": "world"}', { 'content-type': 'application/json' });
      case 'oversized':
        return this.answer(res, 200, Buffer.alloc(this.oversize, 0x20), { 'content-type': 'application/json' });
      case 'oversized_chunked': {
        // No Content-Length: the client must count while streaming.
        this.tally(200);
        res.writeHead(200, { 'content-type': 'application/json' });
        const chunk = Buffer.alloc(1024, 0x20);
        let sent = 0;
        const pump = (): void => {
          while (sent < this.oversize && !res.destroyed) {
            sent += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('error', () => {});
        return pump();
      }
      case 'slow': {
        const t = setTimeout(() => this.#serve(req, res), this.slowMs);
        res.on('close', () => clearTimeout(t));
        return;
      }
      case 'ok':
        return this.#serve(req, res);
    }
  }

  #serve(req: IncomingMessage, res: ServerResponse): void {
    if (res.destroyed) return;
    const body = JSON.stringify(this.doc);
    const etag = etagOf(body);
    const headers: Record<string, string> = { etag, 'content-type': 'application/jwk-set+json' };
    if (this.cacheControl !== undefined) headers['cache-control'] = this.cacheControl;
    if (req.headers['if-none-match'] === etag) return this.answer(res, 304, '', headers);
    this.answer(res, 200, body, headers);
  }
}

/** Resolves when `cond` holds, polling every few ms; rejects after timeoutMs. */
export async function until(cond: () => boolean, timeoutMs = 5_000, what = 'condition'): Promise<number> {
  const started = performance.now();
  while (!cond()) {
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now() - started;
}
