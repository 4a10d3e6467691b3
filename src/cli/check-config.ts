/**
 * `jitgate check-config -c FILE` (SPEC §8): everything `serve` checks before it opens a socket —
 * the schema, the compiled policy (path patterns, issuers), local key files, the admin token file,
 * the upstream origin and the worker settings — without binding a port or fetching a URL.
 * Exit 0 with a one-line summary, 1 with `key.path: problem` lines, 2 on a usage error.
 *
 * @module
 */
import pino from 'pino';
import { buildGate } from '../build-gate.ts';
import { workerCount } from '../cluster.ts';
import { loadConfigFile } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { ConfigError, JitgateError } from '../errors.ts';
import { Metrics } from '../observability/metrics.ts';
import { upstreamOrigin } from '../transports/proxy/forward.ts';
import { tlsWarnings } from '../transports/tls/check-tls.ts';
import { startupProblems } from '../preflight.ts';
import { parseCommand } from './args.ts';
import { logDestinationProblem } from '../config/path-checks.ts';

const USAGE = `Usage: jitgate check-config -c FILE

Validates a jitgate config file the way "jitgate serve" does, without starting anything:
schema, path patterns, issuers and their local key files, the admin token file, upstream.url.
Remote key sets and revocation URLs are not fetched.

Options:
  -c, --config FILE   the config file (default: $JITGATE_CONFIG)
  -h, --help          show this help
`;

/** `-c FILE` (or $JITGATE_CONFIG) from argv; a number is the exit code of a usage answer. */
export function configFileArg(argv: string[], command: string, usage: string): string | number {
  // serve and check-config print the whole usage after the problem, not a pointer to --help.
  const usageError = (message: string): number => {
    process.stderr.write(`jitgate ${command}: ${message}\n\n${usage}`);
    return 2;
  };
  const values = parseCommand(argv, { config: { type: 'string', short: 'c' } }, usage, usageError);
  if (typeof values === 'number') return values;
  const file = values.config ?? process.env.JITGATE_CONFIG;
  if (file === undefined || file === '') return usageError('missing -c FILE (or JITGATE_CONFIG)');
  return file;
}

/**
 * Operator errors (bad config, unusable files, busy ports) print as lines, never a stack trace.
 * Anything else is a bug and keeps its stack.
 */
export function reportStartupError(command: string, err: unknown): number {
  if (err instanceof ConfigError) process.stderr.write(`jitgate ${command}: ${err.message}\n`);
  else if (err instanceof JitgateError) process.stderr.write(`jitgate ${command}: ${err.message}\n`);
  else throw err;
  return 1;
}

export async function run(argv: string[]): Promise<number> {
  const file = configFileArg(argv, 'check-config', USAGE);
  if (typeof file === 'number') return file;
  try {
    const config = await loadConfigFile(file);
    const summary = await checkConfig(config, file);
    process.stdout.write(`config OK: ${summary}\n`);
    for (const w of tlsWarnings(config)) process.stderr.write(`jitgate check-config: warning: ${w}\n`);
    return 0;
  } catch (err) {
    return reportStartupError('check-config', err);
  }
}

/** Throws ConfigError (key-path lines) or StartupError (a file named by the config); returns a summary. */
export async function checkConfig(config: Config, file: string): Promise<string> {
  const problems: string[] = [];
  try {
    upstreamOrigin(config.upstream.url);
  } catch (err) {
    problems.push((err as Error).message);
  }
  try {
    // Compiles the policy: bad public-route patterns and duplicate issuers throw ConfigError here.
    await buildGate(config, file, { metrics: new Metrics({ defaultMetrics: false }), logger: pino({ level: 'silent' }) });
  } catch (err) {
    if (!(err instanceof JitgateError)) throw err;
    problems.push(...(err instanceof ConfigError ? err.problems : [err.message]));
  }
  // Key, TLS, token, journal and Redis files, ext_authz placement, port clashes: what serve also checks before its first side effect.
  problems.push(...(await startupProblems(config)));
  const destination = logDestinationProblem(config.log.destination);
  if (destination !== undefined) problems.push(destination);
  if (problems.length > 0) throw new ConfigError(file, problems);
  return summarize(config);
}

/** What POST /revocations will do: on only with a token, and accepting entries only with somewhere durable to put them. */
function revocationApi(config: Config): string {
  if (config.admin.token_file === undefined) return '';
  if (config.revocation.journal === undefined && !config.revocation.redis) return ' (revocation API on, but POST answers 503: set revocation.journal or revocation.redis to accept entries)';
  return ' (revocation API on)';
}

function summarize(config: Config): string {
  const local = config.issuers.filter((i) => i.jwks_file !== undefined).length;
  const rev: string[] = (['file', 'url', 'journal'] as const).filter((k) => config.revocation[k] !== undefined);
  if (config.revocation.redis) rev.push('redis');
  const ext = (['http', 'grpc', 'forward_auth'] as const).filter((k) => config.ext_authz[k] !== undefined);
  const parts = [
    `proxy ${config.listen.host}:${config.listen.port} → ${config.upstream.url}`,
    `${config.issuers.length} issuer${config.issuers.length === 1 ? '' : 's'} (${local} local key file${local === 1 ? '' : 's'}, ${config.issuers.length - local} jwks_uri)`,
    `${config.public.length} public route${config.public.length === 1 ? '' : 's'}`,
    `revocation: ${rev.length === 0 ? 'none' : rev.join(' + ')}`,
    `admin ${config.admin.listen.host}:${config.admin.listen.port}${revocationApi(config)}`,
  ];
  if (ext.length > 0) parts.push(`ext_authz: ${ext.join(', ')}`);
  parts.push(`workers ${workerCount(config.workers)}`);
  return parts.join('; ');
}


