// Bearer-key checks. Keys are kept only as SHA-256 digests and compared in
// constant time, so neither memory dumps nor response timing reveal them.
import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (s: string) => createHash('sha256').update(s).digest();

export class BearerKeys {
  private readonly digests: Buffer[];

  constructor(keys: readonly string[]) {
    this.digests = keys.map(digest);
  }

  /** `authorization` is the raw header value. */
  allows(authorization: string): boolean {
    return this.match(authorization) !== null;
  }

  /** Which key matched, as a short digest (safe to store and log), or null. */
  match(authorization: string): string | null {
    if (!authorization.startsWith('Bearer ')) return null;
    const d = digest(authorization.slice(7).trim());
    let found: Buffer | null = null;
    // Compare with every key (no early exit): time does not depend on which matched.
    for (const k of this.digests) if (timingSafeEqual(d, k)) found = k;
    return found ? found.toString('hex', 0, 8) : null;
  }
}
