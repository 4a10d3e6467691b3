/**
 * `redis.password_file` read as the gate reads it: one line, its newline dropped. Its own module (no
 * Redis client imported) so serve's pre-flight check can read it before anything connects.
 */
import { readFileSync } from 'node:fs';
import { StartupError } from '../errors.ts';

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
