/**
 * Detects duplicate member names in JSON text that JSON.parse already accepted. JSON.parse keeps
 * the last duplicate while other parsers keep the first or refuse, so a token whose header or
 * claims name a member twice (`"aud":"orders","aud":"admin"`) could mean different things to the
 * issuer's tooling and to jitgate (RFC 7515 §5.2, RFC 8259 §4). jitgate refuses such tokens.
 *
 * Counting instead of collecting: every member written in the text becomes a distinct own key of
 * the parsed value unless its name repeats one already seen in the same object (after unescaping,
 * so `"iss"` and `"\u0069ss"` collide). So the text has duplicates exactly when it writes more
 * members than the parsed value has keys. Both counts are plain scans (only Object.keys
 * allocates); the earlier version built a Set of sliced names per object: 1.6 → 1.1 µs per bench
 * payload in process (bench/README.md).
 */

/** Index of the quote that closes the string whose contents start at `i` (or past the end: unterminated). */
export function stringEnd(json: string, i: number): number {
  const n = json.length;
  while (i < n) {
    const c = json.charCodeAt(i);
    if (c === 0x5c /* \ */) i += 2;
    else if (c === 0x22 /* " */) return i;
    else i++;
  }
  return i;
}

/** Whether a `:` follows at `i` after JSON whitespace: in valid JSON, the string just before `i` is then a member name. */
export function colonFollows(json: string, i: number): boolean {
  const n = json.length;
  // JSON whitespace: space, tab, line feed, carriage return.
  while (i < n) {
    const c = json.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return c === 0x3a; /* : */
    i++;
  }
  return false;
}

/** Member names written in JSON text: in valid JSON a string is a member name exactly when a `:` follows it. */
export function countMembers(json: string): number {
  let members = 0;
  for (let i = json.indexOf('"'); i !== -1; i = json.indexOf('"', i)) {
    i = stringEnd(json, i + 1) + 1;
    if (colonFollows(json, i)) members++;
  }
  return members;
}

/** Own keys of every object in a value JSON.parse returned (a `__proto__` member is an own key there). */
export function countKeys(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0;
  let keys = 0;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) keys += countKeys(value[i]);
    return keys;
  }
  const names = Object.keys(value);
  keys = names.length;
  for (let i = 0; i < names.length; i++) keys += countKeys((value as Record<string, unknown>)[names[i]!]);
  return keys;
}

/** `json` names a member twice in some object; `parsed` is JSON.parse's result for that same text. */
export function hasDuplicateKeys(json: string, parsed: unknown): boolean {
  return countMembers(json) !== countKeys(parsed);
}

/**
 * hasDuplicateKeys, also true for nesting too deep to count: such a text is refused as malformed,
 * never a crash (a RangeError from the stack) and never a pass.
 */
export function duplicateOrTooDeep(json: string, parsed: unknown): boolean {
  try {
    return hasDuplicateKeys(json, parsed);
  } catch (err) {
    if (err instanceof RangeError) return true;
    throw err;
  }
}
