/**
 * SPEC §8 "one audit line per decision", for the refusals node:http makes before jitgate's handler
 * runs: a CONNECT (node's 'connect' event) and a head its parser rejects (clientError: `FOO /`,
 * `get /`, a bad header, a head over limits.max_header_bytes). The reason is already counted in
 * jitgate_decisions_total by the listener; this writes the line.
 *
 * Which ones get a line: those where a request line actually arrived — `METHOD SP target SP
 * HTTP/d.d`. A connection that sends nothing, a reset, a timeout, or bytes that are not HTTP at
 * all (a TLS handshake on the plain port, a scanner's probe) gets the answer and the count but no
 * line: the audit log records requests, and a port scanner must not be able to fill it with
 * connections. A request line costs the client what an ordinary refused request costs, and an
 * ordinary one is audited anyway.
 *
 * The line has the shape of any other 400 refusal: transport, status, reason, method, `path`
 * null, client address, no token fields (nothing was parsed), `latency_ms` 0 (no decision ran).
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { answerClientError, answerConnect } from './client-error.ts';
import { isMethodToken } from '../core/decide.ts';
import { deny, type DenyReason } from '../core/decision.ts';
import { REASONS } from '../core/reasons.ts';
import { parseTarget } from '../core/request-target.ts';
import type { Transport } from '../observability/metrics.ts';
import type { TransportContext } from './context.ts';

/** How far into the refused bytes a request line is looked for (node's own default head limit). */
const MAX_LINE = 16 * 1024;

/** The first line of the refused bytes, read as a request line: `METHOD SP target SP HTTP/d.d`. */
interface RequestLine {
  /** The bytes before the first space (not necessarily a valid method). */
  readonly method: string;
  /** Everything between the first space and ` HTTP/d.d` (spaces included: node refuses those). */
  readonly target: string;
  /** Where the line ends in the packet (its LF, or CR LF). */
  readonly end: number;
}

/**
 * The request line at the start of the bytes node:http refused (`err.rawPacket`), or undefined when
 * they do not begin with one (see the module comment): a first line, within MAX_LINE, that has a
 * non-empty method, a target, and ends in ` HTTP/d.d`.
 */
function requestLineOf(packet: unknown): RequestLine | undefined {
  if (!Buffer.isBuffer(packet)) return undefined;
  const limit = Math.min(packet.length, MAX_LINE);
  const sp = packet.indexOf(0x20);
  if (sp <= 0 || sp >= limit) return undefined;
  const eol = packet.indexOf(0x0a, sp);
  if (eol === -1 || eol >= limit) return undefined;
  const end = packet[eol - 1] === 0x0d ? eol - 1 : eol;
  // ` HTTP/d.d` closes a request line, with a target between it and the method.
  const v = end - 9;
  if (v <= sp + 1 || packet.toString('latin1', v, v + 6) !== ' HTTP/' || !isDigit(packet[v + 6]!) || packet[v + 7] !== 0x2e || !isDigit(packet[v + 8]!)) return undefined;
  return { method: packet.toString('latin1', 0, sp), target: packet.toString('latin1', sp + 1, v), end };
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** The method of the request line at the start of the refused bytes, when it is a method token. */
export function requestLineMethod(packet: unknown): string | undefined {
  return methodOf(requestLineOf(packet));
}

function methodOf(line: RequestLine | undefined): string | undefined {
  return line !== undefined && isMethodToken(line.method) ? line.method : undefined;
}

/** What node:http's parser attaches to a `clientError` (`prepareError` in node's _http_server). */
type ParserError = NodeJS.ErrnoException & { rawPacket?: unknown; bytesParsed?: unknown };

/** The gate policy's target rules (GatePolicy), as the decision core applies them. */
type TargetLimits = { readonly maxTargetLength: number; readonly allowDotLikeSegments?: boolean };

/**
 * SPEC §3's precise reason for a request line node's parser refused, when the fault is in that
 * line: the reason the decision core gives the same method or target on the transports where it
 * sees them (gRPC, forward-auth) — `bad_method` for `G(T`, `path_control_char` for a raw space,
 * tab or non-ASCII byte, `bad_request_target` for authority-form. Undefined when the parser
 * stopped after the line (a bad header: plain `bad_request`), or the line holds nothing the core
 * refuses (`FOO`, `get`: valid method tokens node's parser does not know).
 */
function requestLineReason(err: ParserError, line: RequestLine | undefined, policy: TargetLimits): DenyReason | undefined {
  // A head too large or too slow keeps its own reason (431, 408), wherever it stopped.
  if (err.code === undefined || !err.code.startsWith('HPE_') || err.code === 'HPE_HEADER_OVERFLOW') return undefined;
  if (line === undefined || typeof err.bytesParsed !== 'number' || err.bytesParsed > line.end) return undefined;
  if (!isMethodToken(line.method)) return 'bad_method';
  if (line.method === 'CONNECT') return undefined; // node hands a CONNECT to the 'connect' listener, or refuses its head
  const parsed = parseTarget(line.target, policy.maxTargetLength, policy.allowDotLikeSegments === true);
  return parsed.ok ? undefined : parsed.reason;
}

/** The audit line for a refusal made before any decision (node:http's, a connection's pipelining cap); never throws (the answer is already on the wire). */
export function auditEarlyRefusal(ctx: TransportContext, transport: Transport, reason: DenyReason, method: string, socket: Duplex): void {
  try {
    const client = (socket as { remoteAddress?: string }).remoteAddress;
    ctx.audit.record({ transport, method, decision: deny(reason), status: REASONS[reason].status, latencyMs: 0, client });
  } catch (err) {
    ctx.logger.error({ err, transport }, 'recording a refusal made before the decision failed');
  }
}

/**
 * The `clientError` and `connect` listeners of a traffic-facing node:http server (the proxy, the
 * ext_authz HTTP service): each refusal node:http makes is answered and counted, and audited when
 * a request line arrived.
 */
export function refuseEarly(server: Server | HttpsServer, ctx: TransportContext, transport: Transport): void {
  server.on('clientError', (err: ParserError, socket: Duplex) => {
    const line = requestLineOf(err.rawPacket);
    const reason = answerClientError(err, socket, requestLineReason(err, line, ctx.gate.policy));
    if (reason === undefined) return;
    ctx.metrics.recordReason(transport, reason);
    // A request line whose method is no token (`G(T /x`) is refused for that method, as forward-auth
    // and gRPC refuse it: audited with the method as sent, or the count and the trail disagree (a probe).
    const method = reason === 'bad_method' ? line?.method : methodOf(line);
    if (method !== undefined) auditEarlyRefusal(ctx, transport, reason, method, socket);
  });
  // Envoy sends a CONNECT request's check with method CONNECT: an explicit 400 denial, not a closed socket.
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    const reason = answerConnect(socket);
    ctx.metrics.recordReason(transport, reason);
    auditEarlyRefusal(ctx, transport, reason, req.method ?? 'CONNECT', socket);
  });
}
