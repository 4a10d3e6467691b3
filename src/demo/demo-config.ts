/**
 * The config `jitgate demo` runs with, written into the demo folder so a user can read it, or run the same
 * gate with `jitgate serve -c .jitgate-demo/jitgate.yaml` while the backend runs elsewhere. It goes through the
 * same validation as any operator's file.
 *
 * @module
 */
import { writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
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

const HEADER = `# Written by \`jitgate demo\` on every start; edits are overwritten. See config/jitgate.yaml for every key.
# Run the same gate without the demo backend: jitgate serve -c <this file> (upstream.url must then answer).
`;

/** Validates the demo config, writes it to `ws.configPath` and returns the validated form. */
export async function writeDemoConfig(ws: DemoWorkspace, opts: DemoConfigOptions): Promise<Config> {
  const raw = demoConfig(ws, opts);
  const config = validateConfig(raw, ws.configPath);
  await writeFile(ws.configPath, HEADER + stringify(raw, { lineWidth: 0 }));
  return config;
}
