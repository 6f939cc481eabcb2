// JSON from callers and feeds, parsed with a nesting bound. V8's JSON.parse is
// iterative and takes any depth, but what runs over the parsed value next is
// often recursive (JSON.stringify, Array.prototype.join, String(), structured
// clone between threads, validators): a 100,000-deep array parses fine and then
// overflows the stack wherever it goes. No document segd reads needs more than
// a few levels (OpenRTB's deepest is ≈ 6, plus `ext` objects), so deeper input
// is refused before it is parsed, at the one place every JSON body passes.

/** Deepest nesting accepted in any JSON body or feed record. */
const MAX_JSON_DEPTH = 64;

export class JsonTooDeep extends Error {
  constructor(limit: number) {
    super(`JSON nested deeper than ${limit} levels`);
  }
}

/**
 * True when `text` nests arrays/objects deeper than `limit`. One pass over the
 * bytes (or UTF-16 units: the bracket and quote codes are the same); brackets
 * inside strings do not count. Malformed text is left for JSON.parse to refuse.
 */
export function nestsDeeper(text: Uint8Array | string, limit = MAX_JSON_DEPTH): boolean {
  const s = typeof text === 'string';
  const n = text.length;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < n; i++) {
    const c = s ? (text as string).charCodeAt(i) : (text as Uint8Array)[i]!;
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: the next unit is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** JSON.parse with the nesting bound: throws JsonTooDeep, or JSON.parse's SyntaxError. */
export function parseJson(text: Uint8Array | string, limit = MAX_JSON_DEPTH): unknown {
  if (nestsDeeper(text, limit)) throw new JsonTooDeep(limit);
  return JSON.parse(
    typeof text === 'string' ? text : Buffer.from(text.buffer, text.byteOffset, text.byteLength).toString('utf8'),
  );
}
