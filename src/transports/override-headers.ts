/**
 * Headers that name a second method or URL some backends act on instead of the request's own
 * (issue 21 item 2): method overrides (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override;
 * Rails, Symfony, ASP.NET, Express method-override) and URL rewrites (X-Original-URL,
 * X-Rewrite-URL; IIS URL Rewrite, Symfony, Zend — CVE-2018-14773).
 *
 * "Any spelling" is case-insensitive and `_` for `-`: CGI-style servers (Rack/Puma before 6.4.3,
 * WSGI) turn both into the same variable. Where jitgate forwards, the proxy drops them
 * (hop-headers.ts); where it only answers, forward-auth refuses them (it cannot remove a header
 * from a request it never carries) and ext_authz lists every spelling for Envoy to remove.
 */
import { METHOD_OVERRIDE_HEADERS } from './http-input.ts';
import { ROUTING_OVERRIDES } from './proxy/hop-headers.ts';

export type OverrideReason = 'method_override' | 'url_override';

/** The shortest and longest of the five names: anything else is skipped on its length alone. */
const MIN = 'x-http-method'.length;
const MAX = 'x-http-method-override'.length;

/** Whether a header name, in any spelling, is a method override or URL rewrite header. */
export function overrideKind(name: string): OverrideReason | undefined {
  if (name.length < MIN || name.length > MAX) return undefined;
  const dashed = name.toLowerCase().replaceAll('_', '-');
  if (METHOD_OVERRIDE_HEADERS.has(dashed)) return 'method_override';
  if (ROUTING_OVERRIDES.has(dashed)) return 'url_override';
  return undefined;
}

/** Every lower-case spelling (`-` or `_` at each separator) of every name: what Envoy is told to remove. */
export const OVERRIDE_SPELLINGS: readonly string[] = Object.freeze(
  [...METHOD_OVERRIDE_HEADERS, ...ROUTING_OVERRIDES].flatMap((name) => {
    const parts = name.split('-');
    const out: string[] = [];
    for (let mask = 0; mask < 1 << (parts.length - 1); mask++) {
      let s = parts[0]!;
      for (let i = 1; i < parts.length; i++) s += ((mask >> (i - 1)) & 1 ? '_' : '-') + parts[i]!;
      out.push(s);
    }
    return out;
  }),
);
