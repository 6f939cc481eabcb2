// Signed inbound callbacks: a partner with an HMAC key signs what it sends
// the browser back with, so nobody can forge a partner uid into our graph:
//
//   sig = base64url(HMAC-SHA256(key, partner + "\n" + puid + "\n" + ts))
//   /sync/in?partner=P&puid=X&ts=<unix seconds>&sig=<sig>
//
// A signature is good for `windowSeconds` either side of now (replay window).
import { createHmac, timingSafeEqual } from 'node:crypto';

export function sign(key: string, partner: string, puid: string, ts: number): string {
  return createHmac('sha256', key).update(`${partner}\n${puid}\n${ts}`).digest('base64url');
}

export type SignatureCheck = 'ok' | 'missing' | 'stale' | 'bad';

export function checkSignature(key: string, partner: string, puid: string, tsParam: string, sig: string, nowSec: number, windowSeconds: number): SignatureCheck {
  if (!tsParam || !sig) return 'missing';
  if (!/^\d{1,12}$/.test(tsParam)) return 'bad';
  const ts = Number(tsParam);
  if (Math.abs(nowSec - ts) > windowSeconds) return 'stale';
  const want = Buffer.from(sign(key, partner, puid, ts));
  const got = Buffer.from(sig);
  return got.length === want.length && timingSafeEqual(got, want) ? 'ok' : 'bad';
}
