/**
 * The traffic mix of `jitgate bench`: which kinds of request to send, in what proportion, and the answer each kind
 * must get from a gate that works. `allow=90,outside=5,bad-signature=5` → 90 % of requests inside the grant
 * (2xx from the backend), 5 % outside it (403), 5 % with a forged signature (401).
 *
 * @module
 */

export const KINDS = ['allow', 'outside', 'bad-signature', 'no-token', 'expired'] as const;
export type Kind = (typeof KINDS)[number];

/** What a correct gate answers for each kind. `2xx` means any status from 200 to 299 (the backend's answer). */
export const EXPECTED: Readonly<Record<Kind, { readonly status: number | '2xx'; readonly why: string }>> = {
  allow: { status: '2xx', why: 'inside the grant: the backend answers' },
  outside: { status: 403, why: 'a valid token, a path outside its grant' },
  'bad-signature': { status: 401, why: 'the signature of a valid token altered' },
  'no-token': { status: 401, why: 'no Authorization header' },
  expired: { status: 401, why: 'a token whose exp has passed' },
};

export function isExpected(kind: Kind, status: number): boolean {
  const e = EXPECTED[kind].status;
  return e === '2xx' ? status >= 200 && status < 300 : status === e;
}

/** The length of a run's schedule of kinds (cycled): a kind needs at least one slot in it. */
export const SCHEDULE_SLOTS = 1000;

export interface MixPart {
  readonly kind: Kind;
  readonly weight: number;
}

/** Parses `allow=90,outside=5,bad-signature=5`; throws with a message naming the bad part. */
export function parseMix(text: string): MixPart[] {
  const parts: MixPart[] = [];
  for (const item of text.split(',')) {
    const m = /^\s*([a-z-]+)\s*=\s*(\d+(?:\.\d+)?)\s*$/.exec(item);
    if (m === null) throw new Error(`--mix: expected KIND=WEIGHT, got ${JSON.stringify(item)}`);
    const kind = m[1] as Kind;
    if (!KINDS.includes(kind)) throw new Error(`--mix: unknown kind ${JSON.stringify(m[1])}; one of ${KINDS.join(', ')}`);
    if (parts.some((p) => p.kind === kind)) throw new Error(`--mix: ${kind} given twice`);
    const weight = Number(m[2]);
    if (weight > 0) parts.push({ kind, weight });
  }
  if (parts.length === 0) throw new Error('--mix: give at least one kind with a weight above 0');
  const total = parts.reduce((a, p) => a + p.weight, 0);
  for (const p of parts) {
    if ((p.weight / total) * SCHEDULE_SLOTS < 1) throw new Error(`--mix: ${p.kind}=${p.weight} is less than one request in ${SCHEDULE_SLOTS} of this mix, so it would never be sent; give it more weight`);
  }
  return parts;
}

/**
 * A fixed schedule of `length` kinds whose counts follow the weights (largest remainder), spread evenly rather
 * than in runs, so that any window of the run sees the mix (smooth weighted round-robin).
 */
export function schedule(parts: readonly MixPart[], length = SCHEDULE_SLOTS): Kind[] {
  const total = parts.reduce((a, p) => a + p.weight, 0);
  const current = parts.map(() => 0);
  const out: Kind[] = [];
  for (let n = 0; n < length; n++) {
    let best = 0;
    for (let i = 0; i < parts.length; i++) {
      current[i]! += parts[i]!.weight;
      if (current[i]! > current[best]!) best = i;
    }
    current[best]! -= total;
    out.push(parts[best]!.kind);
  }
  return out;
}
