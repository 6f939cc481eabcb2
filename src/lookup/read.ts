// The one read path every lookup route takes once it knows which segd uid a
// request names (GET, batch, /v1/ws, enrichment):
//
//   find → the profile a merged uid belongs to → hit/miss count → licence filter
//
// A device uid merged into another profile (cross-device linking) reads as
// that profile. Merged uids are in the known-users filter, so a filtered miss
// (most misses) costs no second get. Allocation-free: the answer is left in
// `ids` and `profile`, valid until the next read.
//
// With hot answers (hot-answers.ts), a route that encodes the answer of a
// read by segd uid asks `remembered` first and hands its bytes to `keep`
// after a read; a remembered answer counts as the hit it was.
import type { SegmentLookup } from './segments.js';
import type { Licence } from './licences.js';
import type { HotAnswers } from './hot-answers.js';

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
  /** `found`: the last read found the user. */
  private licence: Licence | undefined = undefined;
  private nowSec = 0;
  private found = false;
  /** The key the last `remembered*` asked for (a uid, or bytes at a start), and whether the last read was of it. */
  private askedUid: string | null = null;
  private askedBytes: Uint8Array | null = null;
  private askedStart = -1;
  private asked = false;

  constructor(
    private readonly lookup: SegmentLookup,
    private readonly graph: ProfileSource,
    private readonly counts: LookupCounts,
    /** Encoded answers of hot users; null: every lookup reads. */
    private readonly hot: HotAnswers | null = null,
  ) {}

  /**
   * Until unpin(), every read is of the generation active now (a batch
   * answers from one data set), and hot answers are used only while nothing
   * commits (HotAnswers.hold).
   */
  pin(): void {
    this.hot?.hold();
    this.lookup.pin();
  }

  unpin(): void {
    this.lookup.unpin();
    this.hot?.release();
  }

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
    this.licence = licence;
    this.nowSec = nowSec;
    this.found = false;
    this.asked = uid !== null && uid === this.askedUid;
    this.askedUid = null;
    this.askedBytes = null;
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
    return this.settle(n, licence);
  }

  /**
   * `read` of the uid whose chars are the plain ASCII bytes `b[start, end)`
   * (codec/uid-list.ts), which SegmentLookup.screen passed: the same count
   * in `ids`, with a string of the uid made only when the read misses (to
   * follow a merged uid to its profile). `profile` is the merged profile's
   * uid when one was read, else null (the caller has the uid's bytes).
   */
  readAscii(b: Buffer, start: number, end: number, licence: Licence | undefined, nowSec: number): number {
    this.profile = null;
    this.licence = licence;
    this.nowSec = nowSec;
    this.found = false;
    this.asked = b === this.askedBytes && start === this.askedStart;
    this.askedUid = null;
    this.askedBytes = null;
    const lookup = this.lookup;
    let n = lookup.findAscii(b, start, end, nowSec);
    if (n < 0) {
      const uid = b.toString('latin1', start, end);
      const profile = this.graph.profileOf(uid);
      if (profile !== uid) {
        this.profile = profile;
        n = lookup.find(profile, nowSec);
      }
    }
    return this.settle(n, licence);
  }

  /** A read's end: counted as a hit or a miss, and the licensed count of `lookup.ids` (0 without a licence). */
  private settle(n: number, licence: Licence | undefined): number {
    if (n < 0) {
      this.counts.miss();
      return 0;
    }
    this.counts.hit();
    this.found = true;
    return licence === undefined ? 0 : licence.filter(this.lookup.ids, n);
  }

  /**
   * A read the known-users filter answered from a uid's bytes
   * (SegmentLookup.screen said no): a miss, as `read` of that uid counts it,
   * with no string made. `profile` is null.
   */
  unknown(): void {
    this.profile = null;
    this.found = false;
    this.asked = false;
    this.counts.miss();
  }

  /**
   * The answer `licence` got in `variant` (a format) for segd uid `uid`, if
   * a read at `nowSec` would still give it (counted as a hit); undefined:
   * read, encode and `keep`. Valid until the next read.
   */
  remembered(uid: string, licence: Licence, variant: number, nowSec: number): Buffer | undefined {
    if (this.hot === null) return undefined;
    this.askedUid = uid;
    this.askedBytes = null;
    const answer = this.hot.get(licence, variant, uid, nowSec);
    if (answer !== undefined) this.counts.hit();
    return answer;
  }

  /**
   * `remembered` of the uid whose chars are the plain ASCII bytes
   * `b[start, end)`; undefined: `readAscii` them, encode and `keep`.
   */
  rememberedAscii(
    b: Uint8Array,
    start: number,
    end: number,
    licence: Licence,
    variant: number,
    nowSec: number,
  ): Buffer | undefined {
    if (this.hot === null) return undefined;
    this.askedUid = null;
    this.askedBytes = b;
    this.askedStart = start;
    const answer = this.hot.getBytes(licence, variant, b, start, end, nowSec);
    if (answer !== undefined) this.counts.hit();
    return answer;
  }

  /**
   * Right after a read: `answer`, its encoding in `variant`, is remembered
   * when the read found the user (misses are cheap and rarely repeat).
   */
  keep(variant: number, answer: Uint8Array): void {
    if (this.keeps(variant)) this.keepBytes(answer, 0, answer.length);
  }

  /**
   * Right after a read of the key `remembered*` was just asked for: whether
   * its answer in `variant` is to be remembered (asks the cache's
   * doorkeeper, so once per read); then `keepBytes` it.
   */
  keeps(variant: number): boolean {
    const hot = this.hot;
    return hot !== null && this.asked && this.found && this.licence !== undefined && hot.wants(this.licence, variant);
  }

  /** After `keeps` said yes: remembers `answer[start, end)`, the answer's encoding. */
  keepBytes(answer: Uint8Array, start: number, end: number): void {
    this.asked = false;
    this.hot!.put(answer, this.nowSec, this.lookup.nextChange(this.nowSec), start, end);
  }
}
