// A segd serving a generated data set, for the benches that measure one:
// `segd gen` writes N users into a feed, segd starts with that feed as its
// seed (SEGD_SEED), and the import's rate comes from its own log.
import { createReadStream } from 'node:fs';
import { join, resolve } from 'node:path';
import { run, startServer, type Server } from '../src/loadtest/processes.js';

export const SEGD_BIN = resolve(import.meta.dirname, '../../bin/segd.js');

export interface SeedImport {
  users: number;
  memberships: number;
  /** The seed import itself ("seed feed imported"), and start to "ready". */
  importMs: number;
  readyMs: number;
  startToReadyS: number;
  usersPerS: number;
  membershipsPerS: number;
  feedGenS: number;
}

/** The caller's environment without SEGD_* settings, so a bench measures segd's defaults. */
export function envWithoutSegd(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SEGD_')) env[k] = v;
  return env;
}

/** Memberships in a feed: top-level elements of each line's "segments" array. */
async function countMemberships(file: string): Promise<number> {
  let count = 0;
  let inArray = false;
  let justOpened = false;
  let depth = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (justOpened) {
        justOpened = false;
        if (c !== 0x5d) count++;
      }
      if (c === 0x7b) depth++;
      else if (c === 0x7d) depth--;
      else if (c === 0x5b) {
        inArray = true;
        justOpened = true;
      } else if (c === 0x5d) inArray = false;
      else if (c === 0x2c && inArray && depth === 1) count++;
    }
  }
  return count;
}

export interface SeededOptions {
  /** A temp dir the caller removes: the feed and the store go there. */
  dir: string;
  users: number;
  seed: number;
  workers: number;
  host: string;
  /** Node flags for segd's process, before the script. */
  nodeFlags?: string[];
  /** More SEGD_* settings (keys, log level). */
  env?: NodeJS.ProcessEnv;
  say: (msg: string) => void;
}

export async function startSeededSegd(o: SeededOptions): Promise<{ segd: Server; feed: string; imp: SeedImport }> {
  const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');
  const feed = join(o.dir, 'feed.ndjson');
  o.say(`generating ${fmtInt(o.users)} users → ${feed}`);
  const tGen = performance.now();
  await run(process.execPath, [
    SEGD_BIN,
    'gen',
    '--users',
    String(o.users),
    '--out',
    feed,
    '--seed',
    String(o.seed),
    '--ts',
    '0',
    '--quiet',
  ]);
  const feedGenS = (performance.now() - tGen) / 1000;
  o.say(`generated in ${feedGenS.toFixed(1)} s`);

  o.say(`starting segd (SEGD_WORKERS=${o.workers}) and importing the feed`);
  const tImport = performance.now();
  const segd = await startServer('segd', [...(o.nodeFlags ?? []), SEGD_BIN, 'serve'], {
    ...envWithoutSegd(),
    SEGD_PORT: '0',
    SEGD_HOST: o.host,
    SEGD_DATA_DIR: join(o.dir, 'data'),
    SEGD_SEED: feed,
    SEGD_WORKERS: String(o.workers),
    SEGD_LOG_LEVEL: 'info',
    SEGD_SHUTDOWN_GRACE_MS: '1000',
    ...o.env,
  });
  const ready = await segd.waitLog((l) => l.msg === 'ready', 30 * 60_000, 'ready');
  const startToReadyS = (performance.now() - tImport) / 1000;
  const seeded = segd.logs.find((l) => l.msg === 'seed feed imported');
  const readyMs = typeof ready.ms === 'number' ? ready.ms : startToReadyS * 1000;
  const importMs = typeof seeded?.ms === 'number' ? seeded.ms : readyMs;
  const users = typeof ready.users === 'number' ? ready.users : NaN;
  if (users !== o.users)
    throw new Error(
      `segd is ready with ${users} users, expected ${o.users}; logs: ${JSON.stringify(segd.logs.slice(-5))}`,
    );
  o.say(
    `segd ready on port ${segd.port}: ${fmtInt(users)} users imported in ${(importMs / 1000).toFixed(2)} s (${fmtInt(users / (importMs / 1000))} users/s; start to ready ${startToReadyS.toFixed(2)} s)`,
  );
  const memberships = await countMemberships(feed);
  const imp: SeedImport = {
    users,
    memberships,
    importMs,
    readyMs,
    startToReadyS,
    usersPerS: users / (importMs / 1000),
    membershipsPerS: memberships / (importMs / 1000),
    feedGenS,
  };
  o.say(
    `import rate: ${fmtInt(imp.membershipsPerS)} memberships/s (${fmtInt(memberships)} memberships, ${(memberships / users).toFixed(2)} per user)`,
  );
  return { segd, feed, imp };
}
