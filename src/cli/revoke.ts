/**
 * `jitgate revoke` (SPEC §9): revoke a token, a task or a subject from the command line, through a
 * gate's admin API or straight to Redis, and exit 0 only once the entry is durable:
 *
 *   --admin URL --token-file F   POST /revocations; 201 means the gate made it durable (journal
 *                                fsynced and/or Redis acknowledged).
 *   --redis URL                  MULTI ZADD + XADD (src/fleet/redis-writer.ts); exit 0 once Redis
 *                                answered EXEC. With `appendfsync always` that answer comes after
 *                                the AOF fsync (docs/fleet.md "Persistence").
 *
 * Exit 0 done, 1 not done (the reason on stderr), 2 usage error.
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import { adminTokenProblem } from '../admin/admin-token.ts';
import { redisKeys } from '../fleet/redis-layout.ts';
import { connectOnce, plainReply, withDeadline } from '../fleet/redis-link.ts';
import { redactUrl } from '../observability/redact-url.ts';
import { writeEntries } from '../fleet/redis-writer.ts';
import { parseDuration, TIMER_MAX_MS } from '../config/duration.ts';
import { parseEntry, type RevocationEntry } from '../revocation/entries.ts';
import { commandUsageError, parseCommand } from './args.ts';

const USAGE = `Usage: jitgate revoke (--admin URL --token-file FILE | --redis URL [--key-prefix P])
                      (--jti J | --txn T | --sub S [--before EPOCH]) [--exp EPOCH]

Revokes through a gate's admin API or straight into the Redis the gates share, and exits 0 only
once the entry is durable (201 from the gate; Redis acknowledged the write).

Where:
  --admin URL          the gate's admin listener (e.g. http://127.0.0.1:9901)
  --token-file FILE    file holding the admin bearer token (admin.token_file)
  --redis URL          redis:// or rediss:// (user:password may be in the URL)
  --key-prefix P       default "jitgate:" (redis.key_prefix of the gates)
  --password-file F    Redis password (wins over one in the URL; the URL's user still applies)
  --ca-file F          rediss://: the CA of Redis's certificate
What:
  --jti J              one token
  --txn T              every token of a task
  --sub S              every token of a subject issued before --before (default: the next second, so
                       every token issued up to now is covered)
  --before EPOCH       epoch seconds, with --sub
  --exp EPOCH          the entry may be dropped after this (set it to the tokens' exp)
Other:
  --timeout DURATION   give up after this (default 5s)
  -h, --help           show this help
`;

export async function run(argv: string[]): Promise<number> {
  const values = parseCommand(
    argv,
    {
      admin: { type: 'string' },
      'token-file': { type: 'string' },
      redis: { type: 'string' },
      'key-prefix': { type: 'string' },
      'password-file': { type: 'string' },
      'ca-file': { type: 'string' },
      jti: { type: 'string' },
      txn: { type: 'string' },
      sub: { type: 'string' },
      before: { type: 'string' },
      exp: { type: 'string' },
      timeout: { type: 'string' },
    },
    USAGE,
    usageError,
  );
  if (typeof values === 'number') return values;
  if ((values.admin === undefined) === (values.redis === undefined)) return usageError('give exactly one of --admin and --redis');
  if (values.admin !== undefined && values['token-file'] === undefined) return usageError('--admin needs --token-file');
  if (values.redis !== undefined && values['token-file'] !== undefined) return usageError('--token-file goes with --admin');
  if (values.admin !== undefined && (values['key-prefix'] ?? values['password-file'] ?? values['ca-file']) !== undefined) {
    return usageError('--key-prefix, --password-file and --ca-file go with --redis');
  }
  const what = (['jti', 'txn', 'sub'] as const).filter((k) => values[k] !== undefined);
  if (what.length !== 1) return usageError('give exactly one of --jti, --txn and --sub');
  if (values.before !== undefined && values.sub === undefined) return usageError('--before goes with --sub');
  // A safe integer: 400 digits read as Infinity, which no JSON carries (the entry was stored and never enforced).
  const epoch = (flag: string, v: string | undefined): number | undefined | string =>
    v === undefined ? undefined : /^\d+$/.test(v) && Number.isSafeInteger(Number(v)) ? Number(v) : `--${flag}: expected epoch seconds (an integer up to 2^53 − 1), got "${v.length > 40 ? `${v.slice(0, 40)}…` : v}"`;
  const exp = epoch('exp', values.exp);
  const before = epoch('before', values.before);
  if (typeof exp === 'string') return usageError(exp);
  if (typeof before === 'string') return usageError(before);
  // Already past: every gate drops the entry at once, so "revoked" would promise nothing (`--exp 300`,
  // meant as a duration, is 1970). A black-box probe saw exit 0 for it.
  const nowSec = Math.floor(Date.now() / 1000);
  if (exp !== undefined && exp <= nowSec) return usageError(`--exp: ${exp} is not in the future (now is ${nowSec}): the entry would be dropped at once; give the tokens' exp in epoch seconds`);
  const timeoutMs = values.timeout === undefined ? 5_000 : parseDuration(values.timeout);
  // At least 100 ms: a 0s deadline answers "not confirmed" for an entry the store took (a re-probe).
  if (timeoutMs === undefined || timeoutMs < 100 || timeoutMs > TIMER_MAX_MS) return usageError(`--timeout: expected a duration like "5s" (100ms to 24d), got "${values.timeout}"`);
  const id = values[what[0]!]!;
  if (id === '') return usageError(`--${what[0]} must not be empty`);
  const asJson =
    // The default `before` is the next whole second: a token of this second (iat == floor(now)) was issued
    // before now, and "issued before" is strict (SPEC §5). floor(now) let the newest token of a compromised
    // subject through (a black-box probe: revoke exited 0, the token stayed 200 until it expired).
    what[0] === 'jti' ? { jti: id, exp } : what[0] === 'txn' ? { txn: id, exp } : { sub: id, before: before ?? Math.floor(Date.now() / 1000) + 1, exp };
  // The gate's own rules (entries.ts), before anything is written: an id no token can carry would be
  // stored, acknowledged and never enforced (a re-probe found --redis writing them, exit 0).
  const entry: RevocationEntry | string = parseEntry(asJson);
  if (typeof entry === 'string') return usageError(`--${what[0]}: ${entry}`);

  try {
    const done = values.admin !== undefined ? await viaAdmin(values.admin, values['token-file']!, entry, timeoutMs) : await viaRedis(values, entry, timeoutMs);
    process.stdout.write(`${done}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`jitgate revoke: ${(err as Error).message}\n`);
    return 1;
  }
}

function entryJson(e: RevocationEntry): Record<string, unknown> {
  const base = e.kind === 'jti' ? { jti: e.jti } : e.kind === 'txn' ? { txn: e.txn } : { sub: e.sub, before: e.before };
  return e.exp === undefined ? base : { ...base, exp: e.exp };
}

async function viaAdmin(admin: string, tokenFile: string, entry: RevocationEntry, timeoutMs: number): Promise<string> {
  const token = (await readFile(tokenFile, 'utf8').catch((err: NodeJS.ErrnoException) => Promise.reject(new Error(`--token-file ${tokenFile}: cannot read it (${err.code ?? err.message})`)))).trim();
  const problem = adminTokenProblem(token);
  if (problem !== undefined) throw new Error(`--token-file ${tokenFile}: ${problem}; nothing was sent`);
  const url = new URL('/revocations', admin);
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(entryJson(entry)),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const why = (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message;
    // A timeout may come after the gate stored the entry (a cluster waits up to 5 s for its workers): only a
    // request that never reached it revoked nothing for sure (a black-box probe saw "nothing" for a stored entry).
    if ((err as Error).name === 'TimeoutError') throw new Error(`--admin ${url.origin}: no answer within --timeout (${why}); not confirmed — the gate may have stored it, run the command again (revoking twice is harmless)`);
    throw new Error(`--admin ${url.origin}: no answer (${why}); nothing was revoked`);
  }
  const text = await res.text();
  if (res.status !== 201) {
    let reason = text.slice(0, 300);
    try {
      const body = JSON.parse(text) as { reason?: string; message?: string };
      reason = `${body.reason ?? ''}: ${body.message ?? ''}`;
    } catch {
      // not JSON: show the start of the text
    }
    // A 5xx (503 not_enforced: durable but not confirmed by every worker) is not a refusal: say so.
    if (res.status >= 500) throw new Error(`--admin ${url.origin} answered ${res.status} (${reason}); not confirmed — run the command again (revoking twice is harmless)`);
    throw new Error(`--admin ${url.origin} answered ${res.status} (${reason}); not revoked`);
  }
  return `revoked ${JSON.stringify(entryJson(entry))} via ${url.origin} (durable: 201)`;
}

/** Connection errors name these flags, not the config keys a gate has. */
const CLI_FLAGS = { url: '--redis', passwordFile: '--password-file', connectTimeout: '--timeout', caFile: '--ca-file' };

async function viaRedis(v: { redis?: string; 'key-prefix'?: string; 'password-file'?: string; 'ca-file'?: string }, entry: RevocationEntry, timeoutMs: number): Promise<string> {
  const url = v.redis!;
  if (!/^rediss?:\/\//.test(url)) throw new Error(`--redis: expected a redis:// or rediss:// URL, got ${JSON.stringify(redactUrl(url))}`);
  const file = v['password-file'];
  const password =
    file === undefined
      ? undefined
      : (await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => Promise.reject(new Error(`--password-file ${file}: cannot read it (${err.code ?? err.message})`)))).replace(/\r?\n$/, '');
  const prefix = v['key-prefix'] ?? 'jitgate:';
  // --timeout bounds the whole command: connecting (connectOnce allows its timeout + 500 ms) and the write share it.
  const deadline = performance.now() + timeoutMs;
  const opts = { url, password, caFile: v['ca-file'], connectTimeoutMs: Math.max(100, timeoutMs - 500), commandTimeoutMs: timeoutMs, settingNames: CLI_FLAGS };
  const client = await connectOnce(opts, 'jitgate-revoke');
  try {
    const size = await withDeadline(writeEntries(client, redisKeys(prefix), [entry]), Math.max(1, Math.round(deadline - performance.now())), 'write');
    return `revoked ${JSON.stringify(entryJson(entry))} in ${redactUrl(url)} prefix ${prefix} (acknowledged; ${size} live entries)`;
  } catch (err) {
    throw new Error(`--redis ${redactUrl(url)}: the write was not acknowledged (${(plainReply(err) as Error).message}); it may or may not have been applied, run the command again`);
  } finally {
    client.destroy();
  }
}

function usageError(message: string): number {
  return commandUsageError('revoke', message);
}
