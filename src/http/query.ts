// A GET route's query values read from its raw query string in JS, as uWS's
// `req.getQuery(key)` finds them. Each `getQuery(key)` is a native call that
// parses the query again and makes a string: the lookup route's uid, format
// and partner take ≈ 191 ns that way against ≈ 67 ns for one `getQuery()`
// and the search here (`npm run bench:micro -- --only query`: timed inside a
// uWS handler, best of 15 alternating rounds, two runs).
import type { HttpRequest } from 'uWebSockets.js';

/**
 * The value of `key` (not empty) in `raw`, a raw query without escapes,
 * exactly as uWS finds it: the first `&`-separated statement whose key is
 * `key`; none (undefined) also once a statement that starts with key's first
 * character has no `=` (uWS stops there).
 */
export function queryValue(raw: string, key: string): string | undefined {
  const n = raw.length;
  const first = key.charCodeAt(0);
  let p = 0;
  while (p < n) {
    let end = raw.indexOf('&', p);
    if (end < 0) end = n;
    if (end > p && raw.charCodeAt(p) === first) {
      const eq = raw.indexOf('=', p);
      if (eq < 0 || eq >= end) return undefined;
      if (eq - p === key.length && raw.startsWith(key, p)) return raw.slice(eq + 1, end);
    }
    p = end + 1;
  }
  return undefined;
}

/**
 * `req.getQuery(key)` of a request whose raw query (`req.getQuery()`) is
 * `raw`: found in `raw` when it holds nothing uWS decodes (a `%` escape, or
 * a `+`, which uWS reads as a space), else decoded by uWS.
 */
export function queryParam(req: HttpRequest, raw: string, key: string): string | undefined {
  return raw.indexOf('%') < 0 && raw.indexOf('+') < 0 ? queryValue(raw, key) : req.getQuery(key);
}
