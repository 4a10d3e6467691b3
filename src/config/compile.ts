/**
 * Validated config → the frozen GatePolicy the decision core reads. Patterns are compiled and
 * header names built here, once; a bad public-route pattern is a config error naming its key.
 */
import { ConfigError } from '../errors.ts';
import type { IssuerKeys } from '../keys/issuer-keys.ts';
import type { StatusListLookup } from '../core/status-list.ts';
import { compileAddressList, EMPTY_ADDRESS_LIST } from '../core/address-list.ts';
import { compilePattern } from '../core/path-pattern.ts';
import { chooseVerifyMode, type VerifyMode } from '../core/verify-mode.ts';
import { cores } from '../cpu-cores.ts';
import { identityHeaderNames, normalizeTyp, type DpopPolicy, type GatePolicy, type IssuerPolicy, type PublicRoute } from '../core/policy.ts';
import type { Config, IssuerConfig } from './schema.ts';

export function compilePolicy(
  config: Config,
  file: string,
  keysFor: (issuer: IssuerConfig) => IssuerKeys,
  /** Called after keysFor for the same issuer, for issuers with a `status_list` block (SPEC §10). */
  statusListFor?: (issuer: IssuerConfig) => StatusListLookup | undefined,
): GatePolicy {
  const problems: string[] = [];

  const issuers = new Map<string, IssuerPolicy>();
  config.issuers.forEach((i, n) => {
    if (issuers.has(i.issuer)) problems.push(`issuers[${n}].issuer: ${JSON.stringify(i.issuer)} is configured twice`);
    issuers.set(
      i.issuer,
      Object.freeze({
        issuer: i.issuer,
        algorithms: new Set(i.algorithms),
        maxTtlSec: i.max_ttl / 1000,
        toleranceSec: i.clock_tolerance / 1000,
        typ: i.typ === undefined ? undefined : normalizeTyp(i.typ),
        keys: keysFor(i),
        requireDpop: i.require_dpop ?? config.dpop.require,
        statusList: i.status_list === undefined ? undefined : statusListFor?.(i),
        requireCertBinding: i.require_cert_binding,
      }),
    );
  });

  const publicRoutes: PublicRoute[] = [];
  config.public.forEach((r, n) => {
    const pattern = compilePattern(r.path);
    if (pattern === null) problems.push(`public[${n}].path: ${JSON.stringify(r.path)} is not a valid path pattern (literal segments, *, and ** last)`);
    else publicRoutes.push(Object.freeze({ methods: new Set(r.methods), pattern }));
  });

  const actions = new Map<string, readonly string[]>();
  for (const [name, methods] of Object.entries(config.grant.actions)) actions.set(name, Object.freeze([...methods]));

  const dpop = compileDpop(config, problems);

  if (problems.length > 0) throw new ConfigError(file, problems);

  return Object.freeze({
    issuers,
    audience: config.service.audience,
    grant: Object.freeze({ type: config.grant.type, actions, location: config.service.location }),
    publicRoutes: Object.freeze(publicRoutes),
    identity: identityHeaderNames(config.headers.prefix),
    identityPrefix: config.headers.prefix,
    methodOverride: config.headers.method_override,
    maxTokenBytes: config.headers.max_token_bytes,
    maxTargetLength: config.limits.max_target_length,
    allowDotLikeSegments: config.limits.allow_dot_like_segments,
    dpop,
    spiffeSubject: config.service.spiffe_subject,
    verifyMode: verifyModeOf(config),
  });
}

/** Where this process checks signatures on a cache miss, from the cores it may use (affinity and cgroup CPU quota). */
export function verifyModeOf(config: Pick<Config, 'workers'>): VerifyMode {
  return chooseVerifyMode(cores(), config.workers);
}

/** The `dpop` block (RFC 9449). Problems are pushed with their key; the result is only used when there are none. */
function compileDpop(config: Config, problems: string[]): DpopPolicy {
  const d = config.dpop;
  let externalOrigin: string | undefined;
  if (d.external_origin !== undefined) {
    const u = URL.parse(d.external_origin);
    if (u === null || u.username !== '' || u.password !== '' || u.pathname !== '/' || u.search !== '' || u.hash !== '') {
      problems.push(`dpop.external_origin: expected scheme://host[:port] only (no path, query or user), got ${JSON.stringify(d.external_origin)}`);
    } else {
      externalOrigin = u.origin;
    }
  }
  const proxies = compileAddressList(d.trusted_proxies);
  let trustedProxies = EMPTY_ADDRESS_LIST;
  if (Array.isArray(proxies)) for (const p of proxies) problems.push(`dpop.trusted_proxies${p}`);
  else trustedProxies = proxies;
  const algorithms = [...new Set(d.algorithms)];
  return Object.freeze({
    algorithms: new Set(algorithms),
    algs: algorithms.join(' '),
    iatWindowSec: d.iat_window / 1000,
    replayCacheEntries: d.replay_cache_entries,
    useNonce: d.use_nonce,
    nonceRotationMs: d.nonce_rotation,
    externalOrigin,
    trustedProxies,
  });
}
