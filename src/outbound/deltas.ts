// What a destination may receive, and what changed for it. One rule, used
// when a change is queued and again when it is sent: a segment reaches a
// destination when the destination lists it (or lists "*"), the partner's
// licence holds it (lookup/licences.ts), and neither the destination nor its
// partner is disabled.
import { Licences } from '../lookup/licences.js';
import type { Registry } from '../partners/registry.js';
import type { Destination } from '../partners/types.js';

export interface DestinationRule {
  readonly dest: Destination;
  /** May this segment be sent to the destination now. */
  allows(segment: number): boolean;
}

/** The registry's destinations compiled into rules, recompiled when the registry changes. */
export class DestinationRules {
  private version = -1;
  private list: DestinationRule[] = [];
  private byId = new Map<string, DestinationRule>();
  private readonly licences: Licences;

  constructor(private readonly registry: Registry) {
    this.licences = new Licences(registry);
  }

  /** The enabled destinations whose partner is enabled. */
  active(): readonly DestinationRule[] {
    if (this.registry.version !== this.version) this.compile();
    return this.list;
  }

  /** The destination's rule, or undefined when it is gone or may receive nothing now. */
  of(id: string): DestinationRule | undefined {
    if (this.registry.version !== this.version) this.compile();
    return this.byId.get(id);
  }

  private compile(): void {
    const list: DestinationRule[] = [];
    for (const dest of this.registry.destinations()) {
      const partner = this.registry.partner(dest.partner);
      const licence = this.licences.of(dest.partner);
      if (dest.disabled || !partner || partner.disabled || !licence) continue;
      const listed = dest.segments === '*' ? null : new Set(dest.segments);
      list.push({ dest, allows: (s) => (listed === null || listed.has(s)) && licence.has(s) });
    }
    this.list = list;
    this.byId = new Map(list.map((r) => [r.dest.id, r]));
    this.version = this.registry.version;
  }
}

/** Ids in a[0..na) and not in b[0..nb) (both ascending) that `keep` accepts. */
export function missingFrom(
  a: Uint32Array,
  na: number,
  b: Uint32Array,
  nb: number,
  keep: (s: number) => boolean,
): number[] {
  const out: number[] = [];
  let j = 0;
  for (let i = 0; i < na; i++) {
    const s = a[i]!;
    while (j < nb && b[j]! < s) j++;
    if ((j >= nb || b[j] !== s) && keep(s)) out.push(s);
  }
  return out;
}
