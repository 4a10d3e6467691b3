/**
 * `jitgate demo` (and `npm start`): with no config at all, run the real gate in front of a demo "legacy" backend
 * with dev keys, and print ready-to-paste `curl` commands with freshly minted tokens — allowed (200), outside the
 * grant (403), expired (401) and revoked (401) — plus how to mint more (SPEC §8 developer helpers).
 *
 * Workload identity (SPEC §11): with the `openssl` CLI at hand, a second gate listens with TLS in front of the same
 * backend, verifying client certificates from a throwaway PKI made in the demo folder (src/demo/mtls.ts), and the
 * demo prints mTLS curl lines: a token bound to workload A's certificate works with A's certificate and not with
 * B's or none, and the SPIFFE subject rule refuses B with A's `sub`. Without openssl the banner says the mTLS
 * example was skipped and why, and the rest runs as before. Both gates share one logger; each has its own metrics
 * registry and caches (runtime.ts keeps no process-wide state), and the demo alone installs signal handlers.
 *
 * stdout carries only the banner and the curl block; the gate's logs and audit lines go to a file in the demo
 * folder (or `--log stderr`), so the block stays readable. Runs until SIGINT/SIGTERM, then closes the gates and
 * the backend and exits 0.
 *
 * @module
 */
import { appendFile } from 'node:fs/promises';
import { relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { listenUrl, onShutdownSignals, startJitgate, startJitgateWorker, type Running, type WorkerRunning } from '../runtime.ts';
import { createLogger } from '../observability/logger.ts';
import { writeDemoConfig, writeDemoMtlsConfig } from '../demo/demo-config.ts';
import { startDemoBackend, type DemoBackend } from '../demo/backend.ts';
import { demoBanner, display } from '../demo/banner.ts';
import { makeDemoPki, mintMtlsTokens, mtlsRequests, type DemoPki } from '../demo/mtls.ts';
import { demoRequests, mintDemoTokens, statusOf, type DemoRequest, type DemoTokens } from '../demo/scenarios.ts';
import { LOG_FILE, prepareWorkspace, type DemoWorkspace } from '../demo/workspace.ts';
import { commandUsageError, parseCommand } from './args.ts';
import { applyV8Flags } from '../v8-flags.ts';

/**
 * `.jitgate-demo/` at the repo root (the same from src/cli/ and dist/cli/; git-ignored). An installed package
 * (under node_modules, perhaps a read-only global prefix) uses `.jitgate-demo/` in the working directory instead.
 */
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEFAULT_DEMO_DIR = PACKAGE_ROOT.split(/[\\/]/).includes('node_modules') ? resolve('.jitgate-demo') : resolve(PACKAGE_ROOT, '.jitgate-demo');
/** How long to wait for a revocation to be enforced before printing its curl line anyway. */
const REVOCATION_WAIT_MS = 5_000;

const USAGE = `Usage: jitgate demo [options]

Run the gate in front of a demo backend with dev keys and print curl commands to try.

  --port N          gate (proxy) port on 127.0.0.1 (default 8080; 0 picks a free port)
  --admin-port N    admin port on 127.0.0.1: /healthz /readyz /metrics /revocations (default 9901; 0 = free)
  --backend-port N  demo backend port on 127.0.0.1 (default 0 = free)
  --tls-port N      mTLS gate port on 127.0.0.1, for the workload-identity example (default 8443; 0 = free)
  --no-mtls         leave the mTLS gate and its throwaway PKI out
  --dir DIR         demo folder for keys, config, admin token and log (default .jitgate-demo/ at the repo root,
                    or in the working directory for an installed package)
  --log DEST        gate logs and audit lines: stderr, stdout or a file (default DIR/${LOG_FILE})
  -h, --help        show this help
`;

interface DemoArgs {
  port: number;
  adminPort: number;
  backendPort: number;
  /** undefined: --no-mtls. */
  tlsPort: number | undefined;
  dir: string;
  log: string;
}

/** CLI entry: 0 after a clean stop, 1 when the demo could not start, 2 on a usage error. */
export async function run(argv: string[]): Promise<number> {
  const values = parseCommand(argv, OPTIONS, USAGE, usageError);
  if (typeof values === 'number') return values;
  let args: DemoArgs;
  try {
    args = demoArgs(values);
  } catch (err) {
    return usageError((err as Error).message);
  }
  applyV8Flags();

  let backend: DemoBackend | undefined;
  let running: Running | undefined;
  let mtls: Mtls | Skipped | undefined;
  let stopped: Promise<number>;
  try {
    const ws = await prepareWorkspace(args.dir);
    backend = await startDemoBackend({ port: args.backendPort });
    const logDestination = args.log === 'stdout' || args.log === 'stderr' ? args.log : resolve(args.log);
    const config = await writeDemoConfig(ws, { port: args.port, adminPort: args.adminPort, upstreamUrl: backend.url, logDestination });
    // One logger (one file handle) for both gates; the mTLS gate's lines carry gate: "mtls".
    const logger = createLogger(config.log);
    running = await startJitgate(config, ws.configPath, { logger });
    mtls = args.tlsPort === undefined ? { skipped: 'turned off with --no-mtls' } : await startMtls(ws, args.tlsPort, backend.url, logDestination, logger);

    const gateUrl = listenUrl(running.listeners.proxy);
    const adminUrl = listenUrl(running.listeners.admin);
    const tokens = await mintDemoTokens(ws.privateJwk);
    const revokedVia = await revoke(tokens, ws, adminUrl);
    const requests = demoRequests(tokens, revokedVia);
    const revokedRequest = requests.find((r) => r.token === tokens.revoked)!;
    if (!(await revocationEnforced(gateUrl, revokedRequest))) {
      process.stderr.write(`jitgate demo: warning: the revoked token is not refused yet after ${REVOCATION_WAIT_MS} ms\n`);
    }
    // Handlers first: whoever reads the banner may signal at once, and a SIGTERM before them would kill, not drain.
    const gates = 'gate' in mtls ? [running, mtls.gate] : [running];
    stopped = stopOnSignals(gates, backend);
    process.stdout.write(demoBanner({ ws, log: args.log, backend, gateUrl, adminUrl, requests, mtls }));
  } catch (err) {
    process.stderr.write(`jitgate demo: ${describeStartError(err, args)}\n`);
    await running?.close(0).catch(() => undefined);
    if (mtls !== undefined && 'gate' in mtls) await mtls.gate.close(0).catch(() => undefined);
    await backend?.close();
    return 1;
  }

  return stopped;
}

interface Mtls {
  readonly gate: WorkerRunning;
  readonly url: string;
  readonly pki: DemoPki;
  readonly configPath: string;
  readonly requests: readonly DemoRequest[];
}

interface Skipped {
  readonly skipped: string;
}

/**
 * The workload-identity gate: PKI, config, gate (no admin listener of its own: the plain gate's serves the demo),
 * tokens. A PKI that cannot be made is a skip with its reason; a gate that cannot start (port taken) is an error.
 */
async function startMtls(ws: DemoWorkspace, port: number, upstreamUrl: string, logDestination: string, logger: Logger): Promise<Mtls | Skipped> {
  const pki = await makeDemoPki(ws.dir);
  if ('skipped' in pki) return pki;
  const rel = (path: string) => `./${relative(ws.dir, path)}`;
  const { config, path } = await writeDemoMtlsConfig(ws, {
    port,
    upstreamUrl,
    logDestination,
    tls: { caFile: rel(pki.ca.cert), certFile: rel(pki.server.cert), keyFile: rel(pki.server.key) },
  });
  // No Node process metrics twice in one process: nothing scrapes this gate's registry.
  const gate = await startJitgateWorker(config, path, { logger: logger.child({ gate: 'mtls' }), defaultMetrics: false });
  try {
    const requests = mtlsRequests(await mintMtlsTokens(ws.privateJwk, pki), pki);
    return { gate, url: listenUrl(gate.listeners.proxy, 'https'), pki, configPath: path, requests };
  } catch (err) {
    await gate.close(0);
    throw err;
  }
}

/** Resolves with exit code 0 once the first SIGINT/SIGTERM has closed the gates and the backend. */
function stopOnSignals(gates: readonly WorkerRunning[], backend: DemoBackend): Promise<number> {
  return new Promise<number>((resolveCode) => {
    onShutdownSignals(
      (signal) => {
        process.stderr.write(`jitgate demo: ${signal}, shutting down\n`);
        void Promise.all(gates.map((g) => g.close(2_000)))
          .then(() => backend.close())
          .then(() => resolveCode(0));
      },
      // A second signal while closing: the user wants out now.
      (_signal, exitCode) => process.exit(exitCode),
    );
  });
}

const OPTIONS = {
  port: { type: 'string', default: '8080' },
  'admin-port': { type: 'string', default: '9901' },
  'backend-port': { type: 'string', default: '0' },
  'tls-port': { type: 'string', default: '8443' },
  'no-mtls': { type: 'boolean', default: false },
  dir: { type: 'string' },
  log: { type: 'string' },
} as const;

function usageError(message: string): number {
  return commandUsageError('demo', message);
}

function demoArgs(values: { port: string; 'admin-port': string; 'backend-port': string; 'tls-port': string; 'no-mtls': boolean; dir?: string; log?: string }): DemoArgs {
  if (values.dir === '') throw new Error('--dir: must not be empty');
  if (values.log === '') throw new Error('--log: must not be empty');
  const dir = resolve(values.dir ?? DEFAULT_DEMO_DIR);
  return {
    port: portOf('--port', values.port),
    adminPort: portOf('--admin-port', values['admin-port']),
    backendPort: portOf('--backend-port', values['backend-port']),
    tlsPort: values['no-mtls'] ? undefined : portOf('--tls-port', values['tls-port']),
    dir,
    log: values.log ?? resolve(dir, LOG_FILE),
  };
}

function portOf(flag: string, text: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) throw new Error(`${flag}: expected a port number 0–65535, got "${text}"`);
  return Number(text);
}

/**
 * Revokes the demo token's jti through the real admin API (SPEC §5: `POST /revocations`, admin bearer token,
 * journaled). When the API refuses or is missing in this build, appends the entry to the revocation file the
 * demo config points at instead. Returns how, for the printed comment.
 */
async function revoke(tokens: DemoTokens, ws: DemoWorkspace, adminUrl: string): Promise<string> {
  const entry = { jti: tokens.revokedJti, exp: tokens.revokedExp };
  try {
    const res = await fetch(`${adminUrl}/revocations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ws.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(entry),
    });
    await res.body?.cancel();
    if (res.ok) return 'through the admin API (POST /revocations)';
    process.stderr.write(`jitgate demo: the admin API answered ${res.status} to POST /revocations; using ${display(ws.revokedPath)}\n`);
  } catch (err) {
    process.stderr.write(`jitgate demo: POST /revocations failed (${(err as Error).message}); using ${display(ws.revokedPath)}\n`);
  }
  await appendFile(ws.revokedPath, `${JSON.stringify(entry)}\n`);
  return `in the revocation file ${display(ws.revokedPath)}`;
}

/** Polls until the gate refuses the revoked token (the file source applies on its next poll). */
async function revocationEnforced(gateUrl: string, revoked: DemoRequest): Promise<boolean> {
  const deadline = Date.now() + REVOCATION_WAIT_MS;
  for (;;) {
    if ((await statusOf(gateUrl, revoked)) === revoked.expect) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function describeStartError(err: unknown, args: DemoArgs): string {
  const message = err instanceof Error ? err.message : String(err);
  // Listener errors arrive as StartupError with the socket error as cause; file errors arrive bare, with a path.
  const cause = (err as { cause?: unknown }).cause ?? err;
  const { code, path } = cause as NodeJS.ErrnoException;
  if (code === 'EADDRINUSE') return `${message}; choose other ports with --port, --admin-port, --backend-port, --tls-port (0 picks a free one), or leave the mTLS gate out with --no-mtls`;
  if ((code === 'EACCES' || code === 'EROFS') && path !== undefined) return `${message}; pass --dir with a writable folder (now ${args.dir})`;
  return message;
}
