/**
 * The reason table is data with stable codes (STYLE habit 4): docs/spec.md §3 documents exactly the
 * codes in src/core/reasons.ts, and every rendered answer follows SPEC §3 for its status class.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { REASON_CODES, REASONS } from '../../src/core/reasons.ts';
import { render } from '../../src/transports/respond.ts';
import { END, reasonsTable, START } from '../../scripts/reasons-table.ts';

describe('reasons contract', () => {
  it('docs/spec.md carries the generated reason table (run `node scripts/reasons-table.ts --write` after changing reasons)', async () => {
    const readme = await readFile(new URL('../../docs/spec.md', import.meta.url), 'utf8');
    const block = readme.slice(readme.indexOf(START), readme.indexOf(END) + END.length);
    expect(block).toBe(reasonsTable());
  });

  it('codes are stable snake_case and unique', () => {
    for (const code of REASON_CODES) expect(code).toMatch(/^[a-z][a-z0-9_]*$/);
    expect(new Set(REASON_CODES).size).toBe(REASON_CODES.length);
  });

  it.each(REASON_CODES.filter((c) => REASONS[c].status !== 0))('%s renders per SPEC §3', (code) => {
    const r = render(code);
    const info = REASONS[code];
    expect(r.status).toBe(info.status);
    expect(r.headers['cache-control']).toBe('no-store');
    expect(JSON.parse(r.body)).toEqual({ error: info.error, reason: code });
    const challenge = r.headers['www-authenticate'];
    if (info.status === 401 && info.error === 'unauthorized') expect(challenge).toBe('Bearer realm="jitgate"');
    else if (info.status === 401) expect(challenge).toContain(`Bearer realm="jitgate", error="invalid_token", error_description="${code}"`);
    else if (info.status === 403) expect(challenge).toBe('Bearer realm="jitgate", error="insufficient_scope"');
    else expect(challenge).toBeUndefined();
  });
});
