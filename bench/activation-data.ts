// The data set of the activation benches (bench:activation, bench:cpu): N
// synthetic users as a seed feed, a taxonomy of the generator's segments over
// two providers, and the bench partner licensed to a third of them.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Synthetic, DEFAULT_SYNTHETIC, FIRST_SEGMENT_ID } from '../src/gen/synthetic.js';

/** Writes feed.ndjson and segd.json into `dir` (what SEGD_SEED and SEGD_CONFIG read). */
export function writeActivationData(dir: string, users: number, partnerKey: string): { feed: string; config: string } {
  const syn = new Synthetic(DEFAULT_SYNTHETIC);
  const feed = join(dir, 'feed.ndjson');
  const lines: string[] = [];
  for (let i = 0; i < users; i++) {
    const u = syn.user(i);
    lines.push(
      JSON.stringify({ op: 'add', uid: u.uid, segments: u.segments.map((s) => (typeof s === 'number' ? s : s.id)) }),
    );
  }
  writeFileSync(feed, lines.join('\n') + '\n');
  const taxonomy = Array.from({ length: DEFAULT_SYNTHETIC.taxonomy }, (_, k) => ({
    id: FIRST_SEGMENT_ID + k,
    name: `s${k}`,
    provider: k % 2 ? 'segd' : 'acme-data',
    segtax: k % 3 ? 4 : 600,
  }));
  const config = join(dir, 'segd.json');
  writeFileSync(
    config,
    JSON.stringify({
      partners: [
        { id: 'bench', keys: [partnerKey], segments: taxonomy.filter((_, k) => k % 3 === 0).map((s) => s.id) },
      ],
      segments: taxonomy,
    }),
  );
  return { feed, config };
}
