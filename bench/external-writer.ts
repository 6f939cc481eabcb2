// The writer in a process of its own, for the tail experiment: opens a running
// segd's LMDB env (lmdb-js coordinates writers across processes with LMDB's
// own lock) and applies the `mixed` feed's records through the same push
// path segd's loader uses (parse, then the one Writer), at a steady rate,
// until --seconds are up. Run it under `chrt --idle 0` (or `nice -n 19`) so
// every thread of it — its V8 platform threads included, which in segd's own
// process are shared with the lookup workers — yields to lookups at once.
//
//   chrt --idle 0 taskset -c 0 node dist/bench/external-writer.js --data DIR --rate 20000 --seconds 20
//
// segd's workers renew their read snapshot on segd's own commits only, so
// lookups do not see these writes until segd commits something: this
// measures what the writing costs the lookup tail, not freshness. Prints one
// JSON line with the rate reached.
import { openStore } from '../src/store/env.js';
import { Writer } from '../src/loader/writer.js';
import { PushSource } from '../src/loader/push.js';
import { KnownSegments } from '../src/loader/known-segments.js';
import { FeedStream, type FeedSender } from '../src/loadtest/feed-stream.js';
import { parseFlags, intFlag, numFlag } from '../src/terminal/flags.js';
import { DEFAULT_SYNTHETIC } from '../src/gen/synthetic.js';

const f = parseFlags('external-writer', process.argv.slice(2), {
  data: 'segd data dir (required)',
  rate: 'records per second (default 20000)',
  batch: 'records per transaction (default 500)',
  seconds: 'how long (default 20)',
  users: 'users of the data set (default 1M)',
  seed: 'seed of the data set',
});
if (typeof f.data !== 'string') throw new Error('--data DIR is required');
const store = openStore(f.data);
const writer = new Writer(store, { maxIdsPerProfile: 64 });
const taxonomy = new KnownSegments(store, 256, 'accept');
const push = new PushSource(store, writer, taxonomy.limits, () => {});
const sender: FeedSender = {
  name: 'in-process push path',
  open: async () => {},
  async send(body) {
    const b = Buffer.from(body);
    const a = await push.apply(
      { body: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength), format: 'ndjson', caller: 'bench' },
      0,
    );
    return { applied: a.applied, rejected: a.rejected };
  },
  close: async () => {},
};
const stream = new FeedStream(
  {
    origin: '',
    rate: intFlag(f, 'rate', { min: 1, max: 10_000_000, def: 20_000 }),
    batch: intFlag(f, 'batch', { min: 1, max: 100_000, def: 500 }),
    inflight: 1,
    segment: 999,
    ttlS: 600,
    seed: intFlag(f, 'seed', { min: 0, max: 0xffff_ffff, def: DEFAULT_SYNTHETIC.seed }),
    users: intFlag(f, 'users', { min: 1, max: 1_000_000_000, def: 1_000_000 }),
    probeEveryMs: 0,
  },
  sender,
);
await stream.prepare();
stream.start();
await new Promise((r) => setTimeout(r, numFlag(f, 'seconds', { min: 1, max: 3600, def: 20 }) * 1000));
const fig = await stream.stop();
process.stdout.write(
  JSON.stringify({ recordsPerS: fig?.recordsPerS, applied: fig?.applied, ackP99Us: fig?.batch.latencyUs.p99 }) + '\n',
);
await store.env.close();
