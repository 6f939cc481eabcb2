// Import rates: `npm run bench:import [-- --users N --rounds R]`.
//
// One `segd gen` data set (NDJSON), imported with `segd import` (a separate
// process each time, as an operator would run it), alternating in each round:
//   snapshot → empty store     (*.snapshot.ndjson: sorted, appended into a fresh generation)
//   snapshot → loaded store    (the same file again: merged with the live generation, then swapped)
//   delta    → empty store     (*.ndjson: the writer's per-record read-modify-write path)
// Prints memberships/s for each and the snapshot/delta ratio from the same
// round. The target (docs/design.md) is snapshot import ≥ 1,000,000 memberships/s.
import { spawnSync } from 'node:child_process';
import { linkSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { intFlag, parseFlags } from '../src/terminal/flags.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const BIN = join(ROOT, 'bin/segd.js');
const flags = parseFlags('npm run bench:import --', process.argv.slice(2), {
  users: 'users in the data set (default 1M)',
  rounds: 'rounds (default 2)',
});
const USERS = intFlag(flags, 'users', { min: 1000, max: 100_000_000, def: 1_000_000 });
const ROUNDS = intFlag(flags, 'rounds', { min: 1, max: 100, def: 2 });

const dir = mkdtempSync(join(tmpdir(), 'segd-bench-import-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
process.on('SIGINT', () => process.exit(130));
const say = (s: string) => process.stderr.write(`bench-import: ${s}\n`);

function segd(args: string[], dataDir: string): string {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    env: { PATH: process.env.PATH ?? '', SEGD_DATA_DIR: dataDir, SEGD_LOG_LEVEL: 'warn' },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`segd ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

interface Rate {
  memberships: number;
  seconds: number;
  perSecond: number;
}

function importRate(file: string, dataDir: string): Rate {
  const out = segd(['import', file, '--quiet'], dataDir);
  const m = /(\d+) memberships in ([\d.]+) s \(\d+ records\/s, (\d+) memberships\/s\)/.exec(out);
  if (!m) throw new Error(`unexpected import output: ${out}`);
  return { memberships: Number(m[1]), seconds: Number(m[2]), perSecond: Number(m[3]) };
}

const snapshot = join(dir, 'users.snapshot.ndjson');
const delta = join(dir, 'users.ndjson');
say(`generating ${USERS} users`);
segd(
  ['gen', '--users', String(USERS), '--out', snapshot, '--quiet', '--ts', String(Math.floor(Date.now() / 1000) - 3600)],
  join(dir, 'unused'),
);
linkSync(snapshot, delta); // same bytes; the name decides the path

const rows: Array<{ round: number; snapEmpty: Rate; snapLoaded: Rate; deltaEmpty: Rate }> = [];
for (let round = 1; round <= ROUNDS; round++) {
  const a = join(dir, `a${round}`);
  const b = join(dir, `b${round}`);
  say(`round ${round}: snapshot → empty store`);
  const snapEmpty = importRate(snapshot, a);
  say(`round ${round}: snapshot → loaded store`);
  const snapLoaded = importRate(snapshot, a);
  say(`round ${round}: delta → empty store`);
  const deltaEmpty = importRate(delta, b);
  rows.push({ round, snapEmpty, snapLoaded, deltaEmpty });
  rmSync(a, { recursive: true, force: true });
  rmSync(b, { recursive: true, force: true });
}

const k = (n: number) => `${(n / 1000).toFixed(0)}k/s`;
console.log(
  `\nimport rates, ${USERS} users, ${rows[0]!.snapEmpty.memberships} memberships (segd gen), node ${process.version}`,
);
console.log('round  snapshot→empty  snapshot→loaded  delta→empty  snapshot/delta');
for (const r of rows) {
  console.log(
    `${String(r.round).padEnd(7)}${k(r.snapEmpty.perSecond).padEnd(16)}${k(r.snapLoaded.perSecond).padEnd(17)}${k(r.deltaEmpty.perSecond).padEnd(13)}` +
      `${(r.snapEmpty.perSecond / r.deltaEmpty.perSecond).toFixed(2)}×`,
  );
}
const best = Math.max(...rows.map((r) => r.snapEmpty.perSecond));
console.log(
  `target: snapshot import ≥ 1,000,000 memberships/s — best round ${best >= 1_000_000 ? 'meets' : 'misses'} it (${k(best)})`,
);
