// When to try a failed delivery again: exponential backoff with full jitter,
// bounded, and a receiver's Retry-After honoured up to the same bound.

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

/** The delay before attempt `attempt` (1 = the first retry): uniform in [base·2^(a-1)/2, base·2^(a-1)], capped. */
export function backoffMs(attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const ceil = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(ceil / 2 + (random() * ceil) / 2);
}

/** A Retry-After header (delta seconds or an HTTP date) in ms from `now`, or null when absent or unreadable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | null {
  if (header === null || header.trim() === '') return null;
  const v = header.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}
