/**
 * HAProxy as a peer row (issue 20): Debian's haproxy 2.6 with `jwt_verify` in front of the same upstream, checking
 * what a JIT gate must check — signature (the alg pinned to the run's), exp, iss, aud, the method against the
 * grant's actions and a path prefix — with no cache (HAProxy verifies every request). Started only when the binary
 * is installed; the config is generated into the run's temp dir, listening on loopback only.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Fixtures } from './fixtures.ts';
import { AUDIENCE, ISSUER } from './fixtures.ts';
import { findBinary, freePorts, type Child } from './processes.ts';

const BINARY_CANDIDATES = ['/usr/sbin/haproxy', '/usr/bin/haproxy', '/usr/local/sbin/haproxy'];

export function haproxyBinary(): string | undefined {
  return findBinary(BINARY_CANDIDATES, ['-v']);
}

/** The config: one frontend that denies unless every check passes, one backend (the upstream). */
export function haproxyConfig(o: { port: number; upstreamPort: number; alg: string; pem: string; threads: number; pathPrefix: string }): string {
  const bearer = 'http_auth_bearer';
  return `global
  nbthread ${o.threads}
  maxconn 4096
  tune.bufsize 16384

defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 5s
  option http-keep-alive

frontend gate
  bind 127.0.0.1:${o.port}
  http-request deny deny_status 401 unless { req.hdr(authorization) -m beg "Bearer " }
  http-request set-var(txn.alg) ${bearer},jwt_header_query('$.alg')
  http-request deny deny_status 401 unless { var(txn.alg) -m str ${o.alg} }
  http-request deny deny_status 401 unless { ${bearer},jwt_verify(txn.alg,"${o.pem}") -m int 1 }
  http-request set-var(txn.exp) ${bearer},jwt_payload_query('$.exp','int')
  http-request set-var(txn.now) date()
  http-request deny deny_status 401 if { var(txn.exp),sub(txn.now) -m int le 0 }
  http-request deny deny_status 401 unless { ${bearer},jwt_payload_query('$.iss') -m str ${ISSUER} }
  http-request deny deny_status 401 unless { ${bearer},jwt_payload_query('$.aud') -m str ${AUDIENCE} }
  http-request set-var(txn.a0) ${bearer},jwt_payload_query('$.authorization_details[0].actions[0]')
  http-request set-var(txn.a1) ${bearer},jwt_payload_query('$.authorization_details[0].actions[1]')
  acl method_granted method,strcmp(txn.a0) eq 0
  acl method_granted method,strcmp(txn.a1) eq 0
  http-request deny deny_status 403 unless method_granted { path_beg ${o.pathPrefix} }
  default_backend upstream

backend upstream
  server up 127.0.0.1:${o.upstreamPort}
`;
}

async function waitListening(port: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`haproxy did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startHaproxy(binary: string, fx: Fixtures, upstreamPort: number, threads: number): Promise<Child> {
  const jwks = JSON.parse(await readFile(fx.jwksPath, 'utf8')) as { keys: object[] };
  const pem = join(fx.dir, 'haproxy-key.pem');
  await writeFile(pem, createPublicKey({ key: jwks.keys[0] as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }));
  const [port] = await freePorts(1);
  const cfg = join(fx.dir, `haproxy-${threads}.cfg`);
  await writeFile(cfg, haproxyConfig({ port: port!, upstreamPort, alg: fx.alg, pem, threads, pathPrefix: '/orders/' }));
  const check = spawnSync(binary, ['-c', '-f', cfg], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`haproxy refused the generated config:\n${check.stdout}${check.stderr}`);
  const proc = spawn(binary, ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<never>((_, reject) => proc.once('exit', (code) => reject(new Error(`haproxy exited (${code}) before listening`))));
  try {
    await Promise.race([waitListening(port!, 5_000), exited]);
  } catch (err) {
    proc.kill('SIGKILL');
    throw err;
  }
  exited.catch(() => undefined);
  return { name: `haproxy-${threads}`, proc, port: port! };
}
