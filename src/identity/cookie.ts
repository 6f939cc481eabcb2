// The segd cookies: the id cookie (the browser's segd uid), the sync-times
// cookie (when each partner last synced this browser, so the outbound sync
// skips partners synced recently without a store read) and the opt-out
// cookie. Always `Secure; SameSite=None; HttpOnly; Path=/` — sync runs in
// third-party contexts — with the configured Domain and Max-Age.
import { randomBytes } from 'node:crypto';

export interface CookieSettings {
  name: string;
  /** '' = host-only. */
  domain: string;
  maxAgeSeconds: number;
  optoutName: string;
  /** Most bytes of Set-Cookie header values in one answer. */
  maxHeaderBytes: number;
}

/** Opt-out cookies live at least 5 years (NAI); browsers may cap them (Chromium: 400 days). */
export const OPTOUT_MAX_AGE = 5 * 365 * 86_400;
export const OPTOUT_VALUE = 'OPT_OUT';
/** What segd writes: 22 base64url characters (128 random bits). Anything else read back is ignored. */
const UID_VALUE = /^[A-Za-z0-9_-]{22}$/;
const SYNC_ENTRY = /^([a-z0-9_-]{1,40})~([0-9a-z]{1,8})$/;

export function newUid(): string {
  return randomBytes(16).toString('base64url');
}

/** The value of cookie `name` in a Cookie header, or undefined. The last one wins (a more specific Path). */
export function readCookie(header: string, name: string): string | undefined {
  if (header === '') return undefined;
  let found: string | undefined;
  let i = 0;
  while (i < header.length) {
    let end = header.indexOf(';', i);
    if (end === -1) end = header.length;
    const eq = header.indexOf('=', i);
    if (eq !== -1 && eq < end && header.slice(i, eq).trim() === name) found = header.slice(eq + 1, end).trim();
    i = end + 1;
  }
  return found;
}

/** The segd uid in the id cookie, if it is one segd could have written. */
export function readUid(header: string, s: CookieSettings): string | null {
  const v = readCookie(header, s.name);
  return v !== undefined && UID_VALUE.test(v) ? v : null;
}

export function isOptedOut(header: string, s: CookieSettings): boolean {
  return readCookie(header, s.optoutName) === OPTOUT_VALUE;
}

function attrs(s: CookieSettings, maxAge: number): string {
  return `; Max-Age=${maxAge}${s.domain ? `; Domain=${s.domain}` : ''}; Path=/; Secure; HttpOnly; SameSite=None`;
}

export const uidCookie = (s: CookieSettings, uid: string) => `${s.name}=${uid}${attrs(s, s.maxAgeSeconds)}`;
export const expiredCookie = (s: CookieSettings, name: string) => `${name}=${attrs(s, 0)}`;
export const optoutCookie = (s: CookieSettings) => `${s.optoutName}=${OPTOUT_VALUE}${attrs(s, OPTOUT_MAX_AGE)}`;
export const syncCookieName = (s: CookieSettings) => `${s.name}_sync`;

/** partner → unix seconds of its last sync, from the sync-times cookie (malformed entries are dropped). */
export function readSyncTimes(header: string, s: CookieSettings): Map<string, number> {
  const out = new Map<string, number>();
  const v = readCookie(header, syncCookieName(s));
  if (!v) return out;
  for (const part of v.split('.')) {
    const m = SYNC_ENTRY.exec(part);
    if (m) out.set(m[1]!, parseInt(m[2]!, 36));
  }
  return out;
}

/**
 * The sync-times cookie holding `times`, newest first, with the oldest
 * entries dropped until `budget` bytes (what is left of the header limit)
 * holds it: a deterministic eviction, never an oversized header.
 */
export function syncTimesCookie(s: CookieSettings, times: Map<string, number>, budget: number): string | null {
  const entries = [...times].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([p, t]) => `${p}~${t.toString(36)}`);
  const tail = attrs(s, s.maxAgeSeconds);
  const head = `${syncCookieName(s)}=`;
  while (entries.length > 0 && head.length + entries.join('.').length + tail.length > budget) entries.pop();
  if (entries.length === 0) return null;
  return head + entries.join('.') + tail;
}
