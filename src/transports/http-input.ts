/**
 * node:http request → DecisionInput. Reads rawHeaders, because node:http keeps only the first of
 * several Authorization headers in `req.headers` and several must be refused (SPEC §3).
 * One pass, no allocation beyond the result.
 */
import type { IncomingMessage } from 'node:http';
import type { DecisionInput } from '../core/decision.ts';

/** Lower-case method-override header names (SPEC §2). */
export const METHOD_OVERRIDE_HEADERS: ReadonlySet<string> = new Set(['x-http-method-override', 'x-http-method', 'x-method-override']);

function eqIgnoreCase(a: string, lower: string): boolean {
  return a.length === lower.length && (a === lower || a.toLowerCase() === lower);
}

/** `method` and `target` default to the request's own; forward-auth and ext_authz pass the original ones. */
export function inputFromRawHeaders(rawHeaders: readonly string[], method: string, target: string): DecisionInput {
  let authorization: string | undefined;
  let authorizationCount = 0;
  let dpop: string | undefined;
  let dpopCount = 0;
  let methodOverride = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    switch (name.length) {
      case 13: // authorization, x-http-method
        if (eqIgnoreCase(name, 'authorization')) {
          authorizationCount++;
          authorization = rawHeaders[i + 1];
        } else if (eqIgnoreCase(name, 'x-http-method')) methodOverride = true;
        break;
      case 4:
        if (eqIgnoreCase(name, 'dpop')) {
          dpopCount++;
          dpop = rawHeaders[i + 1];
        }
        break;
      case 22: // x-http-method-override
      case 17: // x-method-override
        if (METHOD_OVERRIDE_HEADERS.has(name.toLowerCase())) methodOverride = true;
        break;
    }
  }
  return { method, target, authorization, authorizationCount, dpop, dpopCount, methodOverride };
}

export function inputFromRequest(req: IncomingMessage): DecisionInput {
  return inputFromRawHeaders(req.rawHeaders, req.method ?? '', req.url ?? '');
}
