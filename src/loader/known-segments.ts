// What every source checks records against (records.ts): the longest user
// key and, with SEGD_UNKNOWN_SEGMENTS=reject, the taxonomy's segment ids,
// re-read after each admin change of the taxonomy.
import type { Store } from '../store/env.js';
import { recordLimits, taxonomyIds, type RecordLimits } from './records.js';

export class KnownSegments {
  readonly limits: RecordLimits;
  private readonly ids = new Set<number>();

  constructor(
    private readonly store: Store,
    maxUidBytes: number,
    unknownSegments: 'accept' | 'reject',
  ) {
    this.limits = recordLimits(maxUidBytes, unknownSegments, this.ids);
    this.refresh();
  }

  /** Re-reads the taxonomy's segment ids (after an admin change). */
  refresh(): void {
    if (typeof this.limits === 'number') return;
    taxonomyIds(this.store, this.ids);
  }
}
