// `segd gen --users N --out FILE [--seed S] [--taxonomy K] [--ttl-share F]`
// Writes a synthetic NDJSON feed with a progress bar. The file is written under
// a temporary name and renamed when complete, so it can go straight into an
// inbox.
import { performance } from 'node:perf_hooks';
import { createWriteStream } from 'node:fs';
import { rename } from 'node:fs/promises';
import { once } from 'node:events';
import { Synthetic, DEFAULT_SYNTHETIC, writeSyntheticFeed } from '../gen/synthetic.js';
import { Progress } from '../terminal/progress.js';
import { parseFlags, intFlag, numFlag, type FlagSpec } from '../terminal/flags.js';

const SPEC: FlagSpec = {
  users: 'number of users (required)',
  out: 'output file (required; "-" for stdout)',
  seed: `generator seed (default ${DEFAULT_SYNTHETIC.seed}); the same seed gives the same users`,
  taxonomy: `number of distinct segments (default ${DEFAULT_SYNTHETIC.taxonomy})`,
  'ttl-share': `share of memberships with a TTL, 0..1 (default ${DEFAULT_SYNTHETIC.ttlShare})`,
  ts: 'record timestamp, unix seconds (default: now; 0 = leave it out, so TTLs count from import)',
  quiet: 'no progress output',
};

export async function genCommand(argv: string[]): Promise<number> {
  const flags = parseFlags('gen', argv, SPEC);
  const users = intFlag(flags, 'users', { min: 1, max: 1_000_000_000 });
  const out = flags.out;
  if (typeof out !== 'string' || !out) throw new Error('gen: --out FILE is required');
  const seed = intFlag(flags, 'seed', { min: 0, max: 0xffff_ffff, def: DEFAULT_SYNTHETIC.seed });
  const taxonomy = intFlag(flags, 'taxonomy', { min: 1, max: 10_000_000, def: DEFAULT_SYNTHETIC.taxonomy });
  const ttlShare = numFlag(flags, 'ttl-share', { min: 0, max: 1, def: DEFAULT_SYNTHETIC.ttlShare });
  const ts = intFlag(flags, 'ts', { min: 0, max: 0xffff_ffff, def: Math.floor(Date.now() / 1000) });
  const gen = new Synthetic({ seed, taxonomy, ttlShare });

  const toStdout = out === '-';
  const tmp = `${out}.part`;
  const stream = toStdout ? process.stdout : createWriteStream(tmp, { highWaterMark: 1 << 20 });
  const progress = new Progress('gen', users, 'users', { quiet: flags.quiet === true || toStdout });
  const t0 = performance.now();
  await writeSyntheticFeed(stream, gen, users, ts, (n) => progress.update(n));
  if (!toStdout) {
    stream.end();
    await once(stream, 'finish');
    await rename(tmp, out);
  }
  progress.done();
  const s = (performance.now() - t0) / 1000;
  if (!toStdout)
    process.stderr.write(`gen: ${users} users → ${out} in ${s.toFixed(1)} s (${Math.round(users / s)} users/s)\n`);
  return 0;
}
