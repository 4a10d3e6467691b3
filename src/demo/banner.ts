/**
 * What `jitgate demo` prints on stdout once everything runs (src/cli/demo.ts): where things are, the
 * ready-to-paste curl lines for the plain gate and the mTLS gate, and how to mint and revoke more.
 */
import { isAbsolute, relative } from 'node:path';
import type { DemoBackend } from './backend.ts';
import { DEMO_AUDIENCE, DEMO_ISSUER, MTLS_CONFIG_FILE } from './demo-config.ts';
import { TLS_DIR, WORKLOAD_A, WORKLOAD_B, type DemoPki } from './mtls.ts';
import { DEMO_TTL_SECONDS, renderRequests, shellWord, type DemoRequest } from './scenarios.ts';
import type { DemoWorkspace } from './workspace.ts';

/** The mTLS gate as the banner shows it, or why it is not running. */
export type MtlsShown = { readonly url: string; readonly pki: DemoPki; readonly requests: readonly DemoRequest[] } | { readonly skipped: string };

export interface BannerParts {
  readonly ws: DemoWorkspace;
  /** `stdout`, `stderr` or the log file's path. */
  readonly log: string;
  readonly backend: DemoBackend;
  readonly gateUrl: string;
  readonly adminUrl: string;
  readonly requests: readonly DemoRequest[];
  readonly mtls: MtlsShown;
}

export function demoBanner(b: BannerParts): string {
  return head(b.ws, b.log, b.backend, b.gateUrl, b.adminUrl, b.mtls) + renderRequests(b.gateUrl, b.requests) + mtlsBlock(b.mtls) + more(b.ws, b.adminUrl, b.gateUrl, b.mtls);
}

function head(ws: DemoWorkspace, logTo: string, backend: DemoBackend, gateUrl: string, adminUrl: string, mtls: MtlsShown): string {
  const dir = display(ws.dir);
  const log = logTo === 'stdout' || logTo === 'stderr' ? logTo : `tail -f ${display(logTo)}`;
  const mtlsLine =
    'url' in mtls
      ? `${mtls.url}  →  the same backend; TLS with client certificates (${TLS_DIR}/ca.crt), SPIFFE subject on`
      : `not running — the mTLS example was skipped: ${mtls.skipped}`;
  const mtlsFiles = 'url' in mtls ? `, ${MTLS_CONFIG_FILE}, ${TLS_DIR}/` : '';
  return `jitgate demo: the gate is running with dev keys (${ws.freshKeys ? 'new' : 'reused'}, kid ${ws.kid}).

  gate (proxy)   ${gateUrl}  →  demo backend ${backend.url} (echoes what it receives under /orders/...)
  gate (mTLS)    ${mtlsLine}
  admin          ${adminUrl}  (/healthz /readyz /metrics, POST /revocations)
  files          ${dir}  (private.jwk.json, jwks.json, jitgate.yaml, admin-token, revoked.jsonl${mtlsFiles})
  logs & audit   ${log}

Paste these; the tokens grant GET on /orders/42 and /orders/42/** for ${DEMO_AUDIENCE}, valid ${DEMO_TTL_SECONDS / 60} minutes
(run the demo again for fresh ones):

`;
}

/** The workload-identity block after the plain curl lines: its requests, or why there are none. */
function mtlsBlock(mtls: MtlsShown): string {
  if (!('url' in mtls)) return `\nWorkload identity (mTLS): skipped — ${mtls.skipped}.\n`;
  const dir = display(mtls.pki.dir);
  return `
Workload identity over mTLS (docs/workload-identity.md): workload A is ${WORKLOAD_A} (${shellWord(dir)}/workload-a.crt),
workload B is ${WORKLOAD_B} (workload-b.crt), both from the demo CA; the gate trusts clients signed by it.

${renderRequests(mtls.url, mtls.requests, display)}`;
}

function more(ws: DemoWorkspace, adminUrl: string, gateUrl: string, mtls: MtlsShown): string {
  const key = display(ws.privatePath);
  const adminToken = display(ws.adminTokenPath);
  let bind = '';
  if ('url' in mtls) {
    const b = mtls.pki.workloadB;
    bind = `  Bind your own token to workload B's certificate (RFC 8705) and use it over mTLS:
    TOKEN=$(npm run -s jitgate -- mint --key ${key} --iss ${DEMO_ISSUER} --aud ${DEMO_AUDIENCE} \\
      --sub ${WORKLOAD_B} --action GET --path '/orders/7' --cnf-cert ${shellWord(display(b.cert))})
    curl -i --cacert ${shellWord(display(mtls.pki.ca.cert))} --cert ${shellWord(display(b.cert))} --key ${shellWord(display(b.key))} \\
      -H "Authorization: Bearer $TOKEN" ${mtls.url}/orders/7
`;
  }
  return `
More:
  Mint your own token (any methods and paths; max lifetime 15m):
    TOKEN=$(npm run -s jitgate -- mint --key ${key} --iss ${DEMO_ISSUER} --aud ${DEMO_AUDIENCE} \\
      --sub spiffe://demo/you --action GET --action PATCH --path '/orders/7/**' --ttl 5m)
    curl -i -X PATCH -H "Authorization: Bearer $TOKEN" ${gateUrl}/orders/7/status
${bind}  Revoke through the admin API by jti, by sub (+ "before") or by txn; this one revokes task demo-4711,
  so the plain gate's two allowed requests above turn into 401 "revoked":
    curl -i -X POST -H "Authorization: Bearer $(cat ${adminToken})" -H 'Content-Type: application/json' \\
      -d '{"txn":"demo-4711"}' ${adminUrl}/revocations
  Metrics and readiness:
    curl -s ${adminUrl}/metrics | grep jitgate_decisions_total
    curl -i ${adminUrl}/readyz

jitgate demo is running; press Ctrl-C to stop.
`;
}

/** A path relative to the working directory when it lies inside it (what a user pastes), else absolute. */
export function display(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}
