/**
 * Client-written forwarding headers (issue 21 item 3). jitgate is the hop that knows the peer
 * address, the scheme, the host and the port, so what a client wrote under these names never
 * reaches the backend as if a proxy had written it — the rule Envoy applies with
 * `use_remote_address: true` and nginx examples with `proxy_set_header`:
 *
 * | header                              | jitgate sends                                         |
 * |-------------------------------------|-------------------------------------------------------|
 * | X-Forwarded-For                     | appended: inbound chain + peer (unchanged)            |
 * | X-Forwarded-Proto / -Host           | overwritten: `http` / the Host (unchanged)            |
 * | X-Real-IP                           | overwritten: the peer address                         |
 * | X-Forwarded-Port                    | overwritten: the port the client connected to         |
 * | Forwarded (RFC 7239) and the rest   | dropped (below)                                       |
 *
 * Forwarded is dropped rather than rewritten: its `host=`/`proto=` would duplicate the
 * X-Forwarded-* jitgate sets, and frameworks that read its FIRST element (Spring's
 * ForwardedHeaderUtils) would still see the client's; the chain of addresses lives on in
 * X-Forwarded-For. The other dropped names are what some framework or library reads as a proxy's
 * word about the client address or scheme (Rack, Gunicorn secure_scheme_headers, Spring,
 * Werkzeug ProxyFix, request-ip, Microsoft Front-End-Https); jitgate has no honest value for them.
 * Their `_` spellings go too (hop-headers.ts drops the `_` spelling of every name it owns).
 */

/** Overwritten with what jitgate knows: the inbound copies are dropped, jitgate's appended. */
export const OVERWRITTEN_FORWARDING: readonly string[] = Object.freeze(['x-real-ip', 'x-forwarded-port']);

/** Dropped: jitgate sends no value of its own. Lower case. */
export const DROPPED_FORWARDING: readonly string[] = Object.freeze([
  'forwarded', // RFC 7239
  'x-forwarded-prefix', // Spring, Werkzeug ProxyFix, Symfony: prefixes generated URLs and redirects
  'x-forwarded-ssl', // Rack, Spring, Gunicorn: `on` → https
  'x-forwarded-scheme', // Rack
  'x-forwarded-protocol', // Gunicorn secure_scheme_headers
  'x-url-scheme', // some WSGI/Rack setups
  'front-end-https', // Microsoft (OWA, IIS ARR)
  'x-forwarded-server', // Apache mod_proxy's, read by some apps as the public host
  'x-client-ip', // request-ip, many "client IP" helpers
  'true-client-ip', // Akamai / Cloudflare Enterprise
  'x-cluster-client-ip', // Rackspace / Riverbed
  'cf-connecting-ip', // Cloudflare
  'fastly-client-ip', // Fastly
  'x-forwarded', // request-ip
  'forwarded-for', // request-ip
]);
