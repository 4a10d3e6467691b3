/**
 * The files a Redis connection reads, read as the gate reads them: `redis.password_file` (one line,
 * its newline dropped) and `redis.ca_file` (a CA bundle). Their own module, with no Redis client
 * imported, so serve's preflight (src/preflight.ts) reads them with the same code before anything
 * connects, and the connection (redis-link.ts) when it does.
 */
import { readFileSync } from 'node:fs';
import { StartupError } from '../errors.ts';
import { caBundleProblem } from '../transports/tls/ca-bundle.ts';

/** @throws StartupError naming redis.password_file: unreadable, empty, or more than one line. */
export function readRedisPassword(path: string): string {
  let password: string;
  try {
    password = readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new StartupError(`redis.password_file ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? err})`, { cause: err });
  }
  // An empty password made the client skip AUTH, dropping the URL's user too (connected as "default"),
  // and a second line went into the password: each was a confusing refusal later (a black-box probe).
  if (password === '') throw new StartupError(`redis.password_file ${path}: is empty; write the password on its one line`);
  if (/[\r\n]/.test(password)) throw new StartupError(`redis.password_file ${path}: holds more than one line; write the password on its one line`);
  return password;
}

/**
 * The CA bundle for a rediss:// connection. `key` names the setting (`redis.ca_file`, or `revoke`'s
 * `--ca-file`). @throws StartupError: unreadable, or not a bundle node could verify against (ca-bundle.ts).
 */
export function readRedisCaFile(path: string, key = 'redis.ca_file'): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (err) {
    throw new StartupError(`${key}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  const problem = caBundleProblem(pem);
  if (problem !== undefined) throw new StartupError(`${key}: ${path} ${problem}`);
  return pem;
}
