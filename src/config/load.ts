/**
 * YAML file → validated Config. Errors name the key path the way an operator writes it:
 * `issuers[0].max_ttl: expected a duration like "15m", got "soon"`.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { checkSection12 } from '../anomaly/config-check.ts';
import { ConfigError } from '../errors.ts';
import { configSchema, type Config } from './schema.ts';

export async function loadConfigFile(file: string): Promise<Config> {
  return parseConfigText(await readConfigText(file), file);
}

/** The config file's text; ConfigError when it cannot be read. */
export async function readConfigText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read the file: ${(err as NodeJS.ErrnoException).code ?? String(err)}`], { cause: err });
  }
}

/** Parses and validates config text; relative file paths resolve against the config file's folder. */
export function parseConfigText(text: string, file: string): Config {
  let raw: unknown;
  try {
    raw = parseYaml(text, { uniqueKeys: true, prettyErrors: true });
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` (line ${err.linePos[0].line})` : '';
    throw new ConfigError(file, [`not valid YAML${where}: ${(err as Error).message.split('\n')[0]}`], { cause: err });
  }
  return validateConfig(raw ?? {}, file);
}

export function validateConfig(raw: unknown, file: string): Config {
  const result = configSchema.safeParse(raw, { reportInput: true });
  if (!result.success) throw new ConfigError(file, result.error.issues.map(formatIssue));
  const config = resolvePaths(result.data, dirname(resolve(file)));
  checkSection12(config, file);
  return config;
}

export function formatIssue(issue: z.core.$ZodIssue): string {
  let path = '';
  for (const part of issue.path) {
    path += typeof part === 'number' ? `[${part}]` : path === '' ? String(part) : `.${String(part)}`;
  }
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => (path === '' ? k : `${path}.${k}`));
    return `${keys.join(', ')}: unknown key${keys.length > 1 ? 's' : ''}`;
  }
  let message = issue.message;
  if (issue.code === 'invalid_type' && issue.input === undefined) message = 'required';
  return `${path === '' ? '(top level)' : path}: ${message}`;
}

function resolvePaths(config: Config, base: string): Config {
  const abs = (p: string | undefined) => (p === undefined || isAbsolute(p) ? p : resolve(base, p));
  return {
    ...config,
    issuers: config.issuers.map((i) => ({ ...i, jwks_file: abs(i.jwks_file) })),
    revocation: { ...config.revocation, file: abs(config.revocation.file), journal: abs(config.revocation.journal) },
    admin: { ...config.admin, token_file: abs(config.admin.token_file), ...tlsPaths(config.admin.tls, abs) },
    listen: { ...config.listen, ...tlsPaths(config.listen.tls, abs) },
    upstream: { ...config.upstream, ...tlsPaths(config.upstream.tls, abs) },
    ...(config.redis === undefined ? {} : { redis: { ...config.redis, password_file: abs(config.redis.password_file), ca_file: abs(config.redis.ca_file) } }),
    log: { ...config.log, destination: ['stdout', 'stderr'].includes(config.log.destination) ? config.log.destination : abs(config.log.destination)!, audit_checkpoint_key: abs(config.log.audit_checkpoint_key) },
  };
}

/** `{ tls }` with its file paths resolved like every other path; `{}` without a tls block (no key added). */
function tlsPaths<T extends { cert_file?: string; key_file?: string; client_ca_file?: string; ca_file?: string }>(tls: T | undefined, abs: (p: string | undefined) => string | undefined): { tls?: T } {
  if (tls === undefined) return {};
  const out: T = { ...tls };
  for (const k of ['cert_file', 'key_file', 'client_ca_file', 'ca_file'] as const) if (tls[k] !== undefined) out[k] = abs(tls[k]) as T[typeof k];
  return { tls: out };
}
