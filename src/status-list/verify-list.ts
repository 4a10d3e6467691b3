/**
 * Verifies one fetched Status List Token (draft-ietf-oauth-status-list §5, SPEC §10): a compact JWS
 * with `typ` statuslist+jwt, signed by a key of the same issuer as the tokens that point at it (that
 * issuer's IssuerKeys, file or remote — never a key named in the header), `sub` equal to the URI it was
 * fetched from, `iat` required, `exp` and `ttl` honoured, `status_list.bits` 1/2/4/8 and `lst`
 * inflated within a bound. Every failure is a precise reason; jose's throws are caught here only.
 */
import { compactVerify, errors, type JWSHeaderParameters } from 'jose';
import { jsonObject } from '../core/jws-compact.ts';
import { normalizeTyp } from '../core/policy.ts';
import { looksLikeCompactJws } from '../core/token.ts';
import type { StatusListFailure } from '../core/status-list.ts';
import type { IssuerKeys } from '../keys/issuer-keys.ts';
import type { KeyEntry } from '../keys/key-set.ts';
import { decodeLst, isStatusBits, type StatusBits } from './decode.ts';

export const STATUS_LIST_TYP = 'statuslist+jwt';

export interface VerifiedList {
  readonly bits: StatusBits;
  readonly bytes: Uint8Array;
  /** Seconds since the epoch. */
  readonly iat: number;
  /** `exp` + the issuer's clock tolerance, in ms, when the list has one: it is not used at or after this. */
  readonly expMs: number | undefined;
  /** `exp` itself, in ms: the next copy is fetched a second before it (its publisher's replacement is due). */
  readonly expClaimMs: number | undefined;
  /** `ttl` in ms, when the list has one: refetched no later than this after it was fetched. */
  readonly ttlMs: number | undefined;
  /** The key that verified it: once it leaves the issuer's set, the list no longer counts (SPEC §6). */
  readonly key: KeyEntry;
}

export interface VerifyListContext {
  readonly uri: string;
  readonly keys: IssuerKeys;
  readonly algorithms: ReadonlySet<string>;
  readonly toleranceSec: number;
  /** Bound for the inflated byte array. */
  readonly maxListBytes: number;
  readonly nowMs: number;
}

function isNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/** ASCII whitespace a server or a file may put around the token (a trailing newline). */
function trimmed(body: Buffer): string {
  return body.toString('latin1').replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
}

export async function verifyStatusList(body: Buffer, ctx: VerifyListContext): Promise<VerifiedList | StatusListFailure> {
  const token = trimmed(body);
  if (!looksLikeCompactJws(token)) return 'status_list_malformed';
  // Decoded once, as jose decodes it, with duplicate members, invalid UTF-8 and nesting deep enough
  // to exhaust the stack refused (jws-compact.ts). The payload too, before any key is looked at: a
  // list that is not a JWS with a JSON payload is malformed whatever its signature, as a token is.
  const dot1 = token.indexOf('.');
  const dot2 = token.lastIndexOf('.');
  const header = jsonObject(token, 0, dot1) as JWSHeaderParameters | undefined;
  const payload = jsonObject(token, dot1 + 1, dot2);
  if (header === undefined || payload === undefined) return 'status_list_malformed';
  if (header.crit !== undefined) return 'status_list_malformed'; // no extension is understood
  // RFC 7797's unencoded payload, refused as in a token (token.ts): only `true`, the default, may be written.
  if (header.b64 !== undefined && header.b64 !== true) return 'status_list_malformed';
  if (typeof header.typ !== 'string' || normalizeTyp(header.typ) !== normalizeTyp(STATUS_LIST_TYP)) return 'status_list_typ';
  const alg = header.alg;
  if (typeof alg !== 'string' || !ctx.algorithms.has(alg)) return 'status_list_signature';
  if (header.kid !== undefined && (typeof header.kid !== 'string' || header.kid === '')) return 'status_list_malformed';

  const state = ctx.keys.state(ctx.nowMs);
  if (state === 'loading') return 'keys_unavailable';
  if (state === 'stale') return 'keys_stale';
  const entry = await ctx.keys.resolve(header.kid, alg);
  const key = entry?.keys.get(alg);
  if (key === undefined) return 'status_list_signature';

  try {
    await compactVerify(token, key, { algorithms: [alg] });
  } catch (err) {
    return err instanceof errors.JWSSignatureVerificationFailed ? 'status_list_signature' : 'status_list_malformed';
  }
  return checkListClaims(payload, ctx, entry!);
}

/** The claims of a list whose signature verified (draft §5.1). */
function checkListClaims(p: Record<string, unknown>, ctx: VerifyListContext, key: KeyEntry): VerifiedList | StatusListFailure {
  if (p.sub !== ctx.uri) return 'status_list_sub';
  const nowSec = ctx.nowMs / 1000;
  const tol = ctx.toleranceSec;
  if (!isNumber(p.iat) || p.iat > nowSec + tol) return 'status_list_claims';
  if (p.exp !== undefined && !isNumber(p.exp)) return 'status_list_claims';
  // A list is a JWT: not accepted before its nbf (RFC 7519 §4.1.5), with the issuer's tolerance.
  if (p.nbf !== undefined && !(isNumber(p.nbf) && p.nbf <= nowSec + tol)) return 'status_list_claims';
  if (p.ttl !== undefined && !(isNumber(p.ttl) && p.ttl > 0)) return 'status_list_claims';
  if (isNumber(p.exp) && nowSec >= p.exp + tol) return 'status_list_expired';
  const sl = p.status_list;
  if (typeof sl !== 'object' || sl === null || Array.isArray(sl)) return 'status_list_claims';
  const { bits, lst } = sl as { bits?: unknown; lst?: unknown };
  if (!isStatusBits(bits) || typeof lst !== 'string') return 'status_list_claims';
  const bytes = decodeLst(lst, ctx.maxListBytes);
  if (typeof bytes === 'string') return bytes;
  return Object.freeze({
    bits,
    bytes,
    iat: p.iat,
    expMs: isNumber(p.exp) ? (p.exp + tol) * 1000 : undefined,
    expClaimMs: isNumber(p.exp) ? p.exp * 1000 : undefined,
    ttlMs: isNumber(p.ttl) ? p.ttl * 1000 : undefined,
    key,
  });
}
