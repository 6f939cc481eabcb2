// The segd cookies: the id cookie (the browser's segd uid) and the opt-out
// cookie. Always `Secure; SameSite=None; HttpOnly; Path=/` — sync runs in
// third-party contexts — with the configured Domain and Max-Age. Both are
// fixed-size, so an answer's Set-Cookie headers have a size known at start,
// checked against SEGD_COOKIE_MAX_BYTES (segd refuses to start over it):
// per-partner state (when each partner last synced) lives in the store, not
// in a cookie that grows with partners.
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/schema.js';

export interface CookieSettings {
  name: string;
  /** '' = host-only. */
  domain: string;
  maxAgeSeconds: number;
  optoutName: string;
}

export function cookieSettings(
  c: Pick<Config, 'cookieName' | 'cookieDomain' | 'cookieMaxAge' | 'optoutCookieName'>,
): CookieSettings {
  return { name: c.cookieName, domain: c.cookieDomain, maxAgeSeconds: c.cookieMaxAge, optoutName: c.optoutCookieName };
}

/** Bytes of the Set-Cookie header lines of the largest answer segd sends (the opt-out: two cookies). */
export function largestSetCookieBytes(s: CookieSettings): number {
  const line = (v: string) => 'Set-Cookie: '.length + v.length + 2;
  return Math.max(line(uidCookie(s, 'x'.repeat(22))), line(optoutCookie(s)) + line(expiredCookie(s, s.name)));
}

/** Opt-out cookies live at least 5 years (NAI); browsers may cap them (Chromium: 400 days). */
const OPTOUT_MAX_AGE = 5 * 365 * 86_400;
const OPTOUT_VALUE = 'OPT_OUT';
/** What segd writes: 22 base64url characters (128 random bits). Anything else read back is ignored. */
const UID_VALUE = /^[A-Za-z0-9_-]{22}$/;

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

/** uidCookie for settings `s`, its name and attributes formatted once: a route that sets it on every hit (/px) keeps this. */
export function uidCookieOf(s: CookieSettings): (uid: string) => string {
  const head = `${s.name}=`;
  const tail = attrs(s, s.maxAgeSeconds);
  return (uid) => head + uid + tail;
}
export const uidCookie = (s: CookieSettings, uid: string) => uidCookieOf(s)(uid);
export const expiredCookie = (s: CookieSettings, name: string) => `${name}=${attrs(s, 0)}`;
export const optoutCookie = (s: CookieSettings) => `${s.optoutName}=${OPTOUT_VALUE}${attrs(s, OPTOUT_MAX_AGE)}`;
