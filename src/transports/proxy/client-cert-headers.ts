/**
 * Client-certificate headers (SPEC §11). A TLS-terminating proxy writes them to tell its backend
 * which certificate the client presented; a client can write them too. jitgate is the hop that
 * knows the connection's certificate, and tells the backend in its identity headers only
 * (`x-jit-client-cert-sha256`, `x-jit-spiffe-id`), so every inbound copy of these is dropped on
 * every proxy listener, plain or TLS, whether or not the connection has a certificate — a backend
 * that reads one (RFC 9440 §3: "a TLS-terminating reverse proxy … MUST sanitize") would otherwise
 * believe the client's word. Their `_` spellings go too (Apache's `SSL_CLIENT_CERT` as a header):
 * hop-headers.ts drops the `_` spelling of every name it owns.
 *
 * The list is exact (a name lookup in the existing header pass, no pattern): the names the RFC and
 * the common proxies' documentation and examples use. A backend that relies on a proxy in front of
 * jitgate for one of these loses it: it must use jitgate's identity headers instead.
 */

/** Lower case. */
export const CLIENT_CERT_HEADERS: readonly string[] = Object.freeze([
  // RFC 9440
  'client-cert',
  'client-cert-chain',
  // Envoy
  'x-forwarded-client-cert',
  // Traefik passTLSClientCert
  'x-forwarded-tls-client-cert',
  'x-forwarded-tls-client-cert-info',
  // nginx ($ssl_client_*), HAProxy (ssl_c_*) and Apache mod_ssl (SSL_CLIENT_*) examples
  'x-ssl-client-cert',
  'x-ssl-client-escaped-cert',
  'x-ssl-cert',
  'x-ssl-client-verify',
  'x-ssl-client-s-dn',
  'x-ssl-client-i-dn',
  'x-ssl-client-dn',
  'x-ssl-client-cn',
  'x-ssl-client-serial',
  'x-ssl-client-fingerprint',
  'x-ssl-client-sha1',
  'x-ssl-client-used',
  'x-ssl-client-notbefore',
  'x-ssl-client-notafter',
  'x-ssl-issuer',
  'x-ssl',
  'x-client-cert',
  'x-client-verify',
  'x-client-dn',
  'ssl-client-cert',
  'ssl-client-verify',
  'ssl-client-s-dn',
  'ssl-client-i-dn',
  // AWS ALB mTLS passthrough/verify, Azure App Service
  'x-amzn-mtls-clientcert',
  'x-amzn-mtls-clientcert-leaf',
  'x-amzn-mtls-clientcert-serial-number',
  'x-amzn-mtls-clientcert-issuer',
  'x-amzn-mtls-clientcert-subject',
  'x-amzn-mtls-clientcert-validity',
  'x-arr-clientcert',
]);
