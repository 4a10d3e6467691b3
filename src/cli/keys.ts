/**
 * `jitgate keys`: make a development signing key pair and its JWKS (SPEC §6, §8), through src/issuing/dev-keys.ts.
 *
 * @module
 */
import { DEFAULT_ALG, generateDevKeys, JWKS_FILE, KeyFileExistsError, PRIVATE_KEY_FILE, SUPPORTED_ALGS } from '../issuing/dev-keys.ts';
import { commandUsageError, parseCommand } from './args.ts';

const USAGE = `Usage: jitgate keys --out DIR [--alg ALG] [--kid ID] [--force]

Generate a development key pair for signing grant tokens.

  --out DIR    directory to write ${PRIVATE_KEY_FILE} (mode 0600) and ${JWKS_FILE}; created (0700) if missing
  --alg ALG    ${SUPPORTED_ALGS.join(' | ')} (default ${DEFAULT_ALG}; EdDSA uses Ed25519)
  --kid ID     key id (default: RFC 7638 SHA-256 thumbprint of the public key)
  --force      replace an existing ${PRIVATE_KEY_FILE} and ${JWKS_FILE}
  -h, --help   show this help
`;

/** CLI entry: exit 0 on success, 1 when the keys could not be written, 2 on a usage error. */
export async function run(argv: string[]): Promise<number> {
  const values = parseCommand(
    argv,
    { out: { type: 'string' }, alg: { type: 'string' }, kid: { type: 'string' }, force: { type: 'boolean' } },
    USAGE,
    usageError,
  );
  if (typeof values === 'number') return values;
  if (values.out === undefined || values.out === '') return usageError('missing required option --out DIR');
  const alg = values.alg ?? DEFAULT_ALG;
  if (!SUPPORTED_ALGS.includes(alg)) {
    return usageError(`--alg: unsupported "${alg}"; expected one of ${SUPPORTED_ALGS.join(', ')}`);
  }
  if (values.kid === '') return usageError('--kid: must not be empty');

  try {
    const keys = await generateDevKeys(values.out, { alg, kid: values.kid, force: values.force });
    process.stdout.write(
      `private key: ${keys.privatePath}\njwks:        ${keys.jwksPath}\nkid:         ${keys.kid}\nalg:         ${keys.alg}\n`,
    );
    return 0;
  } catch (err) {
    process.stderr.write(`jitgate keys: ${(err as Error).message}\n`);
    return 1;
  }
}

function usageError(message: string): number {
  return commandUsageError('keys', message);
}
