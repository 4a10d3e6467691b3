/**
 * The ext_authz settings that only make sense together (forward-auth on the HTTP listener, outside its
 * path_prefix) or need compiling (trusted_proxies): checked by startExtAuthz and by `jitgate
 * check-config` from this one place, so check-config says what serve would (SPEC §8; a black-box probe
 * found check-config answering OK for configs serve refused).
 */
import type { Config } from '../../config/schema.ts';
import { compileAddressList } from '../../core/address-list.ts';

/** What startExtAuthz refuses before it binds anything, one `key: problem` line each. */
export function extAuthzProblems(config: Config): string[] {
  const x = config.ext_authz;
  const problems: string[] = [];
  const p = x.http?.path_prefix;
  if (p !== undefined && p !== '' && !p.startsWith('/')) {
    problems.push(`ext_authz.http.path_prefix: ${JSON.stringify(p)} must be empty or start with "/": Envoy's check path is path_prefix followed by the request path`);
  }
  const fa = x.forward_auth;
  if (fa === undefined) return problems;
  if (p === undefined) {
    problems.push('ext_authz.forward_auth: is served on the ext_authz.http listener; configure ext_authz.http as well, with a path_prefix (such as "/authz") for Envoy\'s checks');
  } else if (fa.path.startsWith(p) && fa.path.charCodeAt(p.length) === 0x2f) {
    const fix = p === '' ? 'set ext_authz.http.path_prefix (such as "/authz")' : `move the forward-auth path outside ${JSON.stringify(p)} (such as "/forward-auth")`;
    problems.push(`ext_authz.forward_auth.path: ${JSON.stringify(fa.path)} lies under ext_authz.http.path_prefix ${JSON.stringify(p)}, so an Envoy check for that path would be taken for forward-auth; ${fix}`);
  }
  const list = compileAddressList(fa.trusted_proxies);
  if (Array.isArray(list)) problems.push(...list.map((l) => `ext_authz.forward_auth.trusted_proxies${l}`));
  return problems;
}

