/**
 * Decision → what jitgate answers (SPEC §3): status, WWW-Authenticate, a small JSON body and
 * `cache-control: no-store`. Everything is built once per reason at load, so a deny costs a table
 * lookup; nothing from the request is ever echoed.
 */
import { REASON_CODES, REASONS, type Reason } from '../core/reasons.ts';

export const REALM = 'jitgate';

export interface Rendered {
  readonly reason: Reason;
  readonly status: number;
  /** undefined for 400 and 5xx answers. */
  readonly wwwAuthenticate: string | undefined;
  readonly body: string;
  readonly bodyBytes: Buffer;
  /** Ready to pass to writeHead: content-type, content-length, cache-control, www-authenticate. */
  readonly headers: Readonly<Record<string, string>>;
}

export function wwwAuthenticate(reason: Reason): string | undefined {
  const info = REASONS[reason];
  if (info.status === 401 && info.error === 'unauthorized') return `Bearer realm="${REALM}"`;
  if (info.status === 401) return `Bearer realm="${REALM}", error="invalid_token", error_description="${reason}"`;
  if (info.status === 403) return `Bearer realm="${REALM}", error="insufficient_scope"`;
  return undefined;
}

function build(reason: Reason, status: number): Rendered {
  const info = REASONS[reason];
  const body = JSON.stringify({ error: info.error, reason });
  const bodyBytes = Buffer.from(body);
  const challenge = wwwAuthenticate(reason);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'content-length': String(bodyBytes.length),
    'cache-control': 'no-store',
  };
  if (challenge !== undefined) headers['www-authenticate'] = challenge;
  return Object.freeze({ reason, status, wwwAuthenticate: challenge, body, bodyBytes, headers: Object.freeze(headers) });
}

const RENDERED: ReadonlyMap<Reason, Rendered> = new Map(
  REASON_CODES.filter((r) => REASONS[r].status !== 0).map((r) => [r, build(r, REASONS[r].status)]),
);

/**
 * For Envoy's HTTP ext_authz, where any 5xx counts as a service *error* (and so as an allow under
 * failure_mode_allow): the 503 cases answer 403 with the same reason (SPEC §7).
 */
const RENDERED_NO_5XX: ReadonlyMap<Reason, Rendered> = new Map(
  [...RENDERED].map(([r, v]) => [r, v.status >= 500 ? build(r, 403) : v]),
);

/** The precomputed answer for a non-allow reason. */
export function render(reason: Reason): Rendered {
  const r = RENDERED.get(reason);
  if (r === undefined) throw new TypeError(`reason ${reason} has no jitgate-made response`);
  return r;
}

export function renderWithoutServerError(reason: Reason): Rendered {
  const r = RENDERED_NO_5XX.get(reason);
  if (r === undefined) throw new TypeError(`reason ${reason} has no jitgate-made response`);
  return r;
}
