// Insights answered from the active generation's bitmaps: a segment's size,
// pairwise overlap, affinity (which segments over-index among a segment's
// members) and the reach of an all/any/none expression. Exact: they count
// the stored memberships (an expired one counts until the TTL sweep removes
// it, as the segment counts do). Callers check licences first; `licensed`
// limits the segments affinity may name (null: every segment).
import roaring from 'roaring';
import type { GenerationIndex, Bitmap } from './generation-index.js';

const { RoaringBitmap32 } = roaring;
const EMPTY = new RoaringBitmap32();

export interface SegmentSize {
  segment: number;
  size: number;
  /** When its members last changed, ISO 8601; null when it never had any since the index was built. */
  updatedAt: string | null;
}

export interface Overlap {
  segments: number[];
  sizes: number[];
  /** matrix[i][j]: members of both i and j (the diagonal: each size). */
  matrix: number[][];
  /** jaccard[i][j]: |i ∩ j| / |i ∪ j| (0 when both are empty), rounded to 6 places. */
  jaccard: number[][];
}

export interface AffinityRow {
  segment: number;
  size: number;
  overlap: number;
  /** overlap / size of the asked segment: P(B | A). */
  share: number;
  /** P(B | A) / P(B | all users) × 100. */
  index: number;
}

export interface Affinity {
  segment: number;
  size: number;
  /** Users with at least one membership: the base P(B | all users) is taken over. */
  base: number;
  results: AffinityRow[];
}

export interface ReachExpression {
  all: readonly number[];
  any: readonly number[];
  none: readonly number[];
}

const round = (x: number) => Math.round(x * 1e6) / 1e6;

export class InsightsQueries {
  constructor(private readonly index: () => GenerationIndex) {}

  private bitmap(id: number): Bitmap {
    return this.index().segments.get(id) ?? EMPTY;
  }

  size(segment: number): SegmentSize {
    const gi = this.index();
    const at = gi.updatedAt.get(segment);
    return {
      segment,
      size: this.bitmap(segment).size,
      updatedAt: at === undefined ? null : new Date(at).toISOString(),
    };
  }

  overlap(segments: readonly number[]): Overlap {
    const bms = segments.map((id) => this.bitmap(id));
    const sizes = bms.map((b) => b.size);
    const matrix = bms.map(() => new Array<number>(bms.length).fill(0));
    const jaccard = bms.map(() => new Array<number>(bms.length).fill(0));
    for (let i = 0; i < bms.length; i++) {
      for (let j = i; j < bms.length; j++) {
        const both = i === j ? sizes[i]! : bms[i]!.andCardinality(bms[j]!);
        const either = sizes[i]! + sizes[j]! - both;
        matrix[i]![j] = matrix[j]![i] = both;
        jaccard[i]![j] = jaccard[j]![i] = either === 0 ? 0 : round(both / either);
      }
    }
    return { segments: [...segments], sizes, matrix, jaccard };
  }

  /** Segments (licensed, other than `segment`) sharing at least `min` members with it, highest index first, at most `limit`. */
  affinity(segment: number, limit: number, min: number, licensed: ((id: number) => boolean) | null): Affinity {
    const gi = this.index();
    const a = this.bitmap(segment);
    const size = a.size;
    const base = gi.users.size;
    const results: AffinityRow[] = [];
    if (size > 0 && base > 0) {
      for (const [id, b] of gi.segments) {
        if (id === segment || (licensed !== null && !licensed(id))) continue;
        if (b.size < min) continue; // the overlap cannot reach `min`
        const overlap = a.andCardinality(b);
        if (overlap < min || overlap === 0) continue;
        const share = overlap / size;
        results.push({
          segment: id,
          size: b.size,
          overlap,
          share: round(share),
          index: round((share / (b.size / base)) * 100),
        });
      }
    }
    results.sort((x, y) => y.index - x.index || y.overlap - x.overlap || x.segment - y.segment);
    if (results.length > limit) results.length = limit;
    return { segment, size, base, results };
  }

  /** Users in every `all` segment, in at least one `any` segment (when given) and in no `none` segment. */
  reach(expr: ReachExpression): number {
    const gi = this.index();
    const byBitmap = (ids: readonly number[]) => ids.map((id) => this.bitmap(id));
    let acc: Bitmap;
    if (expr.all.length > 0) {
      // Smallest first: every later intersection works on the least.
      const all = byBitmap(expr.all).sort((x, y) => x.size - y.size);
      acc = all[0]!.clone();
      for (let i = 1; i < all.length && acc.size > 0; i++) acc.andInPlace(all[i]!);
      if (expr.any.length > 0) acc.andInPlace(RoaringBitmap32.orMany(byBitmap(expr.any)));
    } else if (expr.any.length > 0) acc = RoaringBitmap32.orMany(byBitmap(expr.any));
    else acc = gi.users.clone();
    if (expr.none.length > 0 && acc.size > 0) acc.andNotInPlace(RoaringBitmap32.orMany(byBitmap(expr.none)));
    return acc.size;
  }
}
