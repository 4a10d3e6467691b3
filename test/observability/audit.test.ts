/**
 * The audit line (SPEC §8): its own redaction list, derived from the logger's for speed, must
 * censor exactly what the logger's wildcard list censors on an audit record.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { Allow } from '../../src/core/decision.ts';
import type { VerifiedToken } from '../../src/core/verified-token.ts';
import { AuditLog, auditRedactPaths } from '../../src/observability/audit.ts';
import { createLogger, isoTimePerMs, REDACT } from '../../src/observability/logger.ts';

function recorder(): { lines: Record<string, unknown>[]; stream: Writable } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, stream };
}

const flush = () => new Promise((r) => setImmediate(r));

/** An allow whose `act` claim carries names the logger censors, one level deep and deeper. */
function allowWithAct(act: unknown): Allow {
  const token = { iss: 'https://issuer', sub: 'spiffe://a', jti: 'j-1', txn: 't-1', act } as unknown as VerifiedToken;
  return { kind: 'allow', reason: 'granted', path: '/orders/1', query: '', token, grantIndex: 0 };
}

describe('audit line redaction', () => {
  it('turns each wildcard path into the same path under act and keeps the others', () => {
    expect(auditRedactPaths(['authorization', 'headers.dpop', '*.token'])).toEqual(['authorization', 'headers.dpop', 'act.token']);
  });

  it('censors what the logger wildcard list censors on the same record', async () => {
    const act = { sub: 'spiffe://actor', token: 'secret-1', authorization: 'Bearer secret-2', dpop: 'kept', act: { token: 'nested' } };
    const fast = recorder();
    new AuditLog(createLogger({ level: 'info', destination: 'stdout' }, fast.stream)).record({ transport: 'proxy', method: 'GET', decision: allowWithAct(act), status: 200, latencyMs: 0.1 });

    // The reference: the same audit record through the logger's own (wildcard) redaction.
    const ref = recorder();
    const refLogger = createLogger({ level: 'info', destination: 'stdout' }, ref.stream).child({ type: 'audit' });
    refLogger.info({ act });
    await flush();

    const line = fast.lines.find((l) => l.type === 'audit')!;
    expect(line.act).toEqual(ref.lines[0]!.act);
    expect(line.act).toEqual({ sub: 'spiffe://actor', token: '[redacted]', authorization: '[redacted]', dpop: 'kept', act: { token: 'nested' } });
    expect(REDACT.filter((p) => p.startsWith('*.')).length).toBeGreaterThan(0);
  });

  it('writes the fixed fields', async () => {
    const r = recorder();
    new AuditLog(createLogger({ level: 'info', destination: 'stdout' }, r.stream)).record({ transport: 'proxy', method: 'GET', decision: allowWithAct(undefined), status: 200, latencyMs: 0.1234 });
    await flush();
    expect(r.lines[0]).toMatchObject({ level: 'info', type: 'audit', transport: 'proxy', decision: 'allow', reason: 'granted', status: 200, method: 'GET', path: '/orders/1', sub: 'spiffe://a', jti: 'j-1', iss: 'https://issuer', txn: 't-1', grant: 0, latency_ms: 0.123 });
    expect(typeof r.lines[0]!.time).toBe('string');
    expect(r.lines[0]!.pid).toBe(process.pid);
  });
});

describe('log time', () => {
  it('is pino isoTime, formatted again only when the millisecond changes', () => {
    let ms = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
    const time = isoTimePerMs(() => ms);
    expect(time()).toBe(',"time":"2026-01-02T03:04:05.678Z"');
    expect(time()).toBe(',"time":"2026-01-02T03:04:05.678Z"');
    ms += 1;
    expect(time()).toBe(',"time":"2026-01-02T03:04:05.679Z"');
  });
});
