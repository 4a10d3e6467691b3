/**
 * `jitgate dpop-proof`: make a DPoP proof (RFC 9449 §4) for one request, so a token minted with
 * `jitgate mint --dpop-key` can be used from curl. `makeDpopProof` is the library form; tests use it
 * for valid proofs and sign deliberately bad ones themselves.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { importJWK, SignJWT, type JWK } from 'jose';
import { accessTokenHash } from '../core/token.ts';
import { HTTP_TOKEN } from '../net/http-syntax.ts';
import { commandUsageError, parseCommand } from './args.ts';
import { publicJwkOf, readKeyFile } from '../issuing/key-files.ts';

export interface DpopProofOptions {
  /** Private JWK, or the path of a file holding one. */
  key: JWK | string;
  method: string;
  /** The request URL; query and fragment are dropped for `htu`. */
  url: string;
  /** The access token: adds `ath` (RFC 9449 §4.2), which jitgate requires. */
  token?: string;
  /** A server nonce from a `DPoP-Nonce` response header. */
  nonce?: string;
  /** Epoch seconds; default now. */
  iat?: number;
  /** Default `crypto.randomUUID()`. */
  jti?: string;
  /** Header `alg`; default the key's `alg`. */
  alg?: string;
}

/** @throws TypeError for a key without `d`/`alg` or a URL that is not absolute http(s). */
export async function makeDpopProof(opts: DpopProofOptions): Promise<string> {
  const jwk = typeof opts.key === 'string' ? await readKeyFile(opts.key) : opts.key;
  if (typeof jwk !== 'object' || jwk === null || typeof jwk.d !== 'string') {
    throw new TypeError('key must be a private JWK (with "d"), such as private.jwk.json written by `jitgate keys`');
  }
  const alg = opts.alg ?? jwk.alg;
  if (typeof alg !== 'string' || alg === '') throw new TypeError('key has no "alg": add one to the key file (jitgate keys writes it, e.g. "alg": "ES256")');
  const url = URL.parse(opts.url);
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw new TypeError(`url must be an absolute http(s) URL, got ${JSON.stringify(opts.url)}`);
  url.search = '';
  url.hash = '';

  const claims: Record<string, unknown> = {
    jti: opts.jti ?? randomUUID(),
    htm: opts.method,
    htu: url.href,
    iat: opts.iat ?? Math.floor(Date.now() / 1000),
  };
  if (opts.token !== undefined) claims.ath = accessTokenHash(opts.token);
  if (opts.nonce !== undefined) claims.nonce = opts.nonce;
  const key = await importJWK(jwk, alg);
  return new SignJWT(claims).setProtectedHeader({ typ: 'dpop+jwt', alg, jwk: publicJwkOf(jwk) }).sign(key);
}

const USAGE = `Usage: jitgate dpop-proof --key FILE --method M --url URL [options]

Print a DPoP proof (RFC 9449) for one request, to send as the DPoP header with
"Authorization: DPoP <token>". A proof is single-use: make a new one per request.

  --key FILE      private JWK of the client's DPoP key ("jitgate keys" writes one)
  --method M      the request method (htm), e.g. GET
  --url URL       the request URL as the client addresses it (htu); query and fragment are dropped
  --token T       the access token: adds ath (jitgate requires it)
  --nonce N       a server nonce from a DPoP-Nonce response header
  --iat SECONDS   issued-at, epoch seconds (default now)
  --jti ID        proof id (default: random UUID)
  -h, --help      show this help

Bind a token to the same key with: jitgate mint --dpop-key FILE …
`;

/** CLI entry: exit 0 with the proof on stdout, 1 when signing failed, 2 on a usage error. */
export async function run(argv: string[]): Promise<number> {
  const values = parseCommand(
    argv,
    {
      key: { type: 'string' },
      method: { type: 'string' },
      url: { type: 'string' },
      token: { type: 'string' },
      nonce: { type: 'string' },
      iat: { type: 'string' },
      jti: { type: 'string' },
    },
    USAGE,
    usageError,
  );
  if (typeof values === 'number') return values;
  for (const flag of ['key', 'method', 'url'] as const) {
    if (values[flag] === undefined || values[flag] === '') return usageError(`missing required option --${flag}`);
  }
  if (!HTTP_TOKEN.test(values.method!)) return usageError(`--method: not an HTTP method: "${values.method}"`);
  if (values.iat !== undefined && !/^\d+$/.test(values.iat)) return usageError(`--iat: expected epoch seconds, got "${values.iat}"`);
  // Proofs no gate accepts: an empty jti (dpop_proof_claims), an ath of nothing, and an htu with user info — which
  // also wrote the URL's password into the signed proof.
  for (const flag of ['jti', 'token', 'nonce'] as const) if (values[flag] === '') return usageError(`--${flag}: must not be empty`);
  const url = URL.parse(values.url!);
  if (url !== null && (url.username !== '' || url.password !== '')) return usageError('--url: leave out the user info (user:password@): it is no part of htu, and would be signed into the proof');

  try {
    const proof = await makeDpopProof({
      key: values.key!,
      method: values.method!,
      url: values.url!,
      token: values.token,
      nonce: values.nonce,
      iat: values.iat === undefined ? undefined : Number(values.iat),
      jti: values.jti,
    });
    process.stdout.write(`${proof}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`jitgate dpop-proof: ${(err as Error).message}\n`);
    return 1;
  }
}

function usageError(message: string): number {
  return commandUsageError('dpop-proof', message);
}
