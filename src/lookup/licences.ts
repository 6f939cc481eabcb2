// Which segments each partner may receive, compiled from the registry once
// per registry version so the lookup path filters without allocating: a
// sorted Uint32Array per partner, compacting the lookup's output array in
// place. Where the licensed ids are small (every taxonomy seen so far) a
// bitset answers `has` with one load instead of a bisection.
//
// The registry (partners + taxonomy) is the source of truth, and the rule is
// this module's alone: a segment reaches a partner when the partner's
// `segments` or the segment's `partners` names the other, or either is "*".

/** The registry as this module needs it (src/partners/registry.ts satisfies it). */
interface LicenceSource {
  readonly version: number;
  partners(): ReadonlyArray<{ id: string; segments: readonly number[] | '*' }>;
  segments(): ReadonlyArray<{ id: number; partners: readonly string[] | '*' }>;
}

/** Licensed ids below this get a bitset (at most 256 KiB per partner); larger ones are bisected. */
const BITSET_IDS = 1 << 21;

export class Licence {
  /** Bit `id` set when `id` is licensed; null when `all`, empty, or an id is too large for it. */
  private readonly bits: Uint32Array | null;

  constructor(
    /** Partner id; '' for the anonymous caller. */
    readonly partner: string,
    /** Every segment id is licensed (anonymous callers when allowed; partners licensed '*'). */
    readonly all: boolean,
    /** Sorted, distinct licensed ids (unused when `all`). */
    readonly ids: Uint32Array,
    /**
     * Sees the segd uid any id resolves to (admin keys; anonymous callers
     * where SEGD_LOOKUP_AUTH=optional makes them the operator's own). A
     * partner does not: see reveal.ts.
     */
    readonly seesUids = false,
  ) {
    const max = ids.length > 0 ? ids[ids.length - 1]! : 0;
    if (all || ids.length === 0 || max >= BITSET_IDS) this.bits = null;
    else {
      const bits = new Uint32Array((max >>> 5) + 1);
      for (const id of ids) bits[id >>> 5]! |= 1 << (id & 31);
      this.bits = bits;
    }
  }

  has(id: number): boolean {
    if (this.all) return true;
    const bits = this.bits;
    if (bits !== null) {
      const w = id >>> 5;
      return w < bits.length && (bits[w]! & (1 << (id & 31))) !== 0;
    }
    const a = this.ids;
    let lo = 0;
    let hi = a.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = a[mid]!;
      if (v === id) return true;
      if (v < id) lo = mid + 1;
      else hi = mid - 1;
    }
    return false;
  }

  /** Keeps only licensed ids among the first `n` of `ids` (in place, order kept); returns the new count. */
  filter(ids: Uint32Array, n: number): number {
    if (this.all || n <= 0) return n;
    let k = 0;
    for (let i = 0; i < n; i++) {
      const id = ids[i]!;
      if (this.has(id)) ids[k++] = id;
    }
    return k;
  }
}

/** The licence of an anonymous caller where anonymous lookups are allowed: everything. */
export const ANONYMOUS = new Licence('', true, new Uint32Array(0), true);
/** The licence of an admin key (SEGD_ADMIN_KEYS): everything. */
export const ADMIN = new Licence('', true, new Uint32Array(0), true);

export class Licences {
  private version = -1;
  private byPartner = new Map<string, Licence>();

  constructor(private readonly source: LicenceSource) {}

  /** The partner's compiled licence (recompiled first if the registry changed since). */
  of(partnerId: string): Licence | undefined {
    if (this.source.version !== this.version) this.refresh();
    return this.byPartner.get(partnerId);
  }

  /**
   * Compiles every partner's licence: O(segments + listed grants), so a
   * large taxonomy does not stall the first lookup after a change (the rule
   * is in the header comment).
   */
  refresh(): void {
    const version = this.source.version;
    const open: number[] = [];
    const granted = new Map<string, number[]>();
    for (const s of this.source.segments()) {
      if (s.partners === '*') open.push(s.id);
      else
        for (const p of s.partners) {
          let list = granted.get(p);
          if (!list) granted.set(p, (list = []));
          list.push(s.id);
        }
    }
    const next = new Map<string, Licence>();
    for (const p of this.source.partners()) {
      if (p.segments === '*') {
        next.set(p.id, new Licence(p.id, true, new Uint32Array(0)));
        continue;
      }
      const ids = Uint32Array.from(new Set([...p.segments, ...open, ...(granted.get(p.id) ?? [])])).sort();
      next.set(p.id, new Licence(p.id, false, ids));
    }
    this.byPartner = next;
    this.version = version;
  }
}
