// Signed inbound callbacks: a partner with an HMAC key signs what it sends
// the browser back with, so nobody can forge a partner uid into our graph —
// and binds it to the browser it was made for, so a captured callback URL
// cannot be replayed into other browsers:
//
//   sig = base64url(HMAC-SHA256(key, partner + "\n" + puid + "\n" + ts + "\n" + uid))
//   /sync/in?partner=P&puid=X&ts=<unix seconds>&sig=<sig>
//
// `uid` is the segd uid the partner was sent in its sync URL (the ${UID}
// macro of the outbound sync); segd checks it against the browser's own segd
// cookie, so the callback only links in the browser that holds that uid. A
// signature is good for `windowSeconds` either side of now.
import { createHmac, timingSafeEqual } from 'node:crypto';

export function sign(key: string, partner: string, puid: string, ts: number, uid: string): string {
  return createHmac('sha256', key).update(`${partner}\n${puid}\n${ts}\n${uid}`).digest('base64url');
}

export type SignatureCheck = 'ok' | 'missing' | 'stale' | 'bad' | 'no_uid';

/** `uid`: the segd uid of the browser's cookie (null = none: a signed callback needs one). */
export function checkSignature(
  key: string,
  partner: string,
  puid: string,
  tsParam: string,
  sig: string,
  nowSec: number,
  windowSeconds: number,
  uid: string | null,
): SignatureCheck {
  if (!tsParam || !sig) return 'missing';
  if (!/^\d{1,12}$/.test(tsParam)) return 'bad';
  const ts = Number(tsParam);
  if (Math.abs(nowSec - ts) > windowSeconds) return 'stale';
  if (uid === null) return 'no_uid';
  const want = Buffer.from(sign(key, partner, puid, ts, uid));
  const got = Buffer.from(sig);
  return got.length === want.length && timingSafeEqual(got, want) ? 'ok' : 'bad';
}
