/**
 * The configs `jitgate demo` runs with, written into the demo folder so a user can read them, or run the same
 * gates with `jitgate serve -c .jitgate-demo/jitgate.yaml` (and `jitgate-mtls.yaml`) while the backend runs
 * elsewhere. They go through the same validation as any operator's file.
 *
 * @module
 */
import { writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { stringify } from 'yaml';
import { validateConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import type { DemoWorkspace } from './workspace.ts';

export const DEMO_ISSUER = 'https://issuer.demo.jitgate';
export const DEMO_AUDIENCE = 'orders';

export interface DemoConfigOptions {
  readonly port: number;
  readonly adminPort: number;
  readonly upstreamUrl: string;
  /** `stdout`, `stderr` or a path; relative paths resolve against the demo folder. */
  readonly logDestination: string;
}

/** The raw (YAML-shaped) demo config; every file path is relative to the demo folder. */
export function demoConfig(ws: DemoWorkspace, opts: DemoConfigOptions): Record<string, unknown> {
  return {
    listen: { host: '127.0.0.1', port: opts.port },
    upstream: { url: opts.upstreamUrl },
    service: { audience: DEMO_AUDIENCE },
    issuers: [
      {
        issuer: DEMO_ISSUER,
        jwks_file: `./${basename(ws.jwksPath)}`,
        algorithms: ['ES256'],
        max_ttl: '15m',
        clock_tolerance: '5s',
        typ: 'jit+jwt',
      },
    ],
    grant: { type: 'jit_grant', actions: { read: ['GET', 'HEAD'], write: ['POST', 'PUT', 'PATCH', 'DELETE'] } },
    public: [],
    revocation: {
      file: `./${basename(ws.revokedPath)}`,
      // Short so the file fallback takes effect quickly; the admin API applies at once anyway.
      poll_interval: '500ms',
      journal: `./${basename(ws.journalPath)}`,
    },
    admin: { listen: { host: '127.0.0.1', port: opts.adminPort }, token_file: `./${basename(ws.adminTokenPath)}` },
    log: { level: 'info', audit: true, destination: opts.logDestination },
    shutdown: { grace: '2s' },
  };
}

/** The mTLS gate's config file in the demo folder. */
export const MTLS_CONFIG_FILE = 'jitgate-mtls.yaml';

export interface DemoMtlsConfigOptions extends Omit<DemoConfigOptions, 'adminPort'> {
  /** The PKI's files, relative to the demo folder (src/demo/mtls.ts makes them). */
  readonly tls: { readonly caFile: string; readonly certFile: string; readonly keyFile: string };
}

/**
 * The second demo gate (SPEC §11): the same issuer, grant and backend behind a TLS listener that verifies client
 * certificates against the demo CA, with the SPIFFE subject rule on. `require_client_cert` stays false so that a
 * request without a certificate reaches the decision and gets its precise 401 (`cert_required`) rather than a
 * refused handshake; a gate whose every client is a workload sets it true. Revocation reads the shared revocation
 * file only: the plain gate owns the journal. Its admin listener (used only under `jitgate serve`) takes a free port.
 */
export function demoMtlsConfig(ws: DemoWorkspace, opts: DemoMtlsConfigOptions): Record<string, unknown> {
  const plain = demoConfig(ws, { ...opts, adminPort: 0 });
  return {
    ...plain,
    listen: {
      host: '127.0.0.1',
      port: opts.port,
      tls: { cert_file: opts.tls.certFile, key_file: opts.tls.keyFile, client_ca_file: opts.tls.caFile, require_client_cert: false },
    },
    service: { audience: DEMO_AUDIENCE, spiffe_subject: true },
    revocation: { file: `./${basename(ws.revokedPath)}`, poll_interval: '500ms' },
  };
}

const HEADER = `# Written by \`jitgate demo\` on every start; edits are overwritten. See config/jitgate.yaml for every key.
# Run the same gate without the demo backend: jitgate serve -c <this file> (upstream.url must then answer).
`;

/** Validates the demo config, writes it to `ws.configPath` and returns the validated form. */
export async function writeDemoConfig(ws: DemoWorkspace, opts: DemoConfigOptions): Promise<Config> {
  return writeValidated(ws.configPath, demoConfig(ws, opts));
}

/** The same for the mTLS gate, to `MTLS_CONFIG_FILE`; returns the validated form and the file's path. */
export async function writeDemoMtlsConfig(ws: DemoWorkspace, opts: DemoMtlsConfigOptions): Promise<{ config: Config; path: string }> {
  const path = join(ws.dir, MTLS_CONFIG_FILE);
  return { config: await writeValidated(path, demoMtlsConfig(ws, opts)), path };
}

async function writeValidated(path: string, raw: Record<string, unknown>): Promise<Config> {
  const config = validateConfig(raw, path);
  await writeFile(path, HEADER + stringify(raw, { lineWidth: 0 }));
  return config;
}
