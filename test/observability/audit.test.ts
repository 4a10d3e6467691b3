/**
 * The audit line (SPEC §8), assembled from prebuilt pieces for speed, must be byte for byte the
 * line pino writes for the same record: same fields, order, escaping and redaction (the audit's
 * own redaction list, derived from the logger's, censors what the wildcard list censors).
 * Also the logger's batching destination: whole lines, in order, all written by flush and exit.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { Allow, Decision } from '../../src/core/decision.ts';
import type { VerifiedToken } from '../../src/core/verified-token.ts';
import { AuditLog, auditAct, auditMethod, auditRedactPaths, plainTokenFields, type AuditRecord } from '../../src/observability/audit.ts';
import { createLogger, isoTimePerMs, LineBatch, REDACT } from '../../src/observability/logger.ts';

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
  it('leaves the wildcard paths to auditAct and gives pino the others', () => {
    expect(auditRedactPaths(['authorization', 'headers.dpop', '*.token'])).toEqual(['authorization', 'headers.dpop']);
  });

  it('cuts a refused method at 64 characters, between code points', () => {
    expect(auditMethod('GET')).toBe('GET');
    expect(auditMethod('x'.repeat(64))).toBe('x'.repeat(64));
    expect(auditMethod('x'.repeat(65))).toBe(`${'x'.repeat(64)}…`);
    // 'a' + 40 emoji: the 64th code unit is the first half of a pair, which is left out rather than cut in two.
    const cut = auditMethod(`a${'\u{1F600}'.repeat(40)}`);
    expect(cut).toBe(`a${'\u{1F600}'.repeat(31)}…`);
    expect(JSON.stringify(cut)).not.toMatch(/\\ud8/);
  });

  it("keeps an own __proto__ member of act, censored members too (pino's redactor dropped it)", async () => {
    const act = JSON.parse('{"sub":"spiffe://prod/actor","__proto__":{"sub":"spiffe://prod/real-actor"},"token":"secret"}') as unknown;
    for (const variant of [act, JSON.parse('{"sub":"a","__proto__":{"sub":"b"}}') as unknown]) {
      const r = rawRecorder();
      new AuditLog(createLogger({ level: 'info', destination: 'stdout' }, r.stream)).record({ transport: 'proxy', method: 'GET', decision: allowWithAct(variant), status: 200, latencyMs: 0.1 });
      await flush();
      const text = r.raw.join('');
      expect(text).toContain('"__proto__":{"sub":');
      expect(Object.getOwnPropertyNames(JSON.parse(text).act)).toContain('__proto__');
    }
    expect(auditAct(act)).toEqual(JSON.parse('{"sub":"spiffe://prod/actor","__proto__":{"sub":"spiffe://prod/real-actor"},"token":"[redacted]"}'));
    expect(JSON.stringify(auditAct(act))).toBe('{"sub":"spiffe://prod/actor","__proto__":{"sub":"spiffe://prod/real-actor"},"token":"[redacted]"}');
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

const token = (over: Partial<Record<string, unknown>> = {}): VerifiedToken =>
  ({ iss: 'https://issuer', sub: 'spiffe://a', jti: 'j-1', txn: undefined, act: undefined, memo: {}, ...over }) as unknown as VerifiedToken;

const RECORDS: AuditRecord[] = [
  { transport: 'proxy', method: 'GET', status: 200, latencyMs: 0.0514, decision: { kind: 'allow', reason: 'granted', path: '/orders/1', query: '?x=1', token: token({ txn: 'deploy-4711' }), grantIndex: 0 } },
  { transport: 'proxy', method: 'POST', status: 403, latencyMs: 1.5, decision: { kind: 'deny', reason: 'path_not_granted', path: '/admin', token: token({ act: { sub: 'spiffe://ci', token: 'x' } }) } as Decision },
  { transport: 'ext_authz_grpc', method: 'G"E\\T\u0001', status: 400, latencyMs: 0, decision: { kind: 'deny', reason: 'bad_method' } as Decision },
  { transport: 'forward_auth', method: 'GET', status: 503, latencyMs: 2, decision: { kind: 'unavailable', reason: 'revocation_stale', path: '/x' } as Decision },
  { transport: 'proxy', method: 'GET', status: 502, latencyMs: 3.25, outcome: 'upstream_unreachable', decision: { kind: 'allow', reason: 'public', path: '/healthz', query: '', token: null, grantIndex: -1 } },
  { transport: 'ext_authz_http', method: 'DELETE', status: 200, latencyMs: 0.1, decision: { kind: 'allow', reason: 'granted', path: '/é/%20', query: '', token: token({ sub: 'spiffe://ü\n"q"', act: { sub: 'a', act: { sub: 'b' } } }), grantIndex: 3 } },
];

/** The same record as one object through pino (what the audit line was before it was prebuilt). */
function viaPino(r: AuditRecord): Record<string, unknown> {
  const d = r.decision;
  // The decision's identity: its token, or a token refused after its signature checked (its ids).
  const t = d.kind === 'unavailable' ? (d.token ?? null) : (d.token ?? (d.kind === 'deny' ? d.ids : undefined) ?? null);
  return { transport: r.transport, decision: d.kind === 'allow' ? 'allow' : 'deny', reason: r.outcome ?? d.reason, status: r.status, method: r.method, path: d.path, sub: t?.sub, jti: t?.jti, iss: t?.iss, txn: t?.txn, act: auditAct(t?.act), grant: d.kind === 'allow' && d.grantIndex >= 0 ? d.grantIndex : undefined, latency_ms: Math.round(r.latencyMs * 1000) / 1000 };
}

function rawRecorder(): { raw: string[]; stream: Writable } {
  const raw: string[] = [];
  return { raw, stream: new Writable({ write(c, _e, cb) { raw.push(String(c)); cb(); } }) };
}

const withoutTime = (line: string) => line.replace(/,"time":"[^"]*"/, '');

describe('prebuilt audit line', () => {
  it('is byte for byte the line pino writes for the same record', async () => {
    const ours = rawRecorder();
    const audit = new AuditLog(createLogger({ level: 'info', destination: 'stdout' }, ours.stream));
    expect(audit.prebuilt).toBe(true);
    for (const r of RECORDS) audit.record(r);
    // The token fields are kept on the token (its memo) and come from there the second time.
    for (const r of RECORDS) if (r.decision.kind !== 'unavailable' && r.decision.token) expect(r.decision.token.memo?.auditFields).toMatch(/^,"sub":/);
    for (const r of RECORDS) audit.record(r);

    const ref = rawRecorder();
    const child = createLogger({ level: 'info', destination: 'stdout' }, ref.stream).child({ type: 'audit' }, { redact: { paths: auditRedactPaths(REDACT), censor: '[redacted]' } });
    for (const r of [...RECORDS, ...RECORDS]) child.info(viaPino(r));
    await flush();
    expect(ours.raw.map(withoutTime)).toEqual(ref.raw.map(withoutTime));
    expect(JSON.parse(ours.raw[1]!).act).toEqual({ sub: 'spiffe://ci', token: '[redacted]' });
  });

  it('writes plain token fields without pino, byte for byte what pino writes, and leaves the rest to pino', async () => {
    // Printable ASCII with and without the characters JSON escapes, controls, non-ASCII and lone surrogates.
    const text = fc.oneof(
      { arbitrary: fc.string({ unit: fc.constantFrom(...'abc-_./:@~ !#$%&()*+,;<=>?[]^`{|}0129'.split('')), maxLength: 30 }), weight: 9 },
      { arbitrary: fc.string({ unit: fc.constantFrom('a', '"', '\\', '\u0001', '\u007f', 'é', '\ud800', '\u2028'), maxLength: 8 }), weight: 1 },
    );
    const ours = rawRecorder();
    const audit = new AuditLog(createLogger({ level: 'info', destination: 'stdout' }, ours.stream));
    const ref = rawRecorder();
    const child = createLogger({ level: 'info', destination: 'stdout' }, ref.stream).child({ type: 'audit' }, { redact: { paths: auditRedactPaths(REDACT), censor: '[redacted]' } });
    let plain = 0;
    fc.assert(
      fc.property(text, text, text, fc.option(text, { nil: undefined }), fc.oneof({ arbitrary: fc.constant(undefined), weight: 4 }, { arbitrary: fc.record({ sub: text, token: text }), weight: 1 }), (sub, jti, iss, txn, act) => {
        const t = token({ sub, jti, iss, txn, act });
        const r: AuditRecord = { transport: 'proxy', method: 'GET', status: 200, latencyMs: 0.5, decision: { kind: 'allow', reason: 'granted', path: '/a', query: '', token: t, grantIndex: 0 } };
        audit.record(r);
        child.info(viaPino(r));
        const fast = plainTokenFields(t);
        if (fast !== undefined) {
          plain++;
          expect(t.memo?.auditFields).toBe(fast);
        }
      }),
      { numRuns: 400 },
    );
    await flush();
    expect(ours.raw.map(withoutTime)).toEqual(ref.raw.map(withoutTime));
    expect(plain).toBeGreaterThan(150);
  });

  it("a refused token's ids, some fields missing, are written as pino writes them (the missing ones left out)", async () => {
    const ours = rawRecorder();
    const audit = new AuditLog(createLogger({ level: 'info', destination: 'stdout' }, ours.stream));
    const ref = rawRecorder();
    const child = createLogger({ level: 'info', destination: 'stdout' }, ref.stream).child({ type: 'audit' }, { redact: { paths: auditRedactPaths(REDACT), censor: '[redacted]' } });
    expect(plainTokenFields({ iss: 'https://i', sub: undefined, jti: 'j' })).toBeUndefined();
    for (const ids of [
      { iss: 'https://i', sub: undefined, jti: 'j-1', txn: undefined, act: undefined },
      { iss: 'https://i', sub: 'spiffe://a', jti: undefined, txn: 't', act: undefined },
      { iss: 'https://i', sub: 'spiffe://a', jti: 'j-2', txn: undefined, act: undefined },
    ]) {
      const r: AuditRecord = { transport: 'proxy', method: 'GET', status: 401, latencyMs: 0.5, decision: { kind: 'deny', reason: 'expired', path: '/a', token: null, ids } };
      audit.record(r);
      child.info(viaPino(r));
    }
    await flush();
    expect(ours.raw.map(withoutTime)).toEqual(ref.raw.map(withoutTime));
    expect(ours.raw.map((l) => ['sub', 'jti'].filter((k) => k in JSON.parse(l)))).toEqual([['jti'], ['sub'], ['sub', 'jti']]);
  });

  it('keeps plain token fields on pino when the logger would write them otherwise (a serializer for sub)', async () => {
    const r = rawRecorder();
    const audit = new AuditLog(pino({ serializers: { sub: (s: string) => s.toUpperCase() } }, r.stream));
    expect(audit.prebuilt).toBe(true);
    audit.record(RECORDS[0]!);
    await flush();
    expect(JSON.parse(r.raw[0]!).sub).toBe('SPIFFE://A');
  });

  it('serializes a token once per audit log: another log (another logger, e.g. after a reload) writes its own fields', async () => {
    const a = rawRecorder();
    const b = rawRecorder();
    const first = new AuditLog(createLogger({ level: 'info', destination: 'stdout' }, a.stream));
    const second = new AuditLog(pino({ serializers: { sub: (s: string) => s.toUpperCase() } }, b.stream));
    expect(second.prebuilt).toBe(true);
    const r = RECORDS[0]!;
    first.record(r);
    second.record(r);
    first.record(r);
    await flush();
    const subs = [...a.raw, ...b.raw].join('').trimEnd().split('\n').map((l) => (JSON.parse(l) as { sub: string }).sub);
    expect(subs.sort()).toEqual(['SPIFFE://A', 'spiffe://a', 'spiffe://a']);
  });

  it('falls back to logger.info when the logger can change lines per call (mixin), with the same fields', async () => {
    const r = rawRecorder();
    const logger = pino({ level: 'info', mixin: () => ({ extra: 1 }) }, r.stream as never);
    const audit = new AuditLog(logger);
    expect(audit.prebuilt).toBe(false);
    audit.record(RECORDS[0]!);
    await flush();
    expect(JSON.parse(r.raw[0]!)).toMatchObject({ extra: 1, type: 'audit', decision: 'allow', sub: 'spiffe://a', txn: 'deploy-4711' });
  });

  it('writes its line at info whatever the logger level (SPEC §8: one line per decision; test/observability/audit-level.test.ts)', async () => {
    const r = rawRecorder();
    const logger = createLogger({ level: 'warn', destination: 'stdout' }, r.stream);
    const audit = new AuditLog(logger);
    logger.info('not written at warn');
    audit.record(RECORDS[0]!);
    await flush();
    expect(r.raw).toHaveLength(1);
    expect(JSON.parse(r.raw[0]!)).toMatchObject({ level: 'info', type: 'audit' });
  });
});

describe('LineBatch destination', () => {
  let dir: string;
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('keeps lines whole and in order; flush writes what is pending', async () => {
    dir = await mkdtemp(join(tmpdir(), 'jitgate-log-'));
    const file = join(dir, 'a.log');
    const logger = createLogger({ level: 'info', destination: file });
    const lines = Array.from({ length: 500 }, (_, i) => `line ${i} ${'x'.repeat(i % 97)}`);
    for (const l of lines) logger.info(l);
    await new Promise<void>((resolve, reject) => logger.flush((err) => (err ? reject(err) : resolve())));
    const got = (await readFile(file, 'utf8')).trimEnd().split('\n').map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(got).toEqual(lines);
  });

  it('flushSync writes a short tail at once', async () => {
    const file = join(dir, 'b.log');
    const batch = new LineBatch(pino.destination({ dest: file, sync: false, minLength: 4096, contentMode: 'buffer' }));
    batch.write('{"a":1}\n');
    batch.write('{"a":2}\n');
    await new Promise((r) => setTimeout(r, 20)); // the sonic-boom file opens asynchronously
    batch.flushSync();
    expect(await readFile(file, 'utf8')).toBe('{"a":1}\n{"a":2}\n');
  });

  it('keeps multi-byte lines whole across chunk boundaries, and a line longer than a chunk', async () => {
    const file = join(dir, 'd.log');
    const logger = createLogger({ level: 'info', destination: file });
    // ~300 KiB in all: several 64 KiB chunks, with 2-, 3- and 4-byte UTF-8 characters at every offset.
    const lines = Array.from({ length: 3000 }, (_, i) => `${i} ${'é'.repeat(i % 13)}${'€'.repeat(i % 7)}${'😀'.repeat(i % 5)} ${'x'.repeat(i % 61)}`);
    lines.splice(1500, 0, `long ${'ü€'.repeat(40_000)}`);
    for (const l of lines) logger.info(l);
    await new Promise<void>((resolve, reject) => logger.flush((err) => (err ? reject(err) : resolve())));
    const got = (await readFile(file, 'utf8')).trimEnd().split('\n').map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(got).toEqual(lines);
  });

  it('writes pending lines when the process exits', async () => {
    const file = join(dir, 'c.log');
    const logger = new URL('../../src/observability/logger.ts', import.meta.url).href;
    const script = `import { createLogger } from ${JSON.stringify(logger)};
      const l = createLogger({ level: 'info', destination: ${JSON.stringify(file)} });
      l.info('one'); l.info('two');
      setTimeout(() => process.exit(0), 100);`;
    execFileSync(process.execPath, ['--input-type=module', '-e', script]);
    const msgs = (await readFile(file, 'utf8')).trimEnd().split('\n').map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(msgs).toEqual(['one', 'two']);
  });
});
