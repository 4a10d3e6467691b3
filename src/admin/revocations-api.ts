/**
 * Admin revocation API (SPEC §5, §8), mounted on the admin listener:
 *
 *   POST /revocations   one entry object or an array of them (JSON). All-or-nothing: every entry
 *                       is validated first (400 names the index and field); then they are written
 *                       to the journal and fsynced, and only then enforced and answered 201.
 *   GET  /revocations   entry counts and sync status per source.
 *
 * Both require `Authorization: Bearer <admin token>` (401 otherwise). Without `admin.token_file`
 * the API is disabled (403); without `revocation.journal` POST answers 503, because an entry must
 * never be acknowledged without being durable.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import { duplicateOrTooDeep } from '../core/json-duplicates.ts';
import { parseJson } from '../core/json-parse.ts';
import { parseEntry, type RevocationEntry } from '../revocation/entries.ts';
import { JournalRevocationSource } from '../revocation/journal-source.ts';
import type { RevocationList } from '../revocation/revocation-list.ts';
import type { TransportContext } from '../transports/context.ts';
import { RedisUnavailableError } from '../fleet/redis-errors.ts';
import { loadAdminToken } from './admin-token.ts';

/** Handles `/revocations` requests; returns false when the path is not its own. */
export type AdminRoute = (req: IncomingMessage, res: ServerResponse) => boolean;

export const REVOCATIONS_PATH = '/revocations';
/** Bulk loads belong in `revocation.file` or `revocation.url`; the API is for a handful at a time. */
export const MAX_BODY_BYTES = 1024 * 1024;
export const MAX_ENTRIES_PER_REQUEST = 10_000;

const CHALLENGE = 'Bearer realm="jitgate-admin"';

function send(res: ServerResponse, status: number, body: object, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
    ...extra,
  });
  res.end(text);
}

/** A 4xx before the body was read: close the connection rather than read what was refused. */
function refuse(res: ServerResponse, status: number, body: object, extra: Record<string, string> = {}): void {
  send(res, status, body, { connection: 'close', ...extra });
}

/** The body as text, or undefined after answering 413. */
function readBody(req: IncomingMessage, res: ServerResponse): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      total += chunk.length;
      if (total > MAX_BODY_BYTES) {
        over = true;
        refuse(res, 413, { error: 'invalid_request', reason: 'body_too_large', message: `the body exceeds ${MAX_BODY_BYTES} bytes` });
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!over) resolve(Buffer.concat(chunks, total).toString('utf8'));
    });
    // The client went away mid-body: nothing to answer, nothing accepted.
    req.on('close', () => resolve(undefined));
    req.on('error', reject);
  });
}

interface Problem {
  readonly index: number;
  readonly message: string;
}

/** The entries of a POST body, or the problems found (each with the index of its entry). */
export function parseEntries(value: unknown): { entries: RevocationEntry[] } | { problems: Problem[] } {
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) return { problems: [{ index: -1, message: 'the array holds no entry' }] };
  if (list.length > MAX_ENTRIES_PER_REQUEST) {
    return { problems: [{ index: -1, message: `at most ${MAX_ENTRIES_PER_REQUEST} entries per request` }] };
  }
  const entries: RevocationEntry[] = [];
  const problems: Problem[] = [];
  for (let i = 0; i < list.length; i++) {
    const e = parseEntry(list[i]);
    if (typeof e === 'string') problems.push({ index: i, message: `entries[${i}]: ${e}` });
    else entries.push(e);
  }
  return problems.length > 0 ? { problems: problems.slice(0, 20) } : { entries };
}

function kindOf(name: string): string {
  const colon = name.indexOf(':');
  return colon === -1 ? name : name.slice(0, colon);
}

/**
 * Where accepted entries go. One process: the gate's journal source. A cluster primary: its own
 * journal, then every worker over IPC (src/cluster.ts).
 */
export interface RevocationStore {
  /** The journal file; undefined when none is configured (then POST answers 503 unless `redis` is set). */
  readonly journalFile: string | undefined;
  /** Set when entries are written to Redis (revocation.redis, src/admin/revocation-store.ts): where. */
  readonly redis?: string;
  /** Durable first, then enforced everywhere; resolves with the journal's entry count. */
  append(entries: readonly RevocationEntry[]): Promise<number>;
  /** The body of `GET /revocations` (a cluster primary on Redis asks Redis for its count). */
  status(): object | Promise<object>;
}

/** The entries are durable but not confirmed as enforced everywhere (a cluster worker did not answer). */
export class NotEnforcedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotEnforcedError';
  }
}

/** The store of a single-process gate: its journal source, and every source's status. */
export function gateRevocationStore(gate: TransportContext['gate']): RevocationStore {
  const journal = gate.revocation.sources.find((s): s is JournalRevocationSource => s instanceof JournalRevocationSource);
  return {
    journalFile: journal?.file,
    async append(entries) {
      await journal!.append(entries);
      return journal!.index.size;
    },
    status: () => revocationStatus(gate.revocation, journal, gate.clock.nowMs()),
  };
}

/** The body of `GET /revocations` for these sources: entry counts, sync age and staleness per source. */
export function revocationStatus(revocation: RevocationList, journal: JournalRevocationSource | undefined, nowMs: number): RevocationStatus {
  const list = revocation.sources.map((s) => {
    const age = s.lastSyncAt === undefined ? null : nowMs - s.lastSyncAt;
    return {
      name: s.name,
      kind: kindOf(s.name),
      entries: s.index.size,
      last_sync_at: s.lastSyncAt === undefined ? null : new Date(s.lastSyncAt).toISOString(),
      age_ms: age,
      max_stale_ms: s.maxStaleMs ?? null,
      stale: s.maxStaleMs !== undefined && (age === null || age > s.maxStaleMs),
    };
  });
  return { entries: revocation.size, stale: list.some((s) => s.stale), journal: journal === undefined ? null : journal.file, sources: list };
}

export interface RevocationStatus {
  readonly entries: number;
  readonly stale: boolean;
  readonly journal: string | null;
  readonly sources: readonly object[];
}

export function createRevocationsApi(ctx: TransportContext): AdminRoute {
  return revocationsRoute(ctx.revocations ?? gateRevocationStore(ctx.gate), ctx.config, ctx.logger);
}

export function revocationsRoute(store: RevocationStore, config: Config, logger: Logger): AdminRoute {
  const log = logger.child({ component: 'revocations-api' });
  const token = loadAdminToken(config.admin.token_file);
  if (token === undefined) log.info('admin.token_file is not set: the revocation API refuses every call');
  else if (token.weak) log.warn('the admin token is shorter than 16 characters; use a long random token');

  async function status(res: ServerResponse): Promise<void> {
    send(res, 200, await store.status());
  }

  async function post(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const journalFile = store.journalFile;
    if (journalFile === undefined && store.redis === undefined) {
      refuse(res, 503, { error: 'unavailable', reason: 'journal_not_configured', message: 'revocation.journal is not configured: entries cannot be made durable, so none are accepted' });
      return;
    }
    const type = req.headers['content-type'] ?? '';
    if (!/^application\/json\s*(;|$)/i.test(type)) {
      refuse(res, 415, { error: 'invalid_request', reason: 'unsupported_media_type', message: 'send the entries as application/json' });
      return;
    }
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) {
      refuse(res, 413, { error: 'invalid_request', reason: 'body_too_large', message: `the body exceeds ${MAX_BODY_BYTES} bytes` });
      return;
    }
    const text = await readBody(req, res);
    if (text === undefined) return;
    let value: unknown;
    try {
      value = parseJson(text);
    } catch {
      send(res, 400, { error: 'invalid_request', reason: 'invalid_json', message: 'the body is not valid JSON' });
      return;
    }
    // {"jti":"a","jti":"b"} is read last-wins by JSON.parse and first-wins elsewhere: ambiguous, refused.
    if (duplicateOrTooDeep(text, value)) {
      send(res, 400, { error: 'invalid_request', reason: 'invalid_json', message: 'the body names a member twice in one object (or nests too deep)' });
      return;
    }
    const parsed = parseEntries(value);
    if ('problems' in parsed) {
      send(res, 400, { error: 'invalid_request', reason: 'invalid_entry', message: parsed.problems[0]!.message, problems: parsed.problems });
      return;
    }
    const started = performance.now();
    let total: number;
    try {
      total = await store.append(parsed.entries);
    } catch (err) {
      if (err instanceof RedisUnavailableError) {
        log.error({ err: err.message, redis: store.redis }, 'revocations not acknowledged by Redis; not accepted');
        send(res, 503, { error: 'unavailable', reason: 'redis_unavailable', message: 'Redis did not acknowledge the entries; send them again' });
        return;
      }
      if (err instanceof NotEnforcedError) {
        log.error({ err: err.message, journal: journalFile }, 'revocations written to the journal but not confirmed by every worker');
        send(res, 503, { error: 'unavailable', reason: 'not_enforced', message: `the entries are durable but not confirmed everywhere (${err.message}); send them again` });
        return;
      }
      log.error({ err: (err as Error).message, journal: journalFile }, 'revocation journal write failed; entries not accepted');
      send(res, 500, { error: 'internal', reason: 'journal_write_failed', message: 'the entries could not be made durable and were not accepted' });
      return;
    }
    const kinds = { jti: 0, sub: 0, txn: 0 };
    for (const e of parsed.entries) kinds[e.kind]++;
    log.info({ accepted: parsed.entries.length, ...kinds, remote: req.socket.remoteAddress, duration_ms: Math.round(performance.now() - started) }, 'revocations accepted');
    send(res, 201, { accepted: parsed.entries.length, entries: total });
  }

  return (req, res) => {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    if ((q === -1 ? url : url.slice(0, q)) !== REVOCATIONS_PATH) return false;
    if (token === undefined) {
      refuse(res, 403, { error: 'forbidden', reason: 'api_disabled', message: 'the revocation API is disabled: set admin.token_file to enable it' });
      return true;
    }
    if (!token.matches(req.headers.authorization)) {
      const challenge = req.headers.authorization === undefined ? CHALLENGE : `${CHALLENGE}, error="invalid_token"`;
      refuse(res, 401, { error: 'unauthorized', reason: 'admin_token_required', message: 'send the admin token as a Bearer token' }, { 'www-authenticate': challenge });
      return true;
    }
    if (req.method === 'GET') {
      status(res).catch((err: unknown) => {
        log.error({ err: (err as Error).message }, 'revocation status request failed');
        if (!res.headersSent) send(res, 500, { error: 'internal', reason: 'internal_error', message: 'the request failed' });
      });
      return true;
    }
    if (req.method !== 'POST') {
      refuse(res, 405, { error: 'invalid_request', reason: 'method_not_allowed', message: 'use GET or POST' }, { allow: 'GET, POST' });
      return true;
    }
    post(req, res).catch((err: unknown) => {
      log.error({ err: (err as Error).message }, 'revocation API request failed');
      if (!res.headersSent) send(res, 500, { error: 'internal', reason: 'internal_error', message: 'the request failed' });
      else res.destroy();
    });
    return true;
  };
}
