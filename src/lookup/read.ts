// The one read path every lookup route takes once it knows which segd uid a
// request names (GET, batch, /v1/ws, enrichment):
//
//   find → the profile a merged uid belongs to → hit/miss count → licence filter
//
// A device uid merged into another profile (cross-device linking) reads as
// that profile. Merged uids are in the known-users filter, so a filtered miss
// (most misses) costs no second get. Allocation-free: the answer is left in
// `ids` and `profile`, valid until the next read.
import type { SegmentLookup } from './segments.js';
import type { Licence } from './licences.js';

/** The ID graph as the read path needs it (src/identity/graph.ts satisfies it). */
interface ProfileSource {
  profileOf(uid: string): string;
}

/** Where hits and misses are counted (src/metrics/http.ts satisfies it). */
interface LookupCounts {
  hit(): void;
  miss(): void;
}

export class ReadPath {
  /** The segd uid of the profile the last read found or tried (null: none named). */
  profile: string | null = null;

  constructor(
    private readonly lookup: SegmentLookup,
    private readonly graph: ProfileSource,
    private readonly counts: LookupCounts,
  ) {}

  /** The segment ids of the last read, ascending (the first `n` are valid). */
  get ids(): Uint32Array {
    return this.lookup.ids;
  }

  /**
   * The number of segments of `uid` (a segd uid, or null when the request
   * named nobody the graph knows) that `licence` may see, written into
   * `ids`. No licence (a partner removed since the connection opened) sees
   * nothing.
   */
  read(uid: string | null, licence: Licence | undefined, nowSec: number): number {
    this.profile = uid;
    if (uid === null) {
      this.counts.miss();
      return 0;
    }
    const lookup = this.lookup;
    let n = lookup.find(uid, nowSec);
    if (n < 0 && !lookup.filtered) {
      const profile = this.graph.profileOf(uid);
      if (profile !== uid) {
        this.profile = profile;
        n = lookup.find(profile, nowSec);
      }
    }
    if (n < 0) {
      this.counts.miss();
      return 0;
    }
    this.counts.hit();
    return licence === undefined ? 0 : licence.filter(lookup.ids, n);
  }
}
