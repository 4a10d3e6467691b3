/**
 * `jitgate status-list`: build and sign a Token Status List (SPEC §10, draft-ietf-oauth-status-list §5)
 * for a broker or a test. `signStatusList` is the library form. The list is printed as the compact JWT a
 * server publishes at `--uri` with `Content-Type: application/statuslist+jwt`.
 *
 * @module
 */
import { importJWK, SignJWT, type JWK } from 'jose';
import { parseDuration } from '../config/duration.ts';
import { isStatusBits, MAX_LIST_BYTES_CEILING, type StatusBits } from '../status-list/decode.ts';
import { encodeLst, packStatuses } from '../status-list/encode.ts';
import { STATUS_LIST_TYP } from '../status-list/verify-list.ts';
import { isCanonicalListUri } from '../status-list/uri.ts';
import { commandUsageError, parseCommand } from './args.ts';
import { readKeyFile } from '../issuing/key-files.ts';

export interface StatusListOptions {
  /** Private JWK (as written by `jitgate keys`), or the path of a file holding one. */
  key: JWK | string;
  /** The URL the list is published at: its `sub`, and the `uri` of the tokens that point into it. */
  uri: string;
  bits: StatusBits;
  /** Entries in the list. */
  size: number;
  /** Index → status (1 INVALID, 2 SUSPENDED, …); every other entry is 0 (VALID). */
  statuses: ReadonlyMap<number, number>;
  /** Epoch seconds; default now. */
  iat?: number;
  /** Seconds from iat; omitted when undefined. */
  expSeconds?: number;
  /** The `ttl` claim, seconds; omitted when undefined. */
  ttlSeconds?: number;
  /** Optional `iss`. */
  iss?: string;
  /** Header `kid`; default the key's. */
  kid?: string;
  /** Header `typ`; default statuslist+jwt. For tests of refusals. */
  typ?: string;
}

/** Signs a status list; throws TypeError/RangeError when the options do not make one. */
export async function signStatusList(opts: StatusListOptions): Promise<string> {
  const jwk = typeof opts.key === 'string' ? await readKeyFile(opts.key) : opts.key;
  if (typeof jwk !== 'object' || jwk === null || typeof jwk.d !== 'string') {
    throw new TypeError('key must be a private JWK (with "d"), such as private.jwk.json written by `jitgate keys`');
  }
  const alg = jwk.alg;
  if (typeof alg !== 'string' || alg === '') throw new TypeError('key has no "alg"');
  if (!isStatusBits(opts.bits)) throw new RangeError(`bits must be 1, 2, 4 or 8, got ${String(opts.bits)}`);
  const lst = encodeLst(packStatuses(opts.size, opts.bits, opts.statuses));
  const iat = opts.iat ?? Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = { sub: opts.uri, iat };
  if (opts.iss !== undefined) claims.iss = opts.iss;
  if (opts.expSeconds !== undefined) claims.exp = iat + opts.expSeconds;
  if (opts.ttlSeconds !== undefined) claims.ttl = opts.ttlSeconds;
  claims.status_list = { bits: opts.bits, lst };
  const header: { alg: string; typ: string; kid?: string } = { alg, typ: opts.typ ?? STATUS_LIST_TYP };
  if (opts.kid === '') throw new TypeError('kid must not be empty (a gate refuses a list whose header kid is empty)');
  const kid = opts.kid ?? jwk.kid;
  if (kid !== undefined) header.kid = kid;
  return new SignJWT(claims).setProtectedHeader(header).sign(await importJWK(jwk, alg));
}

const USAGE = `Usage: jitgate status-list --key FILE --uri URL --size N [options]

Build a Token Status List (draft-ietf-oauth-status-list) and print the signed list JWT on stdout.
Publish it at URL with Content-Type: application/statuslist+jwt.

  --key FILE          private JWK of the issuer, written by "jitgate keys" (required)
  --uri URL           where the list is published: its sub, and the uri in the tokens (required;
                      canonical http(s) URL, as gates compare it: https://broker.internal/status/1)
  --size N            number of entries (required; at most 2^31 / bits, the 256 MiB a gate accepts)
  --bits B            bits per entry: 1, 2, 4 or 8 (default 1; SUSPENDED needs 2 or more)
  --invalid I,J,...   indexes with status 1 (INVALID: refused as revoked)
  --suspended I,...   indexes with status 2 (SUSPENDED)
  --status I=V        any status value at index I; repeatable (an index given two statuses is an error)
  --exp DURATION      exp as a duration from now (e.g. 1h); default none
  --ttl DURATION      ttl claim: how long consumers may cache the list (e.g. 5m); default none
  --iss URL           iss claim (optional)
  --kid ID            header kid (default: the key file's kid)
  -h, --help          show this help
`;

class UsageError extends Error {}

function indexList(flag: string, text: string | undefined): number[] {
  if (text === undefined || text === '') return [];
  return text.split(',').map((part) => {
    if (!/^\d+$/.test(part.trim())) throw new UsageError(`${flag}: expected comma-separated indexes such as 3,17, got "${text}"`);
    return Number(part.trim());
  });
}

/**
 * Records `value` for `idx`; an index given two different statuses is a usage error, never settled by
 * flag order (`--invalid 1 --status 1=0` used to publish entry 1 as VALID).
 */
function setStatus(statuses: Map<number, number>, from: Map<number, string>, idx: number, value: number, flag: string): void {
  const prev = statuses.get(idx);
  if (prev !== undefined && prev !== value) throw new UsageError(`index ${idx} is given two statuses: ${prev} (${from.get(idx)}) and ${value} (${flag}); give each index one`);
  statuses.set(idx, value);
  from.set(idx, flag);
}

/**
 * --uri (and mint's --status-uri) must be the exact spelling a gate accepts in tokens (uri.ts), or no
 * token could name the list: the usage error's text, or undefined when it is.
 */
export function listUriProblem(text: string, flag: string): string | undefined {
  if (isCanonicalListUri(text)) return undefined;
  const u = URL.parse(text);
  const hint = u !== null && (u.protocol === 'http:' || u.protocol === 'https:') && isCanonicalListUri(u.href) ? ` (did you mean ${u.href}?)` : '';
  return `${flag}: expected an absolute http(s) URL in the canonical form gates compare: lower-case scheme and host, no default port, no . or .. segments, no user info or #fragment, no %2F, %5C, %2E, %3F, %23, %25, ; or encoded non-printable bytes in the path; got "${text}"${hint}`;
}

function listUri(text: string): string {
  const problem = listUriProblem(text, '--uri');
  if (problem !== undefined) throw new UsageError(problem);
  return text;
}

function seconds(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === undefined || ms % 1000 !== 0 || ms <= 0) throw new UsageError(`${flag}: expected a positive whole-second duration such as 30s or 1h, got "${text}"`);
  return ms / 1000;
}

/** CLI entry: 0 with the list JWT on stdout, 1 when signing failed, 2 on a usage error. */
export async function run(argv: string[]): Promise<number> {
  const values = parseCommand(
    argv,
    {
      key: { type: 'string' },
      uri: { type: 'string' },
      size: { type: 'string' },
      bits: { type: 'string', default: '1' },
      invalid: { type: 'string' },
      suspended: { type: 'string' },
      status: { type: 'string', multiple: true },
      exp: { type: 'string' },
      ttl: { type: 'string' },
      iss: { type: 'string' },
      kid: { type: 'string' },
    },
    USAGE,
    (m) => commandUsageError('status-list', m),
  );
  if (typeof values === 'number') return values;
  let opts: StatusListOptions;
  try {
    for (const flag of ['key', 'uri', 'size'] as const) if (values[flag] === undefined || values[flag] === '') throw new UsageError(`missing required option --${flag}`);
    const bits = Number(values.bits);
    if (!isStatusBits(bits)) throw new UsageError(`--bits: expected 1, 2, 4 or 8, got "${values.bits}"`);
    if (!/^\d+$/.test(values.size!) || Number(values.size) < 1) throw new UsageError(`--size: expected a positive integer, got "${values.size}"`);
    // No gate accepts a list that inflates past 256 MiB (the max_list_bytes ceiling): refuse before allocating it.
    const maxSize = (MAX_LIST_BYTES_CEILING * 8) / bits;
    if (Number(values.size) > maxSize) throw new UsageError(`--size: at most ${maxSize} entries at ${bits} bit(s): a gate accepts at most 256 MiB of list (max_list_bytes), got ${values.size}`);
    const uri = listUri(values.uri!);
    if (values.kid === '') throw new UsageError('--kid: must not be empty (omit it to use the key file\'s kid)');
    const statuses = new Map<number, number>();
    const from = new Map<number, string>();
    for (const i of indexList('--invalid', values.invalid)) setStatus(statuses, from, i, 1, '--invalid');
    for (const i of indexList('--suspended', values.suspended)) setStatus(statuses, from, i, 2, '--suspended');
    for (const item of values.status ?? []) {
      const m = /^(\d+)=(\d+)$/.exec(item);
      if (m === null) throw new UsageError(`--status: expected INDEX=VALUE such as 7=3, got "${item}"`);
      setStatus(statuses, from, Number(m[1]), Number(m[2]), '--status');
    }
    opts = {
      key: values.key!,
      uri,
      bits,
      size: Number(values.size),
      statuses,
      expSeconds: seconds('--exp', values.exp),
      ttlSeconds: seconds('--ttl', values.ttl),
      iss: values.iss,
      kid: values.kid,
    };
  } catch (err) {
    if (err instanceof UsageError) return commandUsageError('status-list', err.message);
    throw err;
  }
  try {
    process.stdout.write(`${await signStatusList(opts)}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`jitgate status-list: ${(err as Error).message}\n`);
    return err instanceof RangeError ? 2 : 1;
  }
}
