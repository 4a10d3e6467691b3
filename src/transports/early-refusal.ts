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
import type { Transport } from '../observability/metrics.ts';
import type { TransportContext } from './context.ts';

/** How far into the refused bytes a request line is looked for (node's own default head limit). */
const MAX_LINE = 16 * 1024;

/**
 * The method of the request line at the start of the bytes node:http refused (`err.rawPacket`),
 * or undefined when they do not begin with one (see the module comment).
 */
export function requestLineMethod(packet: unknown): string | undefined {
  if (!Buffer.isBuffer(packet)) return undefined;
  const end = Math.min(packet.length, MAX_LINE);
  // The method is 1–32 token characters (the decision core's own rule) ending at the first space.
  const sp = packet.indexOf(0x20);
  if (sp <= 0 || sp >= end) return undefined;
  const method = packet.toString('latin1', 0, sp);
  if (!isMethodToken(method)) return undefined;
  const eol = packet.indexOf(0x0a, sp);
  if (eol === -1 || eol >= end) return undefined;
  const lineEnd = packet[eol - 1] === 0x0d ? eol - 1 : eol;
  // ` HTTP/d.d` closes a request line, with a target between it and the method.
  const v = lineEnd - 9;
  if (v <= sp + 1 || packet.toString('latin1', v, v + 6) !== ' HTTP/' || !isDigit(packet[v + 6]!) || packet[v + 7] !== 0x2e || !isDigit(packet[v + 8]!)) return undefined;
  return method;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** The audit line for a refusal node:http made; never throws (the answer is already on the wire). */
export function auditEarlyRefusal(ctx: TransportContext, transport: Transport, reason: DenyReason, method: string, socket: Duplex): void {
  try {
    const client = (socket as { remoteAddress?: string }).remoteAddress;
    ctx.audit.record({ transport, method, decision: deny(reason), status: REASONS[reason].status, latencyMs: 0, client });
  } catch (err) {
    ctx.logger.error({ err, transport }, 'recording a refusal made by the HTTP parser failed');
  }
}

/**
 * The `clientError` and `connect` listeners of a traffic-facing node:http server (the proxy, the
 * ext_authz HTTP service): each refusal node:http makes is answered and counted, and audited when
 * a request line arrived.
 */
export function refuseEarly(server: Server | HttpsServer, ctx: TransportContext, transport: Transport): void {
  server.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: unknown }, socket: Duplex) => {
    const reason = answerClientError(err, socket);
    if (reason === undefined) return;
    ctx.metrics.recordReason(transport, reason);
    const method = requestLineMethod(err.rawPacket);
    if (method !== undefined) auditEarlyRefusal(ctx, transport, reason, method, socket);
  });
  // Envoy sends a CONNECT request's check with method CONNECT: an explicit 400 denial, not a closed socket.
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    const reason = answerConnect(socket);
    ctx.metrics.recordReason(transport, reason);
    auditEarlyRefusal(ctx, transport, reason, req.method ?? 'CONNECT', socket);
  });
}
