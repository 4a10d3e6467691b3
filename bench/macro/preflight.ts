/**
 * One real request per scenario before any load: the status (and for jitgate's own answers the
 * `reason` in the body) must be what the scenario claims to measure. A 404 from a wrong route, a
 * 401 from a wrong key or a 503 from unloaded revocation would otherwise be reported as speed.
 */
import type { RequestSpec } from './http-load.ts';

export async function preflight(port: number, spec: RequestSpec, expect: number | readonly number[], expectReason?: string): Promise<string[]> {
  const problems: string[] = [];
  const expected = typeof expect === 'number' ? [expect] : expect;
  let status: number;
  let text: string;
  try {
    const r = await fetch(`http://127.0.0.1:${port}${spec.path}`, {
      method: spec.method,
      headers: { ...spec.headers },
      ...(spec.body === undefined ? {} : { body: spec.body }),
    });
    status = r.status;
    text = await r.text();
  } catch (err) {
    return [`pre-flight ${spec.method} ${spec.path}: ${(err as Error).message}`];
  }
  if (!expected.includes(status)) problems.push(`pre-flight ${spec.method} ${spec.path}: status ${status}, expected ${expected.join('|')}`);
  if (expectReason !== undefined) {
    let reason: unknown;
    try {
      reason = (JSON.parse(text) as { reason?: unknown }).reason;
    } catch {
      reason = undefined;
    }
    if (reason !== expectReason) problems.push(`pre-flight: reason ${JSON.stringify(reason)}, expected ${expectReason}`);
  }
  return problems;
}
