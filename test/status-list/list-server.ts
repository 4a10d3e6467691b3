/**
 * A real status list publisher on loopback (SPEC §10 tests): serves a list JWT per path with an ETag
 * and `Content-Type: application/statuslist+jwt`, records every request (path, Accept), and can
 * misbehave per path or for all: an HTTP error, a slow answer, other content, an oversized body, or a
 * redirect elsewhere (which a client must not follow).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { exportJWK, SignJWT } from 'jose';
import { etagOf, ScriptedServer } from '../fixtures/scripted-server.ts';
import type { TestKey } from '../fixtures/keys.ts';
import { signStatusList, type StatusListOptions } from '../../src/cli/status-list.ts';

export type ListMode =
  | { readonly kind: 'ok' }
  | { readonly kind: 'status'; readonly status: number }
  | { readonly kind: 'slow'; readonly ms: number }
  | { readonly kind: 'body'; readonly body: string | Buffer; readonly contentType?: string; readonly etag?: string }
  | { readonly kind: 'redirect'; readonly location: string };

export interface SeenRequest {
  readonly path: string;
  readonly accept: string | undefined;
  readonly ifNoneMatch: string | undefined;
}

export class StatusListServer extends ScriptedServer {
  /** path → list JWT. */
  readonly lists = new Map<string, string>();
  /** path → how to answer; `all` applies to paths without their own mode. */
  readonly modes = new Map<string, ListMode>();
  all: ListMode = { kind: 'ok' };
  readonly seen: SeenRequest[] = [];
  /** Requests being answered right now, and the most there ever were at once. */
  inflight = 0;
  maxInflight = 0;
  readonly #open = new WeakSet<ServerResponse>();

  constructor() {
    super('', 1_000);
  }

  uri(path: string): string {
    return `${this.url}${path}`;
  }

  requestsFor(path: string): number {
    return this.seen.filter((s) => s.path === path).length;
  }

  protected override handle(req: IncomingMessage, res: ServerResponse): void {
    const path = req.url ?? '';
    this.seen.push({ path, accept: req.headers.accept, ifNoneMatch: req.headers['if-none-match'] as string | undefined });
    this.inflight++;
    this.maxInflight = Math.max(this.maxInflight, this.inflight);
    this.#open.add(res);
    res.on('close', () => this.#done(res));
    const mode = this.modes.get(path) ?? this.all;
    switch (mode.kind) {
      case 'status':
        return this.answer(res, mode.status, 'no list here', { 'content-type': 'text/plain' });
      case 'redirect':
        return this.answer(res, 302, '', { location: mode.location });
      case 'body':
        return this.answer(res, 200, mode.body, { 'content-type': mode.contentType ?? 'application/statuslist+jwt', ...(mode.etag === undefined ? {} : { etag: mode.etag }) });
      case 'slow': {
        const t = setTimeout(() => this.#serve(req, res, path), mode.ms);
        res.on('close', () => clearTimeout(t));
        return;
      }
      case 'ok':
        return this.#serve(req, res, path);
    }
  }

  /**
   * A request stops counting when its answer is written (or its connection closes first): client and
   * server share one event loop here, and the response's 'close' may fire after the client already
   * has the answer and sent its next request.
   */
  protected override answer(res: ServerResponse, status: number, body: string | Buffer, headers: Record<string, string> = {}): void {
    this.#done(res);
    super.answer(res, status, body, headers);
  }

  #done(res: ServerResponse): void {
    if (this.#open.delete(res)) this.inflight--;
  }

  #serve(req: IncomingMessage, res: ServerResponse, path: string): void {
    if (res.destroyed) return;
    const body = this.lists.get(path);
    if (body === undefined) return this.answer(res, 404, 'unknown list');
    const etag = etagOf(body);
    const headers = { etag, 'content-type': 'application/statuslist+jwt', 'cache-control': 'max-age=60' };
    if (req.headers['if-none-match'] === etag) return this.answer(res, 304, '', headers);
    this.answer(res, 200, body, headers);
  }
}

/** A TestKey as the private JWK `jitgate status-list` reads. */
export async function privateJwk(key: TestKey): Promise<Record<string, unknown>> {
  return { ...(await exportJWK(key.privateKey)), kid: key.kid, alg: key.alg };
}

/** A list signed the way `jitgate status-list` signs it (the library form of the CLI). */
export async function cliList(key: TestKey, opts: Omit<StatusListOptions, 'key'>): Promise<string> {
  return signStatusList({ ...opts, key: (await privateJwk(key)) as never });
}

/** A list JWT with any header and payload, for the refusals (wrong typ, missing iat, bits 3, …). */
export function rawList(key: TestKey, payload: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  const h = Object.fromEntries(Object.entries({ alg: key.alg, kid: key.kid, typ: 'statuslist+jwt', ...header }).filter(([, v]) => v !== undefined));
  const p = Object.fromEntries(Object.entries(payload).filter(([, v]) => v !== undefined));
  return new SignJWT(p).setProtectedHeader(h as never).sign(key.privateKey);
}
