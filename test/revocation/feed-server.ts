/**
 * A real revocation feed on loopback: serves `body` (JSON Lines) with an ETag, answers
 * If-None-Match with 304, counts 200s and 304s, and can fail (503, an HTML page with 200) or go
 * away (stop: connection refused) and come back on the same port.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { etagOf, ScriptedServer } from '../fixtures/scripted-server.ts';

export class FeedServer extends ScriptedServer {
  body = '';
  mode: 'ok' | 'error' | 'html' = 'ok';
  /** performance.now() of the last 200 served. */
  lastFullAt = 0;
  /** Answers a 200 this much later, with the body as it was when the request came (a slow feed). */
  delayMs = 0;

  constructor() {
    super('/revocations.jsonl', 1_000);
  }

  set(lines: ReadonlyArray<object | string>): void {
    this.body = lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n';
  }

  protected override handle(req: IncomingMessage, res: ServerResponse): void {
    if (this.mode === 'error') return this.answer(res, 503, 'down for maintenance');
    if (this.mode === 'html') return this.answer(res, 200, '<html><body>Oops</body></html>\n', { 'content-type': 'text/html' });
    const etag = etagOf(this.body);
    if (req.headers['if-none-match'] === etag) return this.answer(res, 304, '', { etag });
    this.lastFullAt = performance.now();
    const body = this.body;
    const send = (): void => this.answer(res, 200, body, { etag, 'content-type': 'application/jsonl' });
    if (this.delayMs > 0) setTimeout(send, this.delayMs);
    else send();
  }
}
