// OpenRTB `user.data` from a user's licensed segment ids: one Data object per
// (provider, segtax) of the taxonomy, `id` = the provider, `name` = this DMP's
// domain, `ext.segtax`, `segment[].id` (strings, as 2.6 has them). Segments
// with no taxonomy entry have no segtax to describe them and are left out.
import type { Registry } from '../partners/registry.js';
import type { Obj } from './bid-request.js';

export interface Data {
  id: string;
  name: string;
  segment: Array<{ id: string }>;
  ext: { segtax: number };
}

export class UserData {
  constructor(
    private readonly registry: Registry,
    private readonly dmpDomain: string,
  ) {}

  /** The Data objects for the first `n` ids (ascending); empty when none is in the taxonomy. */
  build(ids: Uint32Array, n: number): Data[] {
    const out: Data[] = [];
    // Few groups per answer: a linear scan beats a Map here.
    for (let i = 0; i < n; i++) {
      const def = this.registry.segment(ids[i]!);
      if (def === undefined) continue;
      let d = out.find((g) => g.id === def.provider && g.ext.segtax === def.segtax);
      if (d === undefined)
        out.push((d = { id: def.provider, name: this.dmpDomain, segment: [], ext: { segtax: def.segtax } }));
      d.segment.push({ id: String(def.id) });
    }
    return out;
  }

  /**
   * `doc` with our Data objects in `user.data` (created when absent). Data
   * objects already named with our domain are replaced, so a request enriched
   * twice does not carry the segments twice; everything else stays.
   */
  apply(doc: Obj, data: Data[]): Obj {
    const user = (doc.user ?? (doc.user = {})) as Obj;
    const before = Array.isArray(user.data) ? (user.data as unknown[]) : [];
    user.data = [
      ...before.filter((d) => !(d !== null && typeof d === 'object' && (d as Obj).name === this.dmpDomain)),
      ...data,
    ];
    return doc;
  }
}
