/**
 * Everything a run needs on disk, made fresh in a temp directory with jitgate's own tools:
 * dev keys (`generateDevKeys`), grant tokens (`mintToken`), gate configs per variant and a
 * 1,000,000-entry revocation file.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateDevKeys } from '../../src/issuing/dev-keys.ts';
import { mintToken } from '../../src/issuing/mint-token.ts';
import { signStatusList } from '../../src/cli/status-list.ts';

export const ISSUER = 'https://broker.bench.internal';
export const AUDIENCE = 'orders';
export const SUBJECT = 'spiffe://bench/ci-deployer';

export interface Tokens {
  /** One token granted GET/POST on /orders/**, sent on every request of the "hot" scenarios. */
  readonly hot: string;
  /** The hot token with one signature character changed: well-formed, bad signature. */
  readonly badSignature: string;
  /** Distinct tokens (distinct jti/sub), same grant, for the verification scenarios. */
  readonly rotating: readonly string[];
  /** The hot token's grant plus a status claim (idx 0 of the bench list); set when the run has status-list rows. */
  readonly statusHot?: string;
  /** Distinct tokens pointing at indexes 1..n of the bench list (all VALID), for the cold status-list row. */
  readonly statusRotating?: readonly string[];
  /** The rotating tokens with a corrupted signature each: forged tokens never seen before (issue 20). */
  readonly forgedRotating: readonly string[];
}

/** Where the status-list rows' list lives (bench/macro/status-list-server.ts). */
export interface StatusListFixture {
  readonly uri: string;
  readonly prefix: string;
  /** The signed list (1 bit, 16,384 entries, index 16,383 INVALID), to serve at `uri`. */
  readonly jwt: string;
}

export interface Fixtures {
  readonly dir: string;
  readonly alg: string;
  readonly jwksPath: string;
  /** The dev key (Ed25519 when --alg EdDSA); the audit-chain variant makes its own Ed25519 key beside it. */
  readonly privateKeyPath: string;
  readonly tokens: Tokens;
  readonly statusList?: StatusListFixture;
}

/** Flips one base64url character in the middle of the signature (never the last, whose low bits may be padding). */
function corruptSignature(token: string): string {
  const dot = token.lastIndexOf('.');
  const i = dot + 1 + Math.floor((token.length - dot - 1) / 2);
  const c = token[i] === 'A' ? 'B' : 'A';
  return token.slice(0, i) + c + token.slice(i + 1);
}

export async function makeFixtures(opts: { alg: string; rotating: number; ttlSeconds: number; statusList?: { uri: string; prefix: string } }): Promise<Fixtures> {
  const dir = await mkdtemp(join(tmpdir(), 'jitgate-bench-'));
  const keys = await generateDevKeys(join(dir, 'keys'), { alg: opts.alg });
  const jwk = JSON.parse(await readFile(keys.privatePath, 'utf8')) as Record<string, unknown>;
  const mint = (i: number, status?: { uri: string; idx: number }): Promise<string> =>
    mintToken({
      statusList: status,
      key: jwk,
      iss: ISSUER,
      aud: AUDIENCE,
      sub: i < 0 ? SUBJECT : `${SUBJECT}-${i}`,
      actions: ['GET', 'POST'],
      paths: ['/orders/**'],
      ttlSeconds: opts.ttlSeconds,
      txn: 'bench',
    });
  const hot = await mint(-1);
  const rotating: string[] = [];
  for (let i = 0; i < opts.rotating; i += 500) {
    const batch = await Promise.all(Array.from({ length: Math.min(500, opts.rotating - i) }, (_, j) => mint(i + j)));
    rotating.push(...batch);
  }
  const privateKeyPath = (await generateDevKeys(join(dir, 'audit-key'), { alg: 'EdDSA' })).privatePath;
  const sl = opts.statusList;
  if (sl === undefined) return { dir, alg: opts.alg, jwksPath: keys.jwksPath, privateKeyPath, tokens: { hot, badSignature: corruptSignature(hot), rotating, forgedRotating: rotating.map(corruptSignature) } };
  // The same grant and subject as `hot`, so the two hot rows differ only by the status claim.
  const statusHot = await mint(-1, { uri: sl.uri, idx: 0 });
  const statusRotating: string[] = [];
  for (let i = 0; i < opts.rotating; i += 500) {
    statusRotating.push(...(await Promise.all(Array.from({ length: Math.min(500, opts.rotating - i) }, (_, j) => mint(i + j, { uri: sl.uri, idx: 1 + i + j })))));
  }
  const jwt = await signStatusList({ key: jwk, uri: sl.uri, bits: 1, size: 16_384, statuses: new Map([[16_383, 1]]) });
  return {
    dir,
    alg: opts.alg,
    jwksPath: keys.jwksPath,
    privateKeyPath,
    tokens: { hot, badSignature: corruptSignature(hot), rotating, forgedRotating: rotating.map(corruptSignature), statusHot, statusRotating },
    statusList: { ...sl, jwt },
  };
}

/** A JSON Lines revocation feed of n jti entries (none of them ours), as an operator's file source would hold. */
export async function writeRevocationFile(file: string, n: number): Promise<void> {
  const out = createWriteStream(file);
  const exp = Math.floor(Date.now() / 1000) + 86_400;
  const BATCH = 10_000;
  for (let i = 0; i < n; i += BATCH) {
    let chunk = '';
    for (let j = i; j < Math.min(n, i + BATCH); j++) chunk += `{"jti":"revoked-${j.toString(16).padStart(8, '0')}-5f0c-4e4e-9d7a","exp":${exp}}\n`;
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

export interface GateVariant {
  readonly audit: boolean;
  /** cache.max_entries; smaller than the rotating set means every rotating request verifies. */
  readonly cacheEntries: number;
  readonly revocationFile?: string;
  /** log.destination; default a file in the run's directory. */
  readonly logDestination?: string;
  /** The issuer gets a status_list block allowing the bench list (SPEC §10). */
  readonly statusList?: boolean;
  /** log.audit_chain with a checkpoint key (SPEC §12). */
  readonly auditChain?: boolean;
  /** anomaly counting on, revoking into a journal (SPEC §12). */
  readonly anomaly?: boolean;
  /** tracing.sample_ratio with spans exported to the bench upstream's /v1/traces; no tracing block when absent. */
  readonly tracingSampleRatio?: number;
}

export interface GatePorts {
  readonly proxy: number;
  readonly admin: number;
  readonly extAuthzHttp: number;
  readonly extAuthzGrpc: number;
}

/** A config as an operator would write it (JSON is YAML), with audit lines going to a file. */
export async function writeGateConfig(
  fx: Fixtures,
  name: string,
  v: GateVariant,
  ports: GatePorts,
  upstreamPort: number,
  workers: number,
): Promise<string> {
  const config = {
    listen: { host: '127.0.0.1', port: ports.proxy },
    upstream: { url: `http://127.0.0.1:${upstreamPort}` },
    service: { audience: AUDIENCE },
    // max_ttl is long only so that minted tokens outlive a long soak run; it costs nothing per request.
    issuers: [{ issuer: ISSUER, jwks_file: fx.jwksPath, algorithms: [fx.alg], typ: 'jit+jwt', max_ttl: '24h', ...(v.statusList && fx.statusList ? { status_list: { allowed_uris: [fx.statusList.prefix] } } : {}) }],
    cache: { max_entries: v.cacheEntries },
    ...(v.revocationFile === undefined ? {} : { revocation: { file: v.revocationFile, poll_interval: '2s' } }),
    ...(v.anomaly === true ? { revocation: { journal: join(fx.dir, `${name}.journal`) }, anomaly: { deny_threshold: 5, window: '1m', revoke: 'txn' } } : {}),
    admin: { listen: { host: '127.0.0.1', port: ports.admin } },
    ext_authz: {
      http: { listen: { host: '127.0.0.1', port: ports.extAuthzHttp }, path_prefix: '' },
      grpc: { listen: { host: '127.0.0.1', port: ports.extAuthzGrpc } },
    },
    log: {
      level: 'info',
      audit: v.audit,
      destination: v.logDestination ?? join(fx.dir, `${name}.log`),
      ...(v.auditChain === true ? { audit_chain: true, audit_checkpoint_key: fx.privateKeyPath } : {}),
    },
    workers,
    ...(v.tracingSampleRatio === undefined
      ? {}
      : { tracing: { otlp_endpoint: `http://127.0.0.1:${upstreamPort}/v1/traces`, sample_ratio: v.tracingSampleRatio, export_interval: '1s' } }),
  };
  const file = join(fx.dir, `${name}.yaml`);
  await writeFile(file, JSON.stringify(config, null, 2));
  return file;
}
