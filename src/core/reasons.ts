/**
 * The fixed list of decision reasons (SPEC §3). One table feeds the response status, the
 * `WWW-Authenticate` challenge, the JSON body, the audit line, the metric label and the README;
 * test/contract/reasons.test.ts keeps the README table equal to this one.
 *
 * A reason never carries request data: bodies and challenges are built from this table alone.
 */

/** `error` in the JSON body, and (for 401/403) the RFC 6750 error code. */
export type ErrorKind =
  | 'invalid_request'
  | 'unauthorized'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'unavailable'
  | 'bad_gateway'
  | 'gateway_timeout'
  | 'too_many_requests';

/** RFC 9449 §7.1 error code of the `DPoP` challenge that accompanies a proof-of-possession refusal. */
export type DpopErrorCode = 'invalid_dpop_proof' | 'use_dpop_nonce' | 'invalid_token';

export interface ReasonInfo {
  readonly status: number;
  readonly error: ErrorKind;
  /** One line for operators; shown in the README and in the audit log's `detail`. */
  readonly description: string;
  /** Set for DPoP refusals: the answer carries a `DPoP` challenge with this error beside the Bearer one. */
  readonly dpop?: DpopErrorCode;
}

function r(status: number, error: ErrorKind, description: string, dpop?: DpopErrorCode): ReasonInfo {
  return Object.freeze(dpop === undefined ? { status, error, description } : { status, error, description, dpop });
}

export const REASONS = Object.freeze({
  // Allow outcomes. Status 0: the transport decides (the upstream answers in proxy mode).
  granted: r(0, 'invalid_request', 'the request lies inside a grant entry of a valid token'),
  public: r(0, 'invalid_request', 'the request matched a configured public route'),

  // 400: the request itself is malformed (SPEC §2) — judged before any token work.
  bad_request_target: r(400, 'invalid_request', 'request target is not origin-form (/path?query)'),
  bad_method: r(400, 'invalid_request', 'request method is not a valid HTTP token'),
  path_too_long: r(400, 'invalid_request', 'request target exceeds the length limit'),
  path_backslash: r(400, 'invalid_request', 'path contains a backslash, raw or encoded'),
  path_control_char: r(400, 'invalid_request', 'path contains a control, space or non-ASCII character'),
  path_bad_encoding: r(400, 'invalid_request', 'path has invalid percent-encoding'),
  path_encoded_slash: r(400, 'invalid_request', 'path contains an encoded slash (%2F)'),
  path_double_encoding: r(400, 'invalid_request', 'path contains double percent-encoding (%25XX)'),
  path_dot_segment: r(400, 'invalid_request', 'path contains a dot segment (. or ..), raw, encoded or with ;params'),
  path_dot_like_segment: r(400, 'invalid_request', 'a path segment becomes . or .. once trimmed, best-fit mapped or re-parsed (limits.allow_dot_like_segments)'),
  path_empty_segment: r(400, 'invalid_request', 'path contains an empty segment (//), also once its whitespace is trimmed'),
  path_encoded_delimiter: r(400, 'invalid_request', 'a path segment holds an encoded ? or # (%3F, %23), where a re-parse would end the path'),
  path_invalid_utf8: r(400, 'invalid_request', 'a decoded path segment is not valid UTF-8'),
  path_unicode_confusable: r(400, 'invalid_request', 'a path segment folds (NFKC) to a slash, backslash or dot segment'),
  method_override: r(400, 'invalid_request', 'method-override headers are refused'),
  url_override: r(400, 'invalid_request', 'X-Original-URL / X-Rewrite-URL are refused where jitgate cannot remove them (forward-auth)'),
  identity_header: r(400, 'invalid_request', 'a header with the identity prefix (headers.prefix, also with _ for -), or a client-certificate header spelled with _, is refused where jitgate cannot remove it (forward-auth)'),
  multiple_authorization: r(400, 'invalid_request', 'more than one Authorization header'),
  multiple_dpop: r(400, 'invalid_request', 'more than one DPoP header'),
  missing_attributes: r(400, 'invalid_request', 'the ext_authz CheckRequest lacks the HTTP request attributes'),
  untrusted_forwarded: r(400, 'invalid_request', 'forwarded method/URI headers from an address that is not a trusted proxy'),
  missing_host: r(400, 'invalid_request', 'no Host header (or :authority) — RFC 9112 §3.2'),
  multiple_host: r(400, 'invalid_request', 'more than one Host header (or, on forward-auth, X-Forwarded-Host)'),
  invalid_host: r(400, 'invalid_request', 'Host, :authority or (on forward-auth) X-Forwarded-Host is not host[:port] (reg-name, IPv4 or [IPv6])'),
  connect_method: r(400, 'invalid_request', 'CONNECT (a tunnel) is never opened'),
  client_cert_malformed: r(400, 'invalid_request', 'the client certificate a trusted proxy forwarded (x-forwarded-client-cert, x-forwarded-tls-client-cert, source.certificate) cannot be parsed, or is a CA certificate or one whose extendedKeyUsage leaves out clientAuth'),
  bad_request: r(400, 'invalid_request', 'the request could not be parsed as HTTP/1.1 (refused by the HTTP parser)'),
  headers_too_large: r(431, 'invalid_request', 'the request head exceeds limits.max_header_bytes'),
  request_timeout: r(408, 'invalid_request', 'the request head or body did not arrive within limits.headers_timeout / request_timeout'),

  inflight_limit: r(429, 'too_many_requests', 'this token or client connection already has limits.max_inflight_per_token / _per_connection requests in flight'),

  // 401 without an error code: no credentials at all (RFC 6750 §3.1).
  missing_token: r(401, 'unauthorized', 'no bearer token in the Authorization header'),

  // 401 invalid_token: the token is not acceptable.
  malformed_token: r(401, 'invalid_token', 'the token is not a well-formed compact JWS'),
  token_too_large: r(401, 'invalid_token', 'the token exceeds the size limit'),
  alg_not_allowed: r(401, 'invalid_token', "the token's alg is not in the issuer's allowlist"),
  unsupported_crit: r(401, 'invalid_token', 'the token has a crit header parameter jitgate does not understand'),
  unknown_issuer: r(401, 'invalid_token', 'iss is not a configured issuer'),
  unknown_key: r(401, 'invalid_token', "no key in the issuer's key set matches the token's kid and alg"),
  bad_signature: r(401, 'invalid_token', 'the signature does not verify'),
  wrong_typ: r(401, 'invalid_token', 'the typ header does not match the issuer configuration'),
  wrong_audience: r(401, 'invalid_token', 'aud does not contain the service audience'),
  expired: r(401, 'invalid_token', 'the token is at or past exp'),
  not_yet_valid: r(401, 'invalid_token', 'the token is before nbf'),
  issued_in_future: r(401, 'invalid_token', 'iat is in the future'),
  lifetime_exceeded: r(401, 'invalid_token', "exp - iat exceeds the issuer's max_ttl"),
  invalid_claims: r(401, 'invalid_token', 'a required claim is missing or has the wrong type'),
  invalid_grant: r(401, 'invalid_token', 'authorization_details is malformed'),
  revoked: r(401, 'invalid_token', 'the token, its subject or its task has been revoked'),
  dpop_unsupported: r(401, 'invalid_token', 'the token is DPoP-bound (cnf) and this gate has no DPoP policy'),

  // 401 invalid_token: Token Status List (SPEC §10, draft-ietf-oauth-status-list). `revoked` above is status 1.
  suspended: r(401, 'invalid_token', "the token's entry in its status list is 2 (SUSPENDED)"),
  status_not_valid: r(401, 'invalid_token', "the token's entry in its status list is a value other than 0 (VALID), 1 or 2"),
  status_missing: r(401, 'invalid_token', 'the issuer requires a status claim (status_list.required) and the token has none'),
  status_claim_invalid: r(401, 'invalid_token', 'the status claim is malformed (no status mechanism in it, idx not a non-negative integer, uri not a string)'),
  status_uri_not_allowed: r(401, 'invalid_token', "the status list uri is outside the issuer's status_list.allowed_uris (not fetched)"),
  status_index_out_of_range: r(401, 'invalid_token', "the token's idx lies past the end of its status list"),
  status_list_malformed: r(401, 'invalid_token', 'the status list is not a compact JWS with a JSON payload'),
  status_list_typ: r(401, 'invalid_token', 'the status list typ is not statuslist+jwt'),
  status_list_signature: r(401, 'invalid_token', "the status list is not signed by a key of the token's issuer"),
  status_list_sub: r(401, 'invalid_token', 'the status list sub is not the uri it was fetched from'),
  status_list_claims: r(401, 'invalid_token', 'a status list claim is missing or wrong (iat, exp, ttl, status_list.bits of 1/2/4/8, lst)'),
  status_list_expired: r(401, 'invalid_token', 'the status list is at or past its exp'),
  status_list_encoding: r(401, 'invalid_token', 'the status list lst is not base64url of a complete ZLIB stream'),
  status_list_too_large: r(401, 'invalid_token', 'the status list exceeds status_list.max_bytes, or inflates past status_list.max_list_bytes'),

  // 401 invalid_token with a DPoP challenge: sender-constraint failures (RFC 9449 §4.3, §7.1; SPEC §1 cnf).
  dpop_required: r(401, 'invalid_token', 'the issuer requires DPoP-bound tokens (require_dpop) and this token has no cnf.jkt', 'invalid_token'),
  dpop_bearer_scheme: r(401, 'invalid_token', 'a DPoP-bound token was sent with the Bearer scheme instead of DPoP', 'invalid_token'),
  dpop_unbound_token: r(401, 'invalid_token', 'the DPoP scheme was used with a token that is not DPoP-bound (no cnf.jkt)', 'invalid_token'),
  dpop_proof_missing: r(401, 'invalid_token', 'a DPoP-bound token arrived without a DPoP proof header', 'invalid_dpop_proof'),
  dpop_proof_malformed: r(401, 'invalid_token', 'the DPoP proof is not a well-formed compact JWS with a JSON header and claims', 'invalid_dpop_proof'),
  dpop_proof_typ: r(401, 'invalid_token', 'the DPoP proof typ is not dpop+jwt', 'invalid_dpop_proof'),
  dpop_proof_alg: r(401, 'invalid_token', 'the DPoP proof alg is not in dpop.algorithms (none and HS* never are)', 'invalid_dpop_proof'),
  dpop_proof_jwk: r(401, 'invalid_token', 'the DPoP proof jwk is missing, holds private key material, or does not fit its alg', 'invalid_dpop_proof'),
  dpop_proof_signature: r(401, 'invalid_token', 'the DPoP proof signature does not verify with its jwk', 'invalid_dpop_proof'),
  dpop_proof_claims: r(401, 'invalid_token', 'a DPoP proof claim (jti, htm, htu, iat, ath) is missing or has the wrong type', 'invalid_dpop_proof'),
  dpop_htm_mismatch: r(401, 'invalid_token', 'the DPoP proof htm is not the request method', 'invalid_dpop_proof'),
  dpop_htu_mismatch: r(401, 'invalid_token', 'the DPoP proof htu is not the request URI (or the request origin is unknown)', 'invalid_dpop_proof'),
  dpop_iat_window: r(401, 'invalid_token', 'the DPoP proof iat is outside dpop.iat_window of now', 'invalid_dpop_proof'),
  dpop_ath_mismatch: r(401, 'invalid_token', 'the DPoP proof ath is not the hash of this access token', 'invalid_dpop_proof'),
  dpop_key_mismatch: r(401, 'invalid_token', "the DPoP proof key's thumbprint is not the token's cnf.jkt", 'invalid_dpop_proof'),
  dpop_replay: r(401, 'invalid_token', 'the DPoP proof jti was already used within the iat window', 'invalid_dpop_proof'),
  dpop_replay_cache_full: r(401, 'invalid_token', 'the DPoP replay cache is full of unexpired proofs; new proofs are refused until entries age out', 'invalid_dpop_proof'),
  dpop_nonce_required: r(401, 'invalid_token', 'the DPoP proof lacks a current server nonce (a fresh one is in DPoP-Nonce)', 'use_dpop_nonce'),

  // 401 invalid_token: workload identity from the connection (RFC 8705 §3, SPEC §11).
  cert_binding_malformed: r(401, 'invalid_token', 'cnf.x5t#S256 is not the base64url SHA-256 thumbprint of a certificate'),
  cert_required: r(401, 'invalid_token', 'the token is certificate-bound (cnf.x5t#S256) and the connection has no verified client certificate'),
  cert_binding_mismatch: r(401, 'invalid_token', "the verified client certificate's SHA-256 thumbprint is not the token's cnf.x5t#S256"),
  cert_binding_required: r(401, 'invalid_token', 'the issuer requires certificate-bound tokens (require_cert_binding) and this token has no cnf.x5t#S256'),
  spiffe_id_missing: r(401, 'invalid_token', 'service.spiffe_subject is on and the connection has no verified client certificate with one spiffe:// URI SAN'),
  spiffe_id_mismatch: r(401, 'invalid_token', "the client certificate's spiffe:// URI SAN is not the token's sub"),
  client_cert_expired: r(401, 'invalid_token', 'the client certificate the token relies on is past its notAfter'),
  client_cert_not_yet_valid: r(401, 'invalid_token', 'the client certificate the token relies on is before its notBefore'),

  // 403 insufficient_scope: a valid token, but not for this request.
  no_grant: r(403, 'insufficient_scope', 'the token has no grant entry of the configured type for this service'),
  method_not_granted: r(403, 'insufficient_scope', 'the path is granted, but not for this method'),
  path_not_granted: r(403, 'insufficient_scope', 'no grant entry covers this path'),

  // 503: could not decide — fail closed.
  keys_unavailable: r(503, 'unavailable', "the issuer's keys are not loaded yet"),
  keys_stale: r(503, 'unavailable', "the issuer's keys could not be refreshed for longer than jwks_max_stale"),
  revocation_stale: r(503, 'unavailable', 'a remote revocation source has not synced for longer than max_stale'),
  replay_check_unavailable: r(503, 'unavailable', 'dpop.replay is redis and Redis could not record the proof (unreachable, timed out or answered an error)'),
  internal_error: r(503, 'unavailable', 'jitgate failed while deciding (a bug); the request is refused, never allowed'),
  status_list_unavailable: r(503, 'unavailable', 'the status list could not be fetched (network, HTTP status) and no good copy is held'),
  status_list_timeout: r(503, 'unavailable', 'the first fetch of the status list did not finish within status_list.timeout'),
  status_list_redirect: r(503, 'unavailable', 'the status list URL answered with a redirect, which is never followed'),
  status_list_stale: r(503, 'unavailable', 'the status list has not been refreshed for longer than status_list.max_stale'),
  status_list_capacity: r(503, 'unavailable', "the issuer's status_list.max_lists lists are all in use (each asked within the last refresh), so this token's list is not fetched until one falls idle"),

  // Proxy-only outcomes after an allow.
  upstream_unreachable: r(502, 'bad_gateway', 'the upstream refused, reset or failed the connection'),
  upstream_tls: r(502, 'bad_gateway', "the TLS handshake with the upstream failed: its certificate did not verify (untrusted, expired, wrong name) or it refused jitgate's"),
  upstream_timeout: r(504, 'gateway_timeout', 'the upstream did not answer in time'),
} as const satisfies Record<string, ReasonInfo>);

export type Reason = keyof typeof REASONS;
export const REASON_CODES: readonly Reason[] = Object.freeze(Object.keys(REASONS) as Reason[]);
