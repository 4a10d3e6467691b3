/**
 * The Envoy, nginx, Caddy and Traefik examples (config/) each say what jitgate's own config must hold
 * beside them ("jitgate side"). A new operator ran them on one host as written and the second server
 * to start failed: jitgate's proxy and admin listeners always open, on 8080 and 9901 by default —
 * the very ports the examples give the front proxy and Envoy's admin. Each "jitgate side" must be a
 * valid config (with the issuers a real one has) whose listeners clash with no port of its example.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { validateConfig } from '../../src/config/load.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const examples = ['envoy', 'nginx', 'caddy', 'traefik'].flatMap((d) => readdirSync(join(root, 'config', d)).map((f) => join('config', d, f)));

/** The comment lines under "# jitgate side (jitgate.yaml):", as YAML. */
function jitgateSide(text: string): string {
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.startsWith('# jitgate side'));
  if (at === -1) return '';
  const block: string[] = [];
  for (const l of lines.slice(at + 1)) {
    if (!l.startsWith('#   ')) break;
    block.push(l.slice(4));
  }
  return block.join('\n');
}

/** Every number in the example's own (uncommented) text: its listeners, its admin, its upstreams. */
function numbersOutsideComments(text: string): Set<number> {
  const own = text
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n');
  return new Set([...own.matchAll(/\d{2,5}/g)].map((m) => Number(m[0])));
}

describe('front-proxy examples: the jitgate side', () => {
  it.each(examples)('%s: a valid config whose proxy and admin listeners take none of the example’s ports', (file) => {
    const text = readFileSync(join(root, file), 'utf8');
    const side = parse(jitgateSide(text)) as Record<string, any> | null;
    expect(side, 'a "# jitgate side (jitgate.yaml):" block').not.toBeNull();
    const config = validateConfig(
      { issuers: [{ issuer: 'https://broker.internal', jwks_uri: 'https://broker.internal/jwks.json' }], ...side, service: { audience: 'orders', ...side!.service } },
      join(root, file),
    );
    const ports = numbersOutsideComments(text);
    expect(ports.has(config.listen.port), `listen.port ${config.listen.port}`).toBe(false);
    expect(ports.has(config.admin.listen.port), `admin.listen.port ${config.admin.listen.port}`).toBe(false);
    // What the example sends jitgate is what the jitgate side listens on.
    const ext = [config.ext_authz?.http?.listen.port, config.ext_authz?.grpc?.listen.port].filter((p) => p !== undefined);
    expect(ext.length).toBeGreaterThan(0);
    expect(ext.some((p) => ports.has(p!))).toBe(true);
  });
});
