/**
 * One Redis connection owned by the gate (SPEC §9, docs/fleet.md): connects, reconnects with
 * capped exponential backoff and jitter, and runs each command under a deadline. node-redis's own
 * reconnect is switched off (`reconnectStrategy: false`) and its offline queue too: a command made
 * while Redis is away must fail at once (a 503, a 5xx to the admin API), never wait in a queue
 * and succeed late. A command that outlives `command_timeout` drops the connection, because a
 * silently stalled socket (a cut network path) would otherwise never be noticed.
 *
 * The first connection is made by `connect()`, whose error names the config key at fault; after
 * that the link reconnects by itself and reports its state through `onState`.
 */
import { createClient, ErrorReply, MultiErrorReply } from 'redis';
import { StartupError } from '../errors.ts';
import { redactUrl } from '../observability/redact-url.ts';
import { withDeadline as deadline } from '../deadline.ts';
import { RedisUnavailableError } from './redis-errors.ts';
import { readRedisCaFile } from './redis-files.ts';

export type RedisClient = ReturnType<typeof createClient>;

export interface RedisConnectOptions {
  /** redis:// or rediss:// with optional user:password. */
  readonly url: string;
  /** From `redis.password_file`; overrides a password in the URL (the URL's user still applies). */
  readonly password?: string;
  readonly caFile?: string;
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
  /** What connection errors call the settings behind url, password, connectTimeoutMs and caFile: the config keys, or a CLI's flags. */
  readonly settingNames?: RedisSettingNames;
}

export interface RedisSettingNames {
  readonly url: string;
  readonly passwordFile: string;
  readonly connectTimeout: string;
  readonly caFile: string;
}

const CONFIG_KEYS: RedisSettingNames = { url: 'redis.url', passwordFile: 'redis.password_file', connectTimeout: 'redis.connect_timeout', caFile: 'redis.ca_file' };

export interface RedisLinkOptions extends RedisConnectOptions {
  /** CLIENT SETNAME, so `CLIENT LIST` shows which gate connection is which. */
  readonly name: string;
  readonly onState?: (connected: boolean, err?: Error) => void;
  /** Called with each new ready connection (the revocation follower resyncs on it). */
  readonly onReady?: (client: RedisClient) => void;
  /** A connection with no command for this long gets a PING (default HEARTBEAT_MS). */
  readonly heartbeatMs?: number;
}

/**
 * A connection nothing used for this long is asked for a PING under command_timeout. A close is
 * noticed from the socket, but a path that silently stops carrying bytes (a black-holed route, a
 * frozen middlebox) is not: a re-probe saw the cluster primary's writer and a DPoP-only gate say
 * ready, `jitgate_redis_connected` 1, until the first real command failed a second later. Busy
 * connections (the follower's blocking reads) never need one.
 */
export const HEARTBEAT_MS = 5_000;

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 2_000;
const STARTUP_ATTEMPTS = 3;

/** Rejects with RedisUnavailableError after `ms`; the late result is dropped. */
export function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return deadline(p, ms, () => new RedisUnavailableError(`${what}: no answer from Redis within ${ms} ms`));
}

/**
 * The user and password to authenticate with: the user from the URL, the password from the file
 * when there is one, else from the URL. Both go to node-redis as options, with the URL stripped of
 * them: given a URL with a user and a separate password, node-redis would send HELLO before
 * authenticating (NOAUTH) or let the URL's password win over the file's.
 */
export function credentials(o: RedisConnectOptions): { url: string; username?: string; password?: string } {
  const u = new URL(o.url);
  const username = u.username === '' ? undefined : decodeURIComponent(u.username);
  const password = o.password ?? (u.password === '' ? undefined : decodeURIComponent(u.password));
  u.username = '';
  u.password = '';
  return { url: u.toString(), ...(username === undefined ? {} : { username }), ...(password === undefined ? {} : { password }) };
}

/** A new client (not connected) for these options. */
export function newClient(o: RedisConnectOptions, name: string): RedisClient {
  const tls = new URL(o.url).protocol === 'rediss:';
  const ca = o.caFile === undefined ? undefined : readRedisCaFile(o.caFile, (o.settingNames ?? CONFIG_KEYS).caFile);
  const socket = tls
    ? { tls: true as const, connectTimeout: o.connectTimeoutMs, reconnectStrategy: false as const, ...(ca ? { ca } : {}) }
    : { connectTimeout: o.connectTimeoutMs, reconnectStrategy: false as const };
  return createClient({ ...credentials(o), name, disableOfflineQueue: true, socket });
}

/**
 * One connection attempt: connect and PING (a server that wants a password answers NOAUTH only to
 * a command). Throws a StartupError naming the key that is wrong.
 */
export async function connectOnce(o: RedisConnectOptions, name: string): Promise<RedisClient> {
  const client = newClient(o, name);
  client.on('error', () => {}); // reported through the rejected promise below
  try {
    await withDeadline(
      client.connect().then(() => client.ping()),
      o.connectTimeoutMs + 500,
      'connect',
    );
    return client;
  } catch (err) {
    try {
      client.destroy();
    } catch {
      // already closed
    }
    throw describeConnectError(err as Error, o);
  }
}

/** describeConnectError's answer for a Redis that did not answer (nothing to fix in the config, perhaps). */
class RedisUnreachableError extends StartupError {}

/** A StartupError that says which setting to fix: the URL (unreachable, TLS, ACL) or the credentials. */
export function describeConnectError(err: Error, o: RedisConnectOptions): StartupError {
  const text = `${(err as { code?: string }).code ?? ''} ${err.message}`;
  const url = redactUrl(o.url);
  const names = o.settingNames ?? CONFIG_KEYS;
  if (/WRONGPASS|NOAUTH|invalid password|invalid username-password|AUTH failed/i.test(text)) {
    // The password came from the file when one is set (it wins), else from the URL.
    const key = o.password !== undefined ? names.passwordFile : `${names.url} (user:password)`;
    const user = credentials(o).username;
    return new StartupError(`${key}: Redis at ${url} refused the credentials${user === undefined ? '' : ` (user ${JSON.stringify(user)})`} (${err.message.split('\n')[0]})`, { cause: err });
  }
  if (/NOPERM/.test(text)) {
    // Reached and authenticated, but the Redis user's ACL refuses a command: not "unreachable".
    return new StartupError(`${names.url} ${url}: the Redis user may not run a command jitgate needs (${err.message.split('\n')[0]}); docs/fleet.md "ACL" lists them`, { cause: err });
  }
  if (/DB index is out of range|invalid DB index/i.test(text)) {
    // SELECT of the URL's /N: Redis has fewer databases (its `databases` setting). Retrying will not add one.
    const db = /\/(\d+)$/.exec(URL.parse(o.url)?.pathname ?? '')?.[1];
    return new StartupError(`${names.url} ${url}: Redis has no database ${db ?? 'of that number'} (${err.message.split('\n')[0]}); use a database index below its "databases" setting (16 by default)`, { cause: err });
  }
  if (/certificate|SSL|TLS|self.signed|ERR_SSL/i.test(text)) {
    return new StartupError(`${names.url} ${url}: TLS handshake failed (${err.message}); set ${names.caFile} to the CA that signed Redis's certificate`, { cause: err });
  }
  return new RedisUnreachableError(`${names.url} ${url}: Redis unreachable within ${names.connectTimeout} (${err.message || text.trim()})`, { cause: err });
}

export class RedisLink {
  readonly #o: RedisLinkOptions;
  #client: RedisClient | undefined;
  #attempt = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = true;
  #lastError: Error | undefined;
  /** When the last command started or ended (ms since epoch), and how many are under way: an idle connection gets a heartbeat. */
  #lastUse = 0;
  #inFlight = 0;
  #beat: NodeJS.Timeout | undefined;

  constructor(options: RedisLinkOptions) {
    this.#o = options;
  }

  /** The ready connection, or undefined while Redis is away. */
  get client(): RedisClient | undefined {
    return this.#client;
  }

  get lastError(): Error | undefined {
    return this.#lastError;
  }

  /** The deadline of one command (`redis.command_timeout`). */
  get commandTimeoutMs(): number {
    return this.#o.commandTimeoutMs;
  }

  /**
   * First connection. Refused credentials, a failed TLS handshake and an ACL that forbids a command
   * are final: a StartupError naming the key at fault. An unreachable Redis is not (SPEC §9: a gate
   * recovers by itself when Redis returns): after STARTUP_ATTEMPTS its error is returned and the link
   * keeps trying in the background as after a lost connection (onState, onReady), so a gate started
   * during an outage answers 503 and is not ready until Redis answers, instead of exiting and waiting
   * out an orchestrator's restart backoff. A timeout is tried again at once too: a start-up that
   * blocks the event loop (a slow disk loading modules) can fire the connect timer after the socket
   * had in fact connected. Stopped meanwhile, it returns without a connection (the caller checks
   * its own stop).
   */
  async connect(): Promise<StartupError | undefined> {
    this.#stopped = false;
    for (let attempt = 1; ; attempt++) {
      try {
        this.#adopt(await connectOnce(this.#o, this.#o.name));
        return undefined;
      } catch (err) {
        if (!(err instanceof RedisUnreachableError)) throw err;
        // Stopped during the attempts (a start-up that failed elsewhere): no report, no retries.
        if (this.#stopped) return err;
        if (attempt >= STARTUP_ATTEMPTS) {
          this.#lastError = err;
          this.#o.onState?.(false, err);
          this.#schedule();
          return err;
        }
        await new Promise((r) => setTimeout(r, BACKOFF_MIN_MS * attempt));
      }
    }
  }

  /** Runs `op` on the ready connection within command_timeout; a timeout or lost connection reconnects. */
  async run<T>(what: string, op: (c: RedisClient) => Promise<T>, timeoutMs = this.#o.commandTimeoutMs): Promise<T> {
    const c = this.#client;
    if (c === undefined) throw new RedisUnavailableError(`${what}: not connected to Redis${this.#lastError ? ` (${this.#lastError.message})` : ''}`);
    this.#lastUse = Date.now();
    this.#inFlight++;
    try {
      return await withDeadline(op(c), timeoutMs, what);
    } catch (caught) {
      const err = plainReply(caught);
      // An error reply (WRONGTYPE…) leaves the connection fine; anything else (a timeout, a closed
      // socket) means this connection can no longer be trusted to answer.
      if (!isErrorReply(err)) this.fail(c, err as Error);
      throw err;
    } finally {
      this.#inFlight--;
      this.#lastUse = Date.now();
    }
  }

  /** Drops `c` (if still current) and reconnects with backoff. */
  fail(c: RedisClient, err: Error): void {
    if (this.#client !== c) return;
    this.#client = undefined;
    this.#stopBeat();
    this.#lastError = err;
    try {
      c.destroy();
    } catch {
      // already closed
    }
    this.#o.onState?.(false, err);
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#stopBeat();
    const c = this.#client;
    this.#client = undefined;
    if (c !== undefined) {
      try {
        c.destroy();
      } catch {
        // already closed
      }
    }
  }

  #adopt(c: RedisClient): void {
    if (this.#stopped) {
      c.destroy();
      return;
    }
    this.#client = c;
    this.#attempt = 0;
    this.#lastError = undefined;
    // Never remove a listener here (removeAllListeners, off): createClient hands out
    // Object.create(client), and removing the last listener through that wrapper gives the wrapper
    // a listener table of its own, while 'error' and 'end' are still emitted on the client inside.
    // Added through the wrapper, listeners land in the shared table. connectOnce's no-op stays
    // and is harmless now that this one reacts.
    c.on('error', (err: Error) => this.fail(c, err));
    c.on('end', () => this.fail(c, new Error('connection closed')));
    this.#lastUse = Date.now();
    const every = this.#o.heartbeatMs ?? HEARTBEAT_MS;
    this.#stopBeat();
    this.#beat = setInterval(() => {
      // Only on a connection with nothing under way (a long page read has its own deadline). A timeout
      // fails the connection inside run(): reported, replaced.
      if (this.#client === c && this.#inFlight === 0 && Date.now() - this.#lastUse >= every) this.run('heartbeat', (x) => x.ping()).catch(() => undefined);
    }, every);
    this.#beat.unref();
    this.#o.onState?.(true);
    this.#o.onReady?.(c);
  }

  #stopBeat(): void {
    if (this.#beat !== undefined) clearInterval(this.#beat);
    this.#beat = undefined;
  }

  #schedule(): void {
    if (this.#stopped || this.#timer !== undefined) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.#attempt++);
    // Full jitter on half the delay: a fleet that lost Redis together does not return in lockstep.
    const delay = base / 2 + Math.random() * (base / 2);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      connectOnce(this.#o, this.#o.name).then(
        (c) => this.#adopt(c),
        (err: Error) => {
          // Stopped while this attempt was under way (a shutdown while Redis is away): nothing to report.
          if (this.#stopped) return;
          this.#lastError = err;
          this.#o.onState?.(false, err);
          this.#schedule();
        },
      );
    }, delay);
    this.#timer.unref();
  }
}

/**
 * A failed MULTI says only "1 commands failed"; the operator needs the reply itself (WRONGTYPE…).
 * Returns the first error reply of a transaction, anything else unchanged.
 */
export function plainReply(err: unknown): unknown {
  if (err instanceof MultiErrorReply) {
    const first = err.replies[err.errorIndexes[0] ?? -1];
    if (first instanceof ErrorReply) return first;
  }
  return err;
}

/** Redis answered with an error (WRONGTYPE, NOPERM, …): the connection itself is fine. */
export function isErrorReply(err: unknown): boolean {
  return err instanceof ErrorReply;
}
