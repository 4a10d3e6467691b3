/**
 * A deliberately sloppy "legacy" backend: the path handling of old servers and frameworks folded
 * into one, so anything the gate lets through that such a server reads differently shows up here.
 * - routes by `X-Original-URL` / `X-Rewrite-URL` when present (IIS URL Rewrite, old Symfony/Zend);
 * - decodes percent-encoding twice, `%2F` and `%5C` included (double-decoding app servers);
 * - reads `\` as `/` (IIS, Windows), strips `;params` per segment (Tomcat, Jetty), folds NFKC
 *   (fullwidth `．．／`), lower-cases (case-insensitive file systems), strips trailing dots and
 *   spaces (Windows), merges `//`, then resolves dot segments;
 * - reads header names CGI-style (`_` = `-`, first one wins), like WSGI/Rack before CVE-2024-45614.
 * /admin… answers the secret, /public… a public page; each request's normalized path is recorded.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { posix } from 'node:path';

export const LEGACY_ADMIN_BODY = 'ADMIN-SECRET legacy';
export const LEGACY_PUBLIC_BODY = 'PUBLIC-CONTENT legacy';

export interface LegacyHit {
  readonly raw: string;
  readonly path: string;
  /** The first `x-jit-subject` as a CGI backend reads it (`X_Jit_Subject` counts). */
  readonly subject: string | undefined;
  readonly methodOverride: string | undefined;
}

export interface LegacyBackend {
  readonly url: string;
  readonly hits: LegacyHit[];
  close(): Promise<void>;
}

function decodeLoosely(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s.replace(/%([0-9a-fA-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
  }
}

/** What the legacy server makes of a request target. */
export function legacyPath(target: string): string {
  let p = target.split('?')[0]!.split('#')[0]!;
  p = decodeLoosely(decodeLoosely(p));
  p = p.normalize('NFKC').replace(/\\/g, '/').toLowerCase();
  const segs = p.split('/').map((s) => s.split(';')[0]!).map((s) => (s === '.' || s === '..' ? s : s.replace(/[. ]+$/, '')));
  p = posix.normalize(`/${segs.join('/')}`.replace(/\/+/g, '/'));
  return p;
}

/** Header value as a CGI environment would hold it: names folded `_` → `-`, the first line wins. */
function cgiHeader(req: IncomingMessage, name: string): string | undefined {
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase().replaceAll('_', '-') === name) return req.rawHeaders[i + 1];
  }
  return undefined;
}

export async function startLegacyBackend(): Promise<LegacyBackend> {
  const hits: LegacyHit[] = [];
  const server: Server = createServer((req, res) => {
    req.resume();
    const routed = cgiHeader(req, 'x-original-url') ?? cgiHeader(req, 'x-rewrite-url') ?? req.url ?? '/';
    const path = legacyPath(routed);
    hits.push({ raw: req.url ?? '', path, subject: cgiHeader(req, 'x-jit-subject'), methodOverride: cgiHeader(req, 'x-http-method-override') });
    const body = path === '/admin' || path.startsWith('/admin/') ? LEGACY_ADMIN_BODY : path.startsWith('/public') ? LEGACY_PUBLIC_BODY : 'not found';
    res.writeHead(body === 'not found' ? 404 : 200, { 'content-type': 'text/plain' }).end(`${body} ${path}\n`);
  });
  server.on('clientError', (_e, socket) => socket.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
