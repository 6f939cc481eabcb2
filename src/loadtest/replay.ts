// `segd loadtest --replay FILE[,FILE…]`: traffic captured by segd
// (SEGD_CAPTURE_SAMPLE, src/http/capture.ts) sent again, open loop, each
// request at its captured time from the first one divided by --speed, so
// the route mix, the keys and the inter-arrival times are those of the real
// traffic. Each partner's requests go out under the key --replay-keys gives
// it (captures never hold bearer keys); requests of a partner without one are
// left out and counted.
import { readFileSync } from 'node:fs';
import type { HttpReq } from './scenarios.js';

interface CapturedLine {
  t: number;
  route: 'segments' | 'batch';
  q?: string;
  body?: string;
  b64?: string;
  ct?: string;
  partner: string;
}

export interface ReplayStats {
  files: number;
  /** Lines read, and left out (unparseable, a batch too large to have been kept, a partner without a key). */
  lines: number;
  skipped: { bad: number; tooLarge: number; noKey: Record<string, number> };
  requests: number;
  /** Captured span, s, and the replay's (span / speed). */
  spanS: number;
  replayS: number;
  speed: number;
  byRoute: Record<string, number>;
  byPartner: Record<string, number>;
  distinctKeys: number;
  /** The most frequent key's share of lookups by key. */
  topKeyShare: number;
  /** Gaps between consecutive requests in the replay, µs. */
  gapUs: { p50: number; p90: number; p99: number; max: number };
}

export interface ReplayPlan {
  requests: HttpReq[];
  /** Due time of each request, µs after the first. */
  schedule: Uint32Array;
  stats: ReplayStats;
}

/** Reads capture files into requests in time order, with their schedule at `speed`. */
export function planReplay(files: string[], keys: Record<string, string>, speed: number): ReplayPlan {
  const all: CapturedLine[] = [];
  let lines = 0;
  const skipped = { bad: 0, tooLarge: 0, noKey: {} as Record<string, number> };
  for (const f of files) {
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      if (!line) continue;
      lines++;
      let c: CapturedLine & { tooLarge?: number };
      try {
        c = JSON.parse(line) as CapturedLine & { tooLarge?: number };
      } catch {
        skipped.bad++;
        continue;
      }
      if (typeof c.t !== 'number' || (c.route !== 'segments' && c.route !== 'batch') || typeof c.partner !== 'string') {
        skipped.bad++;
        continue;
      }
      if (c.tooLarge !== undefined) {
        skipped.tooLarge++;
        continue;
      }
      if (c.partner !== '' && keys[c.partner] === undefined) {
        skipped.noKey[c.partner] = (skipped.noKey[c.partner] ?? 0) + 1;
        continue;
      }
      all.push(c);
    }
  }
  if (!all.length) throw new Error(`--replay: no request to replay in ${files.join(', ')} (${lines} lines read)`);
  all.sort((a, b) => a.t - b.t);
  const t0 = all[0]!.t;
  const spanMs = all[all.length - 1]!.t - t0;
  if ((spanMs * 1000) / speed > 0xffff_ffff)
    throw new Error('--replay: the capture spans more than 71 minutes at this --speed');
  const schedule = new Uint32Array(all.length);
  const requests: HttpReq[] = [];
  const byRoute: Record<string, number> = {};
  const byPartner: Record<string, number> = {};
  const keyCount = new Map<string, number>();
  let keyed = 0;
  all.forEach((c, i) => {
    schedule[i] = Math.round(((c.t - t0) * 1000) / speed);
    const headers: Record<string, string> = c.partner ? { Authorization: `Bearer ${keys[c.partner]}` } : {};
    byRoute[c.route] = (byRoute[c.route] ?? 0) + 1;
    byPartner[c.partner || '(no key)'] = (byPartner[c.partner || '(no key)'] ?? 0) + 1;
    if (c.route === 'segments') {
      const q = c.q ?? '';
      requests.push({ method: 'GET', path: `/v1/segments?${q}`, headers });
      const key = q
        .split('&')
        .filter((p) => !p.startsWith('format='))
        .join('&');
      keyCount.set(key, (keyCount.get(key) ?? 0) + 1);
      keyed++;
    } else {
      const body = c.b64 !== undefined ? Buffer.from(c.b64, 'base64') : (c.body ?? '');
      requests.push({
        method: 'POST',
        path: `/v1/segments:batch${c.q ? `?${c.q}` : ''}`,
        headers: { ...headers, 'Content-Type': c.ct || 'application/json' },
        body,
      });
    }
  });
  const gaps: number[] = [];
  for (let i = 1; i < schedule.length; i++) gaps.push(schedule[i]! - schedule[i - 1]!);
  gaps.sort((a, b) => a - b);
  const pick = (p: number) => (gaps.length ? gaps[Math.min(gaps.length - 1, Math.floor(p * gaps.length))]! : 0);
  return {
    requests,
    schedule,
    stats: {
      files: files.length,
      lines,
      skipped,
      requests: requests.length,
      spanS: spanMs / 1000,
      replayS: spanMs / 1000 / speed,
      speed,
      byRoute,
      byPartner,
      distinctKeys: keyCount.size,
      topKeyShare: keyed ? Math.max(...keyCount.values()) / keyed : 0,
      gapUs: { p50: pick(0.5), p90: pick(0.9), p99: pick(0.99), max: gaps.at(-1) ?? 0 },
    },
  };
}

/** `--replay-keys FILE`: {"partner id": "bearer key", …}. */
export function readKeysFile(path: string): Record<string, string> {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`--replay-keys ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc) || !Object.values(doc).every((v) => typeof v === 'string'))
    throw new Error(`--replay-keys ${path}: expected a JSON object of partner id → bearer key`);
  return doc as Record<string, string>;
}
