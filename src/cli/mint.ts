/**
 * `jitgate mint`: sign a grant token (SPEC §1) from command-line flags. `mintToken` is the library form that
 * tests across the project use to make tokens, including deliberately bad ones: every claim can be overridden
 * or removed through `extraClaims`, and `iat` can lie in the past.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { importJWK, SignJWT, type JWK } from 'jose';
import { parseDuration } from '../config/duration.ts';
import { commandUsageError, parseCommand } from './args.ts';
import { certThumbprint } from './cert-thumbprint.ts';
import { dpopKeyThumbprint, readKeyFile } from './jwk-file.ts';

export const DEFAULT_TYP = 'jit+jwt';
export const DEFAULT_GRANT_TYPE = 'jit_grant';
export const DEFAULT_TTL_SECONDS = 300;

export interface MintOptions {
  /** Private JWK (as written by `jitgate keys`), or the path of a file holding one. */
  key: JWK | string;
  iss: string;
  /** A string becomes a string claim, an array stays an array (even with one element). */
  aud: string | string[];
  sub: string;
  /** With `paths`, builds one `authorization_details` entry; give both or neither. */
  actions?: string[];
  paths?: string[];
  /** Added to the entry when given; needs `actions` and `paths`. */
  locations?: string[];
  /** `exp − iat`; default 300. */
  ttlSeconds?: number;
  /** Epoch seconds; default now. */
  iat?: number;
  /** Epoch seconds; omitted by default. */
  nbf?: number;
  txn?: string;
  /** Default `crypto.randomUUID()`. */
  jti?: string;
  /** Header `kid`; default the key's `kid` (omitted when the key has none). */
  kid?: string;
  /** Header `alg`; default the key's `alg`. */
  alg?: string;
  /** Header `typ`; default `jit+jwt`; `null` leaves it out. */
  typ?: string | null;
  /** `type` of the `authorization_details` entry; default `jit_grant`. */
  grantType?: string;
  /** Sets `act: { sub }` (RFC 8693 actor). */
  act?: string;
  /** Sets `cnf: { jkt }` (RFC 9449 DPoP binding). */
  cnfJkt?: string;
  /** The client's DPoP key (private JWK or its file): sets `cnf.jkt` to its public key's thumbprint. Not with `cnfJkt`. */
  dpopKey?: JWK | string;
  /** Sets `status: { status_list: { idx, uri } }` (SPEC §10, draft-ietf-oauth-status-list §6.1). */
  statusList?: { readonly uri: string; readonly idx: number };
  /** A client certificate file (PEM): sets `cnf["x5t#S256"]` to its thumbprint (RFC 8705 certificate binding). */
  cnfCert?: string;
  /** Applied last: adds or overrides claims; a value of `undefined` removes the claim. */
  extraClaims?: Readonly<Record<string, unknown>>;
}

/**
 * Signs a grant token with jose and returns it in compact form.
 *
 * @throws TypeError when the options are inconsistent (e.g. `actions` without `paths`) or the key is unusable.
 */
export async function mintToken(opts: MintOptions): Promise<string> {
  const jwk = typeof opts.key === 'string' ? await readKeyFile(opts.key) : opts.key;
  if (typeof jwk !== 'object' || jwk === null || typeof jwk.d !== 'string') {
    throw new TypeError('key must be a private JWK (with "d"), such as private.jwk.json written by `jitgate keys`');
  }
  const alg = opts.alg ?? jwk.alg;
  if (typeof alg !== 'string' || alg === '') throw new TypeError('key has no "alg"; pass alg explicitly');

  const iat = opts.iat ?? Math.floor(Date.now() / 1000);
  const ttl = opts.ttlSeconds ?? DEFAULT_TTL_SECONDS;
  for (const [name, value] of [['iat', iat], ['ttlSeconds', ttl], ['nbf', opts.nbf ?? 0]] as const) {
    if (typeof value !== 'number' || !Number.isFinite(value)) throw new TypeError(`${name} must be a finite number`);
  }
  if ((opts.actions === undefined) !== (opts.paths === undefined)) {
    throw new TypeError('actions and paths must be given together (one authorization_details entry needs both)');
  }
  if (opts.locations !== undefined && opts.actions === undefined) {
    throw new TypeError('locations needs actions and paths');
  }
  if (opts.cnfJkt !== undefined && opts.dpopKey !== undefined) throw new TypeError('give cnfJkt or dpopKey, not both');
  const cnfJkt = opts.dpopKey !== undefined ? await dpopKeyThumbprint(opts.dpopKey) : opts.cnfJkt;

  // Null prototype: claim names come from the caller (`--claim __proto__=…` must stay an ordinary claim).
  const claims: Record<string, unknown> = Object.create(null);
  claims.iss = opts.iss;
  claims.sub = opts.sub;
  claims.aud = opts.aud;
  claims.jti = opts.jti ?? randomUUID();
  claims.iat = iat;
  if (opts.nbf !== undefined) claims.nbf = opts.nbf;
  claims.exp = iat + ttl;
  if (opts.txn !== undefined) claims.txn = opts.txn;
  if (opts.act !== undefined) claims.act = { sub: opts.act };
  const cnfX5t = opts.cnfCert === undefined ? undefined : await certThumbprint(opts.cnfCert);
  if (cnfJkt !== undefined || cnfX5t !== undefined) claims.cnf = { ...(cnfJkt === undefined ? {} : { jkt: cnfJkt }), ...(cnfX5t === undefined ? {} : { 'x5t#S256': cnfX5t }) };
  if (opts.statusList !== undefined) claims.status = { status_list: { idx: opts.statusList.idx, uri: opts.statusList.uri } };
  if (opts.actions !== undefined && opts.paths !== undefined) {
    const entry: Record<string, unknown> = {
      type: opts.grantType ?? DEFAULT_GRANT_TYPE,
      actions: [...opts.actions],
      paths: [...opts.paths],
    };
    if (opts.locations !== undefined) entry.locations = [...opts.locations];
    claims.authorization_details = [entry];
  }
  for (const [name, value] of Object.entries(opts.extraClaims ?? {})) {
    if (value === undefined) delete claims[name];
    else claims[name] = value;
  }

  const header: { alg: string; kid?: string; typ?: string } = { alg };
  const kid = opts.kid ?? jwk.kid;
  if (kid !== undefined) header.kid = kid;
  const typ = opts.typ === undefined ? DEFAULT_TYP : opts.typ;
  if (typ !== null) header.typ = typ;

  const key = await importJWK(jwk, alg);
  return new SignJWT(claims).setProtectedHeader(header).sign(key);
}

const USAGE = `Usage: jitgate mint --key FILE --iss URL --aud AUD --sub ID [options]

Sign a grant token and print it (only the token) on stdout.

  --key FILE            private JWK written by "jitgate keys" (required)
  --iss URL             issuer (required)
  --aud AUD             audience; repeat for an array claim (required)
  --sub ID              subject / workload identity (required)
  --action M            granted method or action name (GET, PATCH, read); repeatable
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

/** CLI entry: exit 0 with the token on stdout, 1 when signing failed (e.g. bad key file), 2 on a usage error. */
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
    if (values['status-idx'] !== undefined && !/^\d+$/.test(values['status-idx'])) {
      throw new UsageError(`--status-idx: expected a non-negative integer, got "${values['status-idx']}"`);
    }
    const ttlMs = parseDuration(values.ttl);
    if (ttlMs === undefined || ttlMs % 1000 !== 0) {
      throw new UsageError(`--ttl: expected whole seconds as a duration such as 30s, 5m or 1h, got "${values.ttl}"`);
    }
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
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message);
    throw err;
  }

  try {
    process.stdout.write(`${await mintToken(opts)}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`jitgate mint: ${(err as Error).message}\n`);
    return 1;
  }
}

class UsageError extends Error {}

/** Epoch seconds (`1764000000`) or a signed offset from `now` (`-20m`, `+30s`). */
function parseTime(flag: string, text: string, now: number): number {
  if (/^\d+$/.test(text)) return Number(text);
  const sign = text[0] === '-' ? -1 : text[0] === '+' ? 1 : 0;
  const ms = sign === 0 ? undefined : parseDuration(text.slice(1));
  if (ms === undefined) {
    throw new UsageError(`${flag}: expected epoch seconds (1764000000) or a signed offset (-20m, +30s), got "${text}"`);
  }
  return now + Math.trunc((sign * ms) / 1000);
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
