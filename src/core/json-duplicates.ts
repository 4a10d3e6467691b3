/**
 * Detects duplicate member names in JSON text that JSON.parse already accepted. JSON.parse keeps
 * the last duplicate while other parsers keep the first or refuse, so a token whose header or
 * claims name a member twice (`"aud":"orders","aud":"admin"`) could mean different things to the
 * issuer's tooling and to jitgate (RFC 7515 §5.2, RFC 8259 §4). jitgate refuses such tokens.
 *
 * Names are compared after unescaping, so `"iss"` and `"\u0069ss"` collide. Only runs on a cache
 * miss; linear in the text.
 */
export function hasDuplicateKeys(json: string): boolean {
  // One entry per open container: a Set of member names for objects, null for arrays.
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  let i = 0;
  const n = json.length;
  while (i < n) {
    const c = json.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i++;
      let escaped = false;
      while (i < n) {
        const d = json.charCodeAt(i);
        if (d === 0x5c /* \ */) {
          escaped = true;
          i += 2;
          continue;
        }
        if (d === 0x22) break;
        i++;
      }
      const end = ++i;
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        const raw = json.slice(start + 1, end - 1);
        const name = escaped ? (JSON.parse(json.slice(start, end)) as string) : raw;
        if (top.has(name)) return true;
        top.add(name);
        expectKey = false;
      }
      continue;
    }
    if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(null);
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] != null;
    }
    i++;
  }
  return false;
}

/** The decoded JSON text of a base64url JWS segment (already validated by jose). */
export function segmentText(segment: string): string {
  return Buffer.from(segment, 'base64url').toString('utf8');
}
