/**
 * One JSON line per decision (SPEC §8): time, allow/deny, reason, status, method, normalized path
 * (no query), sub, jti, iss, txn, act, the matching grant entry and latency. Built from the
 * Decision alone — the token and the Authorization header never reach this module.
 *
 * The line is pino's, assembled ahead of time the way pino itself builds lines (STYLE habit 7):
 * the level/time/bindings prefix comes from the logger, the token's fields (sub, jti, iss, txn,
 * act, redacted) are serialized by pino once per verified token and kept on it (its `memo`), and
 * the request's own fields are appended. At start the assembly is checked against pino's own
 * serialization of the same record; a logger configured in a way that check does not cover
 * (mixin, hooks, log formatter, multistream) simply gets every line through `logger.info`.
 */
import pino, { type Logger } from 'pino';
import type { ClientCert } from '../core/cert-binding.ts';
import { auditIdsOf, type Decision } from '../core/decision.ts';
import type { VerifiedToken } from '../core/verified-token.ts';
import { StartupError } from '../errors.ts';
import { AuditChain, type ChainOptions } from './audit-chain.ts';
import { REDACT, REDACT_CENSOR } from './logger.ts';
import type { Transport } from './metrics.ts';

export interface AuditRecord {
  readonly transport: Transport;
  readonly method: string;
  readonly decision: Decision;
  /** The status jitgate answered or the upstream returned. */
  readonly status: number;
  readonly latencyMs: number;
  /**
   * What became of the answer, overriding the decision's reason: the proxy's upstream_unreachable,
   * upstream_tls, upstream_timeout, body_timeout, client_stalled, shutdown_cut; ext_authz gRPC's deadline_exceeded
   * (decided after the call's deadline).
   */
  readonly outcome?: string;
  /** The client's address as this transport knows it (the TCP peer; Envoy's source address for gRPC). */
  readonly client?: string;
  /** The connection's client certificate (SPEC §11); else the one the decision carries, if any. */
  readonly clientCert?: ClientCert | undefined;
}

const INFO = 30;
/** pino's public symbols (`pino.symbols`); its type declarations lack a few of them. */
const S = pino.symbols as unknown as Readonly<Record<string, symbol>>;

/** The pieces of a pino child's line that do not change from one record to the next. */
interface Prebuilt {
  /** `{"level":"info"` (after the level formatter). */
  readonly head: string;
  /** `,"time":"…"`, from the logger's own timestamp function. */
  readonly time: () => string;
  /** `,"pid":…,"type":"audit"`. */
  readonly bindings: string;
  /** `}` and the line end. */
  readonly end: string;
  readonly stream: { write(line: string): unknown };
  /** pino's serialization of `obj`'s properties: `,"k":v…` with redaction applied. */
  props(obj: object): string;
}

/** HTTP methods whose JSON form is kept; any other method string is serialized per line (and never stored). */
const METHOD_JSON: ReadonlyMap<string, string> = new Map(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT'].map((m) => [m, JSON.stringify(m)]));

/** A refused method longer than this is written cut, with `…`: a method token is at most 32 characters. */
const MAX_AUDIT_METHOD = 64;

/**
 * The method as the audit line names it. A refused method (`bad_method`) is whatever the client sent
 * before its first space, up to the 16 KiB the request line is read in: written whole, any client
 * made a 15 KB audit line with one request (a re-probe).
 */
export function auditMethod(method: string): string {
  if (method.length <= MAX_AUDIT_METHOD) return method;
  // Cut between code points: half a surrogate pair is a lone surrogate escape strict JSON readers refuse (a re-probe).
  const end = isHighSurrogate(method.charCodeAt(MAX_AUDIT_METHOD - 1)) ? MAX_AUDIT_METHOD - 1 : MAX_AUDIT_METHOD;
  return `${method.slice(0, end)}…`;
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

export class AuditLog {
  readonly #log: Logger | undefined;
  readonly #pre: Prebuilt | undefined;
  /** Client certificate → its serialized fields (one object per TLS connection or forwarded certificate). */
  readonly #certs = new WeakMap<ClientCert, string>();
  /**
   * `,"transport":…,"decision":…,"reason":…` by decision, transport and reason (fixed lists). Nested
   * maps keyed by the constant strings themselves: no key is built or hashed per line.
   */
  readonly #kinds = { allow: new Map<string, Map<string, string>>(), deny: new Map<string, Map<string, string>>() };
  /** SPEC §12 `log.audit_chain`: every line written goes through it (seq, prev). */
  #chain: AuditChain | undefined;
  /**
   * A token's fields written without pino when they need no escaping and no redaction (plainTokenFields);
   * on only while the start-up check finds them byte for byte what pino writes.
   */
  #plainFields = false;

  /**
   * `logger` undefined disables audit lines (log.audit: false). The audit child logs at info whatever
   * `log.level` says: SPEC §8 wants one line per decision, and a gate quieted to `warn` kept deciding
   * with no trail (and no audit chain, checkpoints or anomaly_revoked lines) until 2026-12-07 night.
   */
  constructor(logger: Logger | undefined) {
    this.#log = logger?.child({ type: 'audit' }, { level: 'info', redact: { paths: auditRedactPaths(REDACT), censor: REDACT_CENSOR } });
    this.#pre = this.#log === undefined ? undefined : prebuild(this.#log);
    if (this.#pre !== undefined && !this.#selfCheck()) this.#pre = undefined;
    if (this.#pre !== undefined) this.#plainFields = this.#plainCheck();
  }

  get enabled(): boolean {
    return this.#log !== undefined;
  }

  /** True when lines are assembled from prebuilt pieces (false: every line through `logger.info`). */
  get prebuilt(): boolean {
    return this.#pre !== undefined;
  }

  // No level check: the audit child logs at info whatever log.level says (constructor).
  record(r: AuditRecord): void {
    const log = this.#log;
    if (log === undefined) return;
    const pre = this.#pre;
    if (pre === undefined) log.info(auditObject(r));
    else this.#write(pre, this.#line(pre, r, pre.time()));
  }

  /**
   * A line that is not a request decision (anomaly_revoked, chain start, checkpoint): `fields` after
   * the bindings. `time` (ISO, the logger's own format) replaces the clock's: a checkpoint's outer
   * time is the one it signs.
   */
  recordEvent(fields: object, time?: string): void {
    const log = this.#log;
    if (log === undefined) return;
    const pre = this.#pre;
    if (pre === undefined) log.info(fields);
    else this.#write(pre, `${pre.head}${time === undefined ? pre.time() : `,"time":${JSON.stringify(time)}`}${pre.bindings}${pre.props(fields)}${pre.end}`);
  }

  #write(pre: Prebuilt, line: string): void {
    const chain = this.#chain;
    pre.stream.write(chain === undefined ? line : chain.link(line, pre.end.length - 1));
  }

  /**
   * SPEC §12: from now on every audit line is chained; continues the destination's chain (async
   * tail read) and writes the chain_start line. Needs the prebuilt line path (the logger
   * createLogger makes); a logger that changes lines per call cannot be chained.
   */
  async startChain(options: Omit<ChainOptions, 'emit' | 'writeRaw'>): Promise<AuditChain | undefined> {
    const pre = this.#pre;
    if (this.#log === undefined) return undefined;
    if (pre === undefined) throw new StartupError('log.audit_chain: this logger rewrites lines per call (mixin, hooks or formatters), so audit lines cannot be chained');
    const chain = new AuditChain({ ...options, emit: (f, t) => this.recordEvent(f, t), writeRaw: (t) => pre.stream.write(t) });
    this.#chain = chain;
    await chain.start();
    return chain;
  }

  /** Graceful shutdown: the final checkpoint (with a key) and no more timers. */
  closeChain(): void {
    this.#chain?.close();
  }

  #line(pre: Prebuilt, r: AuditRecord, time: string): string {
    const d = r.decision;
    const t = auditIdsOf(d);
    const reason = r.outcome ?? d.reason;
    const decision = d.kind === 'allow' ? 'allow' : 'deny';
    let byReason = this.#kinds[decision].get(r.transport);
    if (byReason === undefined) this.#kinds[decision].set(r.transport, (byReason = new Map()));
    let kind = byReason.get(reason);
    if (kind === undefined) {
      kind = pre.props({ transport: r.transport, decision, reason });
      byReason.set(reason, kind);
    }
    let line = `${pre.head}${time}${pre.bindings}${kind},"status":${r.status},"method":${METHOD_JSON.get(r.method) ?? JSON.stringify(auditMethod(r.method))}`;
    if (d.path !== undefined) line += `,"path":${JSON.stringify(d.path)}`;
    if (r.client !== undefined) line += `,"client":${JSON.stringify(r.client)}`;
    if (t !== null) {
      // A cached token is the same object on every hit, so its fields are serialized once (a refused
      // token's ids have no memo: serialized per line).
      const memo = (t as Partial<VerifiedToken>).memo;
      let tf = memo?.auditBy === pre ? memo.auditFields : undefined;
      if (tf === undefined) {
        tf = (this.#plainFields ? plainTokenFields(t) : undefined) ?? pre.props({ sub: t.sub, jti: t.jti, iss: t.iss, txn: t.txn, act: auditAct(t.act) });
        if (memo !== undefined) {
          memo.auditFields = tf;
          memo.auditBy = pre;
        }
      }
      line += tf;
    }
    if (d.kind === 'allow' && d.grantIndex >= 0) line += `,"grant":${d.grantIndex}`;
    const cert = certOf(r);
    if (cert !== undefined) {
      let cf = this.#certs.get(cert);
      if (cf === undefined) {
        cf = pre.props({ client_cert_sha256: cert.sha256, spiffe_id: cert.spiffeId });
        this.#certs.set(cert, cf);
      }
      line += cf;
    }
    return `${line},"latency_ms":${Math.round(r.latencyMs * 1000) / 1000}${pre.end}`;
  }

  /** With plain token fields written directly, the line still equals pino's own (e.g. no redaction path names `sub`). */
  #plainCheck(): boolean {
    this.#plainFields = true;
    let same = true;
    for (const txn of ['txn 4 !#$%&()*+,./;<=>?[]^`{|}', undefined]) {
      const token = { iss: 'https://issuer.example', sub: 'spiffe://a/b-c_d.e~f', jti: 'j-1:2@3', txn, memo: {} };
      const probe: AuditRecord = { transport: 'proxy', method: 'GET', decision: { kind: 'allow', reason: 'granted', path: '/a', query: '', token: token as never, grantIndex: 0 }, status: 200, latencyMs: 1 };
      same &&= this.#sameAsPino(probe) && (token.memo as { auditFields?: string }).auditFields === plainTokenFields(token);
    }
    return same;
  }

  /** The assembled line equals pino's own for a record exercising every field (act redaction included). */
  #selfCheck(): boolean {
    const act = { sub: 'spiffe://actor "x"', token: 'probe', authorization: 'probe', dpop: 'kept' };
    const token = { iss: 'https://issuer', sub: 'spiffe://a/\u00e9\n', jti: 'j"1', txn: 't\\1', act };
    const probe: AuditRecord = {
      transport: 'proxy',
      method: 'PATCH',
      decision: { kind: 'allow', reason: 'granted', path: '/a/%22b', query: '', token: token as never, grantIndex: 2 },
      status: 200,
      latencyMs: 0.12345,
      client: '::ffff:127.0.0.1',
    };
    return this.#sameAsPino(probe);
  }

  /** A start-up probe: the assembled line equals pino's serialization of the same record (the kinds it cached are dropped). */
  #sameAsPino(probe: AuditRecord): boolean {
    const ours = this.#line(this.#pre!, probe, ',"time":"T"');
    this.#kinds.allow.clear();
    this.#kinds.deny.clear();
    const theirs = (this.#log as unknown as Record<symbol, (o: object, m: undefined, n: number, t: string) => string>)[S.asJsonSym!]!(auditObject(probe), undefined, INFO, ',"time":"T"');
    return ours === theirs;
  }
}

/** Printable ASCII other than `"` and `\`: its JSON text is itself in quotes, for pino as for JSON.stringify. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/**
 * `,"sub":…,"jti":…,"iss":…[,"txn":…]` for a token without `act` (whose members redaction may censor)
 * whose strings need no escaping, else undefined (pino serializes them). A token seen for the first
 * time cost 0.9–1.3 µs through pino, against 0.43 µs this way (bench/micro/cold-path.ts; bench/README.md).
 */
export function plainTokenFields(t: { sub: string | undefined; jti: string | undefined; iss: string; txn?: string | undefined; act?: unknown }): string | undefined {
  // A refused token's ids may lack sub or jti: pino leaves the field out (RegExp.test would read "undefined").
  if (t.act !== undefined || t.sub === undefined || t.jti === undefined || !PLAIN.test(t.sub) || !PLAIN.test(t.jti) || !PLAIN.test(t.iss)) return undefined;
  if (t.txn === undefined) return `,"sub":"${t.sub}","jti":"${t.jti}","iss":"${t.iss}"`;
  return PLAIN.test(t.txn) ? `,"sub":"${t.sub}","jti":"${t.jti}","iss":"${t.iss}","txn":"${t.txn}"` : undefined;
}

/** The certificate an audit line names: the transport's, else the one a decision carries. */
function certOf(r: AuditRecord): ClientCert | undefined {
  const d = r.decision;
  return r.clientCert ?? (d.kind === 'unavailable' ? undefined : d.clientCert);
}

function auditObject(r: AuditRecord): Record<string, unknown> {
  const d = r.decision;
  const t = auditIdsOf(d);
  return {
    transport: r.transport,
    decision: d.kind === 'allow' ? 'allow' : 'deny',
    reason: r.outcome ?? d.reason,
    status: r.status,
    method: auditMethod(r.method),
    path: d.path,
    client: r.client,
    sub: t?.sub,
    jti: t?.jti,
    iss: t?.iss,
    txn: t?.txn,
    act: auditAct(t?.act),
    grant: d.kind === 'allow' && d.grantIndex >= 0 ? d.grantIndex : undefined,
    client_cert_sha256: certOf(r)?.sha256,
    spiffe_id: certOf(r)?.spiffeId,
    latency_ms: Math.round(r.latencyMs * 1000) / 1000,
  };
}

/** The logger's fixed line pieces, or undefined when its configuration could change a line per call. */
function prebuild(log: Logger): Prebuilt | undefined {
  const l = log as unknown as Record<symbol, unknown>;
  const hooks = l[S.hooksSym!] as { logMethod?: unknown; streamWrite?: unknown } | undefined;
  const formatters = l[S.formattersSym!] as { log?: unknown } | undefined;
  const stream = l[S.streamSym!] as { write(s: string): unknown } & Record<symbol, unknown>;
  if (l[S.mixinSym!] || hooks?.logMethod || hooks?.streamWrite || formatters?.log || typeof l[S.msgPrefixSym!] === 'string' || l[S.nestedKeySym!] || stream[S.needsMetadataGsym!] === true) {
    return undefined;
  }
  const head = (l[S.lsCacheSym!] as Record<number, string>)[INFO];
  const bindings = l[S.chindingsSym!];
  const end = l[S.endSym!];
  const time = l[S.timeSym!];
  const asJson = l[S.asJsonSym!] as (o: object, m: undefined, n: number, t: string) => string;
  if (typeof head !== 'string' || typeof bindings !== 'string' || typeof end !== 'string' || typeof time !== 'function' || typeof asJson !== 'function') return undefined;
  const skip = head.length + bindings.length;
  return {
    head,
    time: (time as () => string).bind(log),
    bindings,
    end,
    stream,
    props: (obj) => asJson.call(log, obj, undefined, INFO, '').slice(skip, -end.length),
  };
}

/**
 * The logger's redaction paths for the audit line's fixed shape. A wildcard path (`*.token`) makes
 * pino run its redactor over every value of every line, which was most of an audit line's cost
 * (bench/README.md). Here `act` is the only field that can hold an object, so what `*.x` censors is
 * censored by auditAct, and pino gets every other path as it is.
 */
export function auditRedactPaths(paths: readonly string[]): string[] {
  return paths.filter((p) => !p.startsWith('*.'));
}

/** The members of `act` the logger's wildcard paths (`*.x`) censor. */
const ACT_CENSORED: readonly string[] = REDACT.filter((p) => p.startsWith('*.')).map((p) => p.slice(2));

/**
 * `act` as the audit line shows it: the members the logger's `*.x` paths name censored, everything
 * else as signed. Done here rather than by pino's redactor, which copies a redacted object member by
 * member with plain assignment: an own `__proto__` member (JSON allows one, and an issuer may sign
 * it) became the copy's prototype and vanished from the line (a black-box probe, 2026-12-07). A
 * spread copies it as a member.
 */
export function auditAct(act: unknown): unknown {
  if (act === null || typeof act !== 'object' || Array.isArray(act)) return act;
  let copy: Record<string, unknown> | undefined;
  for (const name of ACT_CENSORED) {
    if (Object.hasOwn(act, name)) {
      copy ??= { ...(act as Record<string, unknown>) };
      copy[name] = REDACT_CENSOR;
    }
  }
  return copy ?? act;
}
