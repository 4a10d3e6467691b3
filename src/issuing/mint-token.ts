/**
 * Signing a grant token (SPEC §1) from options: the library form of `jitgate mint`, used by the demo, the bench,
 * `jitgate bench` and tests across the project to make tokens, including deliberately bad ones: every claim can be
 * overridden or removed through `extraClaims`, and `iat` can lie in the past.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { importJWK, SignJWT, type JWK } from 'jose';
import { certThumbprint } from './cert-thumbprint.ts';
import { dpopKeyThumbprint, readKeyFile } from './key-files.ts';

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
  if (typeof alg !== 'string' || alg === '') throw new TypeError('key has no "alg": add one to the key file (jitgate keys writes it, e.g. "alg": "ES256")');

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
  // A grant of CONNECT would read like a permission that no gate honours (SPEC §2: always 400).
  if (opts.actions?.includes('CONNECT') === true) throw new TypeError('actions: CONNECT is never granted; every transport answers it 400 connect_method');
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
