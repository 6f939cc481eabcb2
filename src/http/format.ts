// Encoding lookup answers. JSON is built by concatenation: the shape is fixed
// and ids are integers, so only the user key needs escaping.
import { pack } from 'msgpackr';

export type Format = 'json' | 'msgpack' | 'kv' | 'gam';

/** `?format=` wins; otherwise Accept: application/msgpack selects msgpack. */
export function pickFormat(formatParam: string | undefined, accept: string): Format | null {
  if (formatParam) {
    if (formatParam === 'json' || formatParam === 'msgpack' || formatParam === 'kv' || formatParam === 'gam')
      return formatParam;
    return null;
  }
  return accept.includes('application/msgpack') || accept.includes('application/x-msgpack') ? 'msgpack' : 'json';
}

export function idList(ids: Uint32Array, n: number): string {
  if (n === 0) return '';
  let s = '' + ids[0];
  for (let i = 1; i < n; i++) s += ',' + ids[i];
  return s;
}

export function jsonAnswer(uid: string | null, ids: Uint32Array, n: number): string {
  return '{"uid":' + JSON.stringify(uid) + ',"segments":[' + idList(ids, n) + ']}';
}

export function msgpackAnswer(uid: string | null, ids: Uint32Array, n: number): Buffer {
  return pack({ uid, segments: Array.from(ids.subarray(0, n)) });
}

export function kvAnswer(key: string, ids: Uint32Array, n: number): string {
  return key + '=' + idList(ids, n);
}

/**
 * Google Ad Manager-style key-values: `key=v1,v2`, at most `maxBytes` long.
 * Whole values past the cap are dropped (a partial id would target the wrong
 * segment); ids are ascending, so the same user always keeps the same prefix.
 */
export function gamAnswer(key: string, ids: Uint32Array, n: number, maxBytes: number): string {
  let s = key + '=';
  for (let i = 0; i < n; i++) {
    const v = (i === 0 ? '' : ',') + ids[i];
    if (s.length + v.length > maxBytes) break;
    s += v;
  }
  return s;
}
