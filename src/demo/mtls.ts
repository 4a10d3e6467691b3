/**
 * The workload-identity part of `jitgate demo` (SPEC §11): a throwaway PKI made at every start in the demo folder's
 * `tls/` (a CA, the gate's server certificate for 127.0.0.1 and localhost, and two client workloads whose
 * certificates carry a `spiffe://` URI SAN), the tokens the example needs, and the requests it prints.
 *
 * The PKI is made with the `openssl` CLI (src/issuing/dev-pki.ts). Without it the demo runs the plain gate alone
 * and says why; a demo that cannot show mTLS still shows everything else.
 *
 * @module
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { JWK } from 'jose';
import { makeCa, makeLeaf, opensslProblem, type CertFiles } from '../issuing/dev-pki.ts';
import { mintToken } from '../issuing/mint-token.ts';
import { DEMO_AUDIENCE, DEMO_ISSUER } from './demo-config.ts';
import { DEMO_GRANT, DEMO_SUBJECT, DEMO_TTL_SECONDS, type DemoRequest } from './scenarios.ts';

/** The demo folder's subfolder for the PKI; made afresh on every start. */
export const TLS_DIR = 'tls';
/** Workload A is the demo's usual subject, so its certificate names the `sub` of the plain demo's tokens too. */
export const WORKLOAD_A = DEMO_SUBJECT;
export const WORKLOAD_B = 'spiffe://demo/billing';
/** The txn of the mTLS tokens: not the plain tokens' task, whose revocation the demo's hint shows on the plain gate. */
export const MTLS_TXN = 'demo-mtls-1';

export interface DemoPki {
  readonly dir: string;
  /** Signs the gate's certificate and both workloads': clients trust it for the gate, the gate for the clients. */
  readonly ca: CertFiles;
  readonly server: CertFiles;
  readonly workloadA: CertFiles;
  readonly workloadB: CertFiles;
}

/**
 * Makes `<demoDir>/tls/` afresh (mode 0700; what an earlier run left there is removed first). Returns the PKI, or
 * why it could not be made: `openssl` missing or failing.
 */
export async function makeDemoPki(demoDir: string): Promise<DemoPki | { readonly skipped: string }> {
  const problem = await opensslProblem();
  if (problem !== undefined) return { skipped: problem };
  const dir = join(demoDir, TLS_DIR);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    const ca = await makeCa(dir, 'ca', 'jitgate demo workload CA');
    const [server, workloadA, workloadB] = await Promise.all([
      makeLeaf(dir, 'server', 'ca', 'jitgate demo gate', 'DNS:localhost,IP:127.0.0.1', 'serverAuth'),
      makeLeaf(dir, 'workload-a', 'ca', 'ci-deployer', `URI:${WORKLOAD_A}`, 'clientAuth'),
      makeLeaf(dir, 'workload-b', 'ca', 'billing', `URI:${WORKLOAD_B}`, 'clientAuth'),
    ]);
    return { dir, ca, server, workloadA, workloadB };
  } catch (err) {
    const e = err as Error & { stderr?: string };
    const detail = (e.stderr ?? '').trim().split('\n')[0] || e.message;
    await rm(dir, { recursive: true, force: true });
    return { skipped: `openssl could not make the certificates: ${detail}` };
  }
}

export interface MtlsTokens {
  /** The demo grant for workload A, bound to its certificate (`cnf["x5t#S256"]`, as `jitgate mint --cnf-cert`). */
  readonly bound: string;
  /** The same grant for workload A without a binding: only the SPIFFE subject rule ties it to a certificate. */
  readonly unbound: string;
}

export async function mintMtlsTokens(key: JWK, pki: DemoPki, nowSeconds = Math.floor(Date.now() / 1000)): Promise<MtlsTokens> {
  const base = {
    key,
    iss: DEMO_ISSUER,
    aud: DEMO_AUDIENCE,
    sub: WORKLOAD_A,
    actions: [...DEMO_GRANT.actions],
    paths: [...DEMO_GRANT.paths],
    iat: nowSeconds,
    ttlSeconds: DEMO_TTL_SECONDS,
    txn: MTLS_TXN,
  };
  const [bound, unbound] = await Promise.all([mintToken({ ...base, cnfCert: pki.workloadA.cert }), mintToken(base)]);
  return { bound, unbound };
}

/** The printed mTLS requests, in order: the binding holds, then three ways it does not. */
export function mtlsRequests(tokens: MtlsTokens, pki: DemoPki): DemoRequest[] {
  const as = (w: CertFiles) => ({ caFile: pki.ca.cert, certFile: w.cert, keyFile: w.key });
  return [
    {
      expect: 200,
      why: `allowed over mTLS: the token is bound to workload A's certificate (cnf.x5t#S256) and its sub is A's SPIFFE ID`,
      method: 'GET',
      path: '/orders/42',
      token: tokens.bound,
      tls: as(pki.workloadA),
    },
    {
      expect: 401,
      why: `another workload's certificate: the same token from workload B (reason "cert_binding_mismatch")`,
      method: 'GET',
      path: '/orders/42',
      token: tokens.bound,
      tls: as(pki.workloadB),
    },
    {
      expect: 401,
      why: `no client certificate: the same token without one (reason "cert_required")`,
      method: 'GET',
      path: '/orders/42',
      token: tokens.bound,
      tls: { caFile: pki.ca.cert },
    },
    {
      expect: 401,
      why: `SPIFFE subject: an unbound token for ${WORKLOAD_A} from workload B (reason "spiffe_id_mismatch")`,
      method: 'GET',
      path: '/orders/42',
      token: tokens.unbound,
      tls: as(pki.workloadB),
    },
  ];
}
