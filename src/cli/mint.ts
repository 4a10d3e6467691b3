/**
 * `jitgate mint`: sign a grant token (SPEC §1) from command-line flags, through src/issuing/mint-token.ts.
 *
 * @module
 */
import { parseDuration } from '../config/duration.ts';
import { nonEmptyHeaderSafe } from '../core/claims.ts';
import { compilePattern } from '../core/path-pattern.ts';
import { DEFAULT_MAX_TOKEN_BYTES, MAX_TOKEN_BYTES_CEILING } from '../core/token-size.ts';
import { DEFAULT_GRANT_TYPE, DEFAULT_TTL_SECONDS, DEFAULT_TYP, mintToken, type MintOptions } from '../issuing/mint-token.ts';
import { commandUsageError, parseCommand } from './args.ts';
import { listUriProblem } from './status-list.ts';

const USAGE = `Usage: jitgate mint --key FILE --iss URL --aud AUD --sub ID [options]

Sign a grant token and print it (only the token) on stdout.

  --key FILE            private JWK written by "jitgate keys" (required)
  --iss URL             issuer (required)
  --aud AUD             audience; repeat for an array claim (required)
  --sub ID              subject / workload identity (required)
  --action M            granted method or action name (GET, PATCH, read; never CONNECT); repeatable
  --path P              granted path pattern (/orders/42/**); repeatable
  --location URI        granted location; repeatable (needs --action and --path)
  --ttl DURATION        exp − iat (default 5m)
  --iat TIME            issued-at: epoch seconds or an offset from now (-20m, +30s); default now
  --nbf TIME            not-before: epoch seconds or an offset from now
  --txn ID              transaction / task id
  --jti ID              token id (default: random UUID)
  --act SUB             actor: sets act: {"sub": SUB}
  --cnf-jkt THUMBPRINT  DPoP key binding: sets cnf: {"jkt": THUMBPRINT}
  --dpop-key FILE       DPoP key binding to this private JWK's public key (its RFC 7638
                        thumbprint becomes cnf.jkt); prove with "jitgate dpop-proof --key FILE"
  --status-uri URL      status list the token points into (sets status.status_list; needs --status-idx)
  --status-idx N        the token's index in that list
  --cnf-cert FILE       certificate binding (RFC 8705) to this PEM client certificate: its
                        SHA-256 thumbprint becomes cnf["x5t#S256"]; present it over mTLS
  --kid ID              header kid (default: the key file's kid)
  --typ TYP             header typ (default ${DEFAULT_TYP}; "" leaves it out)
  --grant-type TYPE     authorization_details type (default ${DEFAULT_GRANT_TYPE})
  --claim KEY=JSON      add or override a raw claim (--claim 'exp=0'); "KEY=" removes it; repeatable
  -h, --help            show this help
`;

/** CLI entry: exit 0 with the token on stdout, 1 when signing failed (e.g. bad key file) or no gate would accept the token, 2 on a usage error. */
export async function run(argv: string[]): Promise<number> {
  const values = parseCommand(
    // parseArgs refuses `--iat -20m` as ambiguous; negative offsets are the point of these two flags.
    joinNegativeValues(argv, new Set(['--iat', '--nbf'])),
    {
      key: { type: 'string' },
      iss: { type: 'string' },
      aud: { type: 'string', multiple: true },
      sub: { type: 'string' },
      action: { type: 'string', multiple: true },
      path: { type: 'string', multiple: true },
      location: { type: 'string', multiple: true },
      ttl: { type: 'string', default: '5m' },
      iat: { type: 'string' },
      nbf: { type: 'string' },
      txn: { type: 'string' },
      jti: { type: 'string' },
      act: { type: 'string' },
      'cnf-jkt': { type: 'string' },
      'dpop-key': { type: 'string' },
      'status-uri': { type: 'string' },
      'status-idx': { type: 'string' },
      'cnf-cert': { type: 'string' },
      kid: { type: 'string' },
      typ: { type: 'string' },
      'grant-type': { type: 'string' },
      claim: { type: 'string', multiple: true },
    },
    USAGE,
    usageError,
  );
  if (typeof values === 'number') return values;

  let opts: MintOptions;
  try {
    for (const flag of ['key', 'iss', 'sub'] as const) {
      if (values[flag] === undefined || values[flag] === '') throw new UsageError(`missing required option --${flag}`);
    }
    const aud = values.aud ?? [];
    if (aud.length === 0) throw new UsageError('missing required option --aud');
    if ((values.action === undefined) !== (values.path === undefined)) {
      throw new UsageError('--action and --path must be given together (they form one authorization_details entry)');
    }
    if (values.location !== undefined && values.action === undefined) {
      throw new UsageError('--location needs --action and --path');
    }
    if (values['cnf-jkt'] !== undefined && values['dpop-key'] !== undefined) {
      throw new UsageError('--cnf-jkt and --dpop-key both bind the token; give one');
    }
    if ((values['status-uri'] === undefined) !== (values['status-idx'] === undefined)) {
      throw new UsageError('--status-uri and --status-idx must be given together (they form the status claim)');
    }
    // A claim every gate would refuse (status_uri_not_allowed, status_claim_invalid) is a usage error here.
    if (values['status-idx'] !== undefined && !(/^\d+$/.test(values['status-idx']) && Number.isSafeInteger(Number(values['status-idx'])))) {
      throw new UsageError(`--status-idx: expected a non-negative integer below 2^53, got "${values['status-idx']}"`);
    }
    const uriProblem = values['status-uri'] === undefined ? undefined : listUriProblem(values['status-uri'], '--status-uri');
    if (uriProblem !== undefined) throw new UsageError(uriProblem);
    const ttlMs = parseDuration(values.ttl);
    if (ttlMs === undefined || ttlMs % 1000 !== 0 || ttlMs <= 0) {
      throw new UsageError(`--ttl: expected whole seconds above 0 as a duration such as 30s, 5m or 1h, got "${values.ttl}"`);
    }
    refuseWhatNoGateAccepts(values);
    const now = Math.floor(Date.now() / 1000);
    opts = {
      key: values.key!,
      iss: values.iss!,
      aud: aud.length === 1 ? aud[0]! : aud,
      sub: values.sub!,
      actions: values.action,
      paths: values.path,
      locations: values.location,
      ttlSeconds: ttlMs / 1000,
      iat: values.iat === undefined ? now : parseTime('--iat', values.iat, now),
      nbf: values.nbf === undefined ? undefined : parseTime('--nbf', values.nbf, now),
      txn: values.txn,
      jti: values.jti,
      kid: values.kid,
      typ: values.typ === '' ? null : values.typ,
      grantType: values['grant-type'],
      act: values.act,
      cnfJkt: values['cnf-jkt'],
      dpopKey: values['dpop-key'],
      statusList: values['status-uri'] === undefined ? undefined : { uri: values['status-uri'], idx: Number(values['status-idx']) },
      cnfCert: values['cnf-cert'],
      extraClaims: parseClaims(values.claim ?? []),
    };
    if (!Number.isSafeInteger(opts.iat! + opts.ttlSeconds!)) throw new UsageError('--iat and --ttl: exp (iat + ttl) is past 2^53 epoch seconds');
    if (opts.nbf !== undefined && opts.nbf >= opts.iat! + opts.ttlSeconds!) throw new UsageError('--nbf: at or after exp (iat + ttl): the token would never be valid');
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message);
    throw err;
  }

  try {
    const token = await mintToken(opts);
    // The gate compares the token's length (ASCII: bytes) with headers.max_token_bytes.
    if (token.length > MAX_TOKEN_BYTES_CEILING) {
      process.stderr.write(`jitgate mint: the token is ${token.length} bytes, above ${MAX_TOKEN_BYTES_CEILING}, the most any gate's headers.max_token_bytes allows; every gate refuses it (token_too_large)\n`);
      return 1;
    }
    if (token.length > DEFAULT_MAX_TOKEN_BYTES) {
      process.stderr.write(`jitgate mint: warning: the token is ${token.length} bytes; a gate with the default headers.max_token_bytes (${DEFAULT_MAX_TOKEN_BYTES}) refuses it (token_too_large)\n`);
    }
    process.stdout.write(`${token}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`jitgate mint: ${(err as Error).message}\n`);
    return 1;
  }
}

class UsageError extends Error {}

/**
 * The plain flags make a token a gate can accept, as --status-uri already did: a value that makes every gate refuse
 * the whole token (an empty claim, a path pattern SPEC §1 calls malformed) is a usage error, not a token signed with
 * exit 0. A deliberately bad token is still made with --claim.
 */
function refuseWhatNoGateAccepts(values: { readonly [flag: string]: string | boolean | string[] | undefined }): void {
  for (const flag of ['jti', 'kid', 'txn', 'act', 'grant-type', 'aud', 'action', 'location']) {
    const v = values[flag];
    if (v === '' || (Array.isArray(v) && v.includes(''))) throw new UsageError(`--${flag}: must not be empty`);
  }
  // The gate's own rule for identifier claims (they are copied into upstream headers): invalid_claims otherwise.
  for (const flag of ['sub', 'jti', 'txn', 'act']) {
    const v = values[flag];
    if (typeof v === 'string' && !nonEmptyHeaderSafe(v)) {
      throw new UsageError(`--${flag}: expected 1–1024 visible ASCII characters or spaces, none at either end; every gate would refuse the token (invalid_claims)`);
    }
  }
  for (const path of (values.path as string[] | undefined) ?? []) {
    if (compilePattern(path) === null) {
      throw new UsageError(
        `--path: ${JSON.stringify(path)} is not a grant path pattern (SPEC §1: absolute, no empty, "." or ".." segment, no query, "*" and "**" only as whole segments and "**" only last); every gate would refuse the token (invalid_grant)`,
      );
    }
  }
  const jkt = values['cnf-jkt'];
  // 43 characters whose last one carries no stray bits: the encoding of a SHA-256, which no other string equals.
  if (typeof jkt === 'string' && !(/^[A-Za-z0-9_-]{43}$/.test(jkt) && Buffer.from(jkt, 'base64url').toString('base64url') === jkt)) {
    throw new UsageError(`--cnf-jkt: expected a JWK SHA-256 thumbprint (RFC 7638: 43 base64url characters), got ${JSON.stringify(jkt)}; or give --dpop-key`);
  }
}

/** Epoch seconds (`1764000000`) or a signed offset from `now` (`-20m`, `+30s`). */
function parseTime(flag: string, text: string, now: number): number {
  if (/^\d+$/.test(text)) {
    if (!Number.isSafeInteger(Number(text))) throw new UsageError(`${flag}: ${text} is outside 0..2^53 epoch seconds`);
    return Number(text);
  }
  const sign = text[0] === '-' ? -1 : text[0] === '+' ? 1 : 0;
  const ms = sign === 0 ? undefined : parseDuration(text.slice(1));
  if (ms === undefined) {
    throw new UsageError(`${flag}: expected epoch seconds (1764000000) or a signed offset (-20m, +30s), got "${text}"`);
  }
  const at = now + Math.trunc((sign * ms) / 1000);
  // Past 2^53 a number is rounded, and exp = iat + ttl with it: the token's lifetime would be lost.
  if (!Number.isSafeInteger(at) || at < 0) throw new UsageError(`${flag}: ${text} is outside 0..2^53 epoch seconds`);
  return at;
}

/** `--claim key=json`; `key=` (no value) removes the claim. */
function parseClaims(items: readonly string[]): Record<string, unknown> {
  const claims: Record<string, unknown> = Object.create(null);
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`--claim: expected KEY=JSON, got "${item}"`);
    const name = item.slice(0, eq);
    const text = item.slice(eq + 1);
    if (text === '') {
      claims[name] = undefined;
      continue;
    }
    try {
      claims[name] = JSON.parse(text);
    } catch {
      throw new UsageError(`--claim ${name}: value is not JSON (quote strings: ${name}='"text"'), got ${text}`);
    }
  }
  return claims;
}

/** Rewrites `--iat -20m` as `--iat=-20m` so parseArgs does not take the value for a flag. */
function joinNegativeValues(argv: readonly string[], flags: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    if (flags.has(arg) && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

function usageError(message: string): number {
  return commandUsageError('mint', message);
}
