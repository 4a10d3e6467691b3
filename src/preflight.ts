/**
 * What would stop a gate at start, checked before it changes anything outside itself: the local files
 * it reads or appends to, and its listeners' placement (ext_authz paths, two listeners on one port).
 * `check-config` reports them; `serve` refuses on them before its first side effect: a
 * black-box probe saw a serve that failed on a missing TLS certificate first raise the fleet's DPoP
 * window in Redis for good and append a chain start and a checkpoint to the audit file, so a
 * crash-looping unit grew the log and changed shared state with every attempt. The key sets and the
 * revocation file are loaded as the gate loads them (a file that does not parse is caught too). Reads files only: no
 * socket, no URL, nothing written.
 */
import { access, constants, stat } from 'node:fs/promises';
import { loadAdminToken } from './admin/admin-token.ts';
import { appendableFileProblem } from './config/path-checks.ts';
import type { Config } from './config/schema.ts';
import { readRedisCaFile, readRedisPassword } from './fleet/redis-files.ts';
import { FileIssuerKeys } from './keys/issuer-keys.ts';
import { FileRevocationSource } from './revocation/file-source.ts';
import { loadCheckpointSigner } from './observability/audit-checkpoint.ts';
import { extAuthzProblems } from './transports/ext-authz/config-check.ts';
import { listenAddresses } from './config/listen-addresses.ts';
import { tlsProblems } from './transports/tls/check-tls.ts';

/** `key: problem` lines, one per local file or listener setting that would stop the gate; empty when all are usable. */
export async function startupProblems(config: Config): Promise<string[]> {
  const problems: string[] = [];
  for (const [n, issuer] of config.issuers.entries()) {
    if (issuer.jwks_file === undefined) continue;
    try {
      await new FileIssuerKeys(issuer).start();
    } catch (err) {
      problems.push(`issuers[${n}].jwks_file: ${keyFileProblem(issuer.jwks_file, err as Error)}`);
    }
  }
  if (config.revocation.file !== undefined) problems.push(...(await revocationFileProblems(config.revocation.file)));
  // The journal is appended to: its directory must exist.
  if (config.revocation.journal !== undefined) {
    const journal = appendableFileProblem('revocation.journal', config.revocation.journal, false);
    if (journal !== undefined) problems.push(journal);
  }
  try {
    loadAdminToken(config.admin.token_file);
  } catch (err) {
    problems.push((err as Error).message);
  }
  // The same loader serve uses (audit-chain-start.ts), so a missing or non-Ed25519 key fails here too.
  if (config.log.audit_checkpoint_key !== undefined) {
    try {
      await loadCheckpointSigner(config.log.audit_checkpoint_key);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  // listen.tls, admin.tls, upstream.tls: files readable, certificates loadable with their keys (SPEC §11).
  problems.push(...tlsProblems(config));
  problems.push(...redisFileProblems(config.redis));
  // ext_authz: forward-auth's listener and path, path_prefix, trusted_proxies (what startExtAuthz refuses), and two of
  // the gate's own listeners on one port: serve met both only after its side effects (a re-probe).
  problems.push(...extAuthzProblems(config));
  problems.push(...portClashes(config));
  return problems;
}

/**
 * Two of the gate's own listeners on one port (a probe: check-config said OK and serve failed with
 * "address in use"). Port 0 is a fresh port each; different hosts clash only when one is a wildcard.
 */
function portClashes(config: Config): string[] {
  const listeners = listenAddresses(config);
  const wildcard = (h: string): boolean => h === '0.0.0.0' || h === '::' || h === '';
  const out: string[] = [];
  for (let i = 0; i < listeners.length; i++) {
    const a = listeners[i]!;
    if (a.port === 0) continue;
    for (let j = 0; j < i; j++) {
      const b = listeners[j]!;
      if (b.port !== a.port) continue;
      if (a.host === b.host || wildcard(a.host) || wildcard(b.host)) out.push(`${a.key}.port: ${a.port} is also ${b.key}.port; each listener needs its own port`);
    }
  }
  return out;
}

/** Readable, a regular file, and a list the gate would load (a re-probe: one that did not parse passed, and serve failed after its side effects). */
async function revocationFileProblems(file: string): Promise<string[]> {
  try {
    await access(file, constants.R_OK);
    if (!(await stat(file)).isFile()) return [`revocation.file: ${file} is not a regular file`];
  } catch (err) {
    return [`revocation.file: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`];
  }
  const source = new FileRevocationSource(file, 60_000);
  try {
    await source.start();
    return [];
  } catch (err) {
    // "revocation.file F: why": the key and the file named as the other lines name them.
    return [(err as Error).message.replace(/^revocation\.file /, 'revocation.file: ')];
  } finally {
    source.stop();
  }
}

/** Redis's password and CA files, read by the code the connection reads them with (fleet/redis-files.ts). */
function redisFileProblems(redis: Config['redis']): string[] {
  if (redis === undefined) return [];
  const out: string[] = [];
  const check = (read: () => unknown): void => {
    try {
      read();
    } catch (err) {
      out.push((err as Error).message);
    }
  };
  const { password_file: passwordFile, ca_file: caFile } = redis;
  if (passwordFile !== undefined) check(() => readRedisPassword(passwordFile));
  if (caFile !== undefined) check(() => readRedisCaFile(caFile));
  return out;
}

/** FileIssuerKeys says `issuer X: jwks_file F: why`; the key path already names both. */
function keyFileProblem(file: string, err: Error): string {
  const code = (err.cause as NodeJS.ErrnoException | undefined)?.code;
  if (code !== undefined) return `cannot read ${file}: ${code}`;
  const at = err.message.indexOf(`${file}: `);
  return `${file}: ${at === -1 ? err.message : err.message.slice(at + file.length + 2)}`;
}
