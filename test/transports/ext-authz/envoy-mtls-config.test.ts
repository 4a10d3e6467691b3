/**
 * config/envoy/envoy-mtls.yaml keeps the settings SPEC §11 depends on: Envoy terminates mTLS with a
 * required client certificate, sends it to jitgate (include_peer_certificate), and replaces any
 * client-sent x-forwarded-client-cert with its own (SANITIZE_SET). Envoy cannot run here; what it
 * sends is exercised in workload-identity.test.ts.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const FILE = fileURLToPath(new URL('../../../config/envoy/envoy-mtls.yaml', import.meta.url));

describe('config/envoy/envoy-mtls.yaml', () => {
  it('requires client certificates, sanitizes XFCC and passes the peer certificate to jitgate, failing closed', async () => {
    const doc = parse(await readFile(FILE, 'utf8')) as any;
    const chain = doc.static_resources.listeners[0].filter_chains[0];
    const tls = chain.transport_socket.typed_config;
    expect(tls['@type']).toBe('type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext');
    expect(tls.require_client_certificate).toBe(true);
    expect(tls.common_tls_context.validation_context.trusted_ca.filename).toBeTruthy();
    const hcm = chain.filters[0].typed_config;
    expect(hcm.forward_client_cert_details).toBe('SANITIZE_SET');
    expect(hcm.set_current_client_cert_details).toMatchObject({ cert: true, uri: true });
    const authz = hcm.http_filters.find((f: any) => f.name === 'envoy.filters.http.ext_authz').typed_config;
    expect(authz.include_peer_certificate).toBe(true);
    expect(authz.failure_mode_allow).toBe(false);
    expect(authz.transport_api_version).toBe('V3');
    expect(hcm.http_filters.at(-1).name).toBe('envoy.filters.http.router');
  });
});
