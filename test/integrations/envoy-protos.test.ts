/**
 * Every Envoy bootstrap we ship (config/envoy/*.yaml) read strictly as
 * `envoy.config.bootstrap.v3.Bootstrap` against Envoy's own API protos (issue 18 item 4), with
 * the settings jitgate depends on checked on the decoded messages, and proof that the checker
 * refuses what Envoy would refuse. The protos come from the devDependency @grpc/grpc-js-xds;
 * the checker is test/fixtures/envoy-protos.ts. No full bootstrap lives in docs/ or deploy/
 * (deploy/k8s runs jitgate alone); the Envoy excerpts in docs/ are checked as fragments below.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { BOOTSTRAP, checkEnvoyFragment, checkEnvoyMessage } from '../fixtures/envoy-protos.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const ENVOY_DIR = `${REPO}config/envoy/`;
const FILES = readdirSync(ENVOY_DIR).filter((f) => /\.ya?ml$/.test(f)).sort();
const text = (f: string) => readFileSync(`${ENVOY_DIR}${f}`, 'utf8');
const load = (f: string): any => parse(text(f));

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const EXT_AUTHZ = 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz';
const TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';

/** The commented block after "as if uncommented", uncommented: the optional mTLS transport socket. */
function uncommentedBlock(source: string): any | undefined {
  const lines = source.split('\n');
  const at = lines.findIndex((l) => l.includes('as if uncommented'));
  if (at === -1) return undefined;
  const block: string[] = [];
  for (const line of lines.slice(at + 1)) {
    const m = /^(\s*)# ?(.*)$/.exec(line);
    if (m === null) break;
    block.push(m[1]! + m[2]!);
  }
  return parse(block.join('\n'));
}

function hcmsOf(doc: any): any[] {
  return doc.static_resources.listeners.flatMap((l: any) => l.filter_chains.flatMap((c: any) => c.filters.filter((f: any) => f.typed_config?.['@type'] === HCM).map((f: any) => f.typed_config)));
}

describe('config/envoy/*.yaml against Envoy\'s protos', () => {
  it('ships the three bootstraps the docs name', () => {
    expect(FILES).toEqual(['envoy-http.yaml', 'envoy-mtls.yaml', 'envoy.yaml']);
  });

  it.each(FILES)('%s is a valid envoy.config.bootstrap.v3.Bootstrap, every typed_config included', (f) => {
    expect(checkEnvoyMessage(BOOTSTRAP, load(f))).toEqual([]);
  });

  it.each(['envoy.yaml', 'envoy-http.yaml'])('%s: the commented mTLS transport socket is valid once uncommented', (f) => {
    const block = uncommentedBlock(text(f));
    expect(block?.transport_socket?.typed_config?.['@type']).toBe(TLS);
    const doc = load(f);
    doc.static_resources.listeners[0].filter_chains[0].transport_socket = block.transport_socket;
    expect(checkEnvoyMessage(BOOTSTRAP, doc)).toEqual([]);
  });

  it('envoy.yaml: the commented encode_raw_headers option is an ExtAuthz field of this API', () => {
    expect(text('envoy.yaml')).toMatch(/^\s+# encode_raw_headers: true$/m);
    const doc = load('envoy.yaml');
    const filters = hcmsOf(doc)[0].http_filters;
    filters.find((x: any) => x.typed_config?.['@type'] === EXT_AUTHZ).typed_config.encode_raw_headers = true;
    expect(checkEnvoyMessage(BOOTSTRAP, doc)).toEqual([]);
  });

  it.each(FILES)('%s: ext_authz speaks V3, fails closed, sends the peer certificate and names a defined cluster', (f) => {
    const doc = load(f);
    const clusters = new Set(doc.static_resources.clusters.map((c: any) => c.name));
    const hcms = hcmsOf(doc);
    expect(hcms.length).toBeGreaterThan(0);
    for (const hcm of hcms) {
      const filters = hcm.http_filters;
      expect(filters.at(-1).name).toBe('envoy.filters.http.router');
      const authz = filters.filter((x: any) => x.typed_config?.['@type'] === EXT_AUTHZ).map((x: any) => x.typed_config);
      expect(authz).toHaveLength(1);
      const x = authz[0];
      expect(x.transport_api_version).toBe('V3');
      expect(x.failure_mode_allow).toBe(false);
      expect(x.include_peer_certificate).toBe(true);
      const target = x.grpc_service?.envoy_grpc?.cluster_name ?? x.http_service?.server_uri?.cluster;
      expect(clusters.has(target), `${f}: ext_authz cluster ${target}`).toBe(true);
      // XFCC: never a client-written one (SPEC §11).
      expect(hcm.forward_client_cert_details).toBe('SANITIZE_SET');
      expect(hcm.set_current_client_cert_details).toMatchObject({ cert: true, uri: true });
      if (x.http_service !== undefined) {
        const sent = x.allowed_headers.patterns.map((p: any) => p.exact);
        expect(sent).toContain('x-forwarded-client-cert');
      }
      for (const vh of hcm.route_config.virtual_hosts) {
        for (const r of vh.routes) expect(clusters.has(r.route.cluster), `${f}: route cluster ${r.route.cluster}`).toBe(true);
      }
    }
  });

  it('envoy-mtls.yaml requires and verifies a client certificate on its listener', () => {
    const chain = load('envoy-mtls.yaml').static_resources.listeners[0].filter_chains[0];
    expect(chain.transport_socket.typed_config['@type']).toBe(TLS);
    expect(chain.transport_socket.typed_config.require_client_certificate).toBe(true);
    expect(chain.transport_socket.typed_config.common_tls_context.validation_context.trusted_ca.filename).toMatch(/\.pem$|\.crt$/);
  });
});

/** Path of the ext_authz typed_config inside a bootstrap. */
function authzPath(doc: any): string {
  const filters = doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters;
  const i = filters.findIndex((x: any) => x.typed_config?.['@type'] === EXT_AUTHZ);
  return `static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[${i}].typed_config`;
}

function at(doc: any, path: string): any {
  return path.split(/\.|\[(\d+)\]/).filter((s) => s !== undefined && s !== '').reduce((o, k) => o[k], doc);
}

interface Mutation {
  readonly name: string;
  /** Mutates a copy; returns the path the problem must name. */
  readonly apply: (doc: any) => string;
}

const MUTATIONS: readonly Mutation[] = [
  {
    name: 'a misspelled field in a cluster',
    apply: (doc) => {
      const c = doc.static_resources.clusters[0];
      c.conect_timeout = c.connect_timeout;
      delete c.connect_timeout;
      return 'static_resources.clusters[0].conect_timeout: unknown field of envoy.config.cluster.v3.Cluster';
    },
  },
  {
    name: 'a misspelled field inside the ext_authz Any',
    apply: (doc) => {
      const p = authzPath(doc);
      at(doc, p).failure_mode_alow = false;
      return `${p}.failure_mode_alow: unknown field of envoy.extensions.filters.http.ext_authz.v3.ExtAuthz`;
    },
  },
  {
    name: 'a wrong enum value',
    apply: (doc) => {
      const p = authzPath(doc);
      at(doc, p).transport_api_version = 'V4';
      return `${p}.transport_api_version: "V4" is not a value of envoy.config.core.v3.ApiVersion`;
    },
  },
  {
    name: 'an Any with an unknown @type',
    apply: (doc) => {
      doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config['@type'] = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManagr';
      return 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type: envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManagr is not a message';
    },
  },
  {
    name: 'a wrong scalar type (port as text)',
    apply: (doc) => {
      doc.static_resources.listeners[0].address.socket_address.port_value = 'eighty';
      return 'static_resources.listeners[0].address.socket_address.port_value: expected an integer (uint32), got string "eighty"';
    },
  },
  {
    name: 'a boolean given as text',
    apply: (doc) => {
      const p = authzPath(doc);
      at(doc, p).include_peer_certificate = 'yes';
      return `${p}.include_peer_certificate: expected a boolean`;
    },
  },
  {
    name: 'a duration without its unit',
    apply: (doc) => {
      doc.static_resources.clusters[0].connect_timeout = '0.25';
      return 'static_resources.clusters[0].connect_timeout: expected a duration like "0.25s", got string "0.25"';
    },
  },
  {
    name: 'two members of a oneof',
    apply: (doc) => {
      const p = authzPath(doc);
      const x = at(doc, p);
      if (x.grpc_service === undefined) x.grpc_service = { envoy_grpc: { cluster_name: 'backend' } };
      else x.http_service = { server_uri: { uri: 'http://127.0.0.1:9191', cluster: 'backend', timeout: '0.25s' } };
      return `${p}: oneof services has grpc_service and http_service; at most one`;
    },
  },
  {
    name: 'a deprecated field',
    apply: (doc) => {
      doc.use_tcp_for_dns_lookups = true;
      return 'use_tcp_for_dns_lookups: deprecated field of envoy.config.bootstrap.v3.Bootstrap';
    },
  },
  {
    name: 'a required message left out',
    apply: (doc) => {
      delete doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].match;
      return 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].match: required by envoy.config.route.v3.Route';
    },
  },
  {
    name: 'an empty YAML value',
    apply: (doc) => {
      doc.static_resources.clusters[0].load_assignment.cluster_name = null;
      return 'static_resources.clusters[0].load_assignment.cluster_name: empty (null) value';
    },
  },
];

describe('the checker refuses what Envoy would refuse, naming the path', () => {
  for (const f of FILES) {
    it.each(MUTATIONS.map((m) => [m.name, m] as const))(`${f}: %s`, (_name, m) => {
      const doc = load(f);
      const expected = m.apply(doc);
      const problems = checkEnvoyMessage(BOOTSTRAP, doc);
      expect(problems.some((p) => p.startsWith(expected)), `${expected}\n  in: ${problems.join('\n      ')}`).toBe(true);
    });
  }

  it('refuses an unknown field inside the uncommented TLS block too', () => {
    const block = uncommentedBlock(text('envoy.yaml'));
    block.transport_socket.typed_config.require_client_certificat = true;
    expect(checkEnvoyMessage('envoy.config.listener.v3.FilterChain', block)).toEqual([
      'transport_socket.typed_config.require_client_certificat: unknown field of envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
    ]);
  });
});

/** The yaml code block of a doc that contains `marker`. */
function docBlock(doc: string, marker: string): any {
  const md = readFileSync(`${REPO}docs/${doc}`, 'utf8');
  const block = [...md.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.includes(marker));
  expect(block, `${doc}: a yaml block with ${marker}`).toBeDefined();
  return parse(block!);
}

describe('Envoy excerpts in docs/ (fragments, not bootstraps)', () => {
  it('docs/deploying.md: the http_filters excerpt is an HttpConnectionManager fragment', () => {
    const frag = docBlock('deploying.md', 'excerpt of config/envoy/envoy.yaml');
    expect(Object.keys(frag)).toEqual(['http_filters']);
    expect(checkEnvoyFragment(['envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager'], frag)).toEqual([]);
  });

  it('docs/workload-identity.md: the mTLS excerpt is fields of FilterChain, HttpConnectionManager and ExtAuthz', () => {
    const frag = docBlock('workload-identity.md', 'DownstreamTlsContext');
    const types = ['envoy.config.listener.v3.FilterChain', 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', 'envoy.extensions.filters.http.ext_authz.v3.ExtAuthz'];
    expect(checkEnvoyFragment(types, frag)).toEqual([]);
    expect(checkEnvoyFragment(types, { ...frag, forward_client_cert: 'SANITIZE_SET' })).toEqual([
      'forward_client_cert: not a field of envoy.config.listener.v3.FilterChain or envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager or envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
    ]);
  });
});
