// The tail scenarios are lookups with something beside them: a feed (HTTP
// push or NATS JetStream, feed-stream.ts), a snapshot swap, a big TTL sweep,
// filter saves or cookie syncs (side-tasks.ts), deliveries to a webhook sink
// (outbound-sink.ts). This names each scenario's
// companion and gives the runner one shape for all of them.
import { FeedStream, natsSender, pushSender, type FeedFigures } from './feed-stream.js';
import { BigSweep, FilterSaves, SnapshotSwap, SyncStream } from './side-tasks.js';
import { PixelProbe } from './pixel-probe.js';
import { OutboundSink } from './outbound-sink.js';
import { fmtUs, fmtInt as int } from './gate.js';
import type { ScenarioName } from './scenarios.js';
import type { OpenLoopClient } from './native-client.js';

export interface BackgroundReport {
  /** The report row's label. */
  label: string;
  /** One line for the report. */
  text: string;
  /** A few words for the summary table. */
  short: string;
  /** Set when the background did not do what the scenario is about (the lookups' figures then say little). */
  warning?: string;
  /** For results.json. */
  figures: object;
}

export interface Background {
  /** Before the warm-up: set-up that is not measured, and a clear failure when the target cannot take part. */
  prepare(): Promise<void>;
  /** As the measured window opens. */
  start(): void;
  /** After the window; also called when the run broke off (null: it never started). */
  stop(): Promise<BackgroundReport | null>;
}

export interface BackgroundOptions {
  ingestKey: string;
  adminKey: string;
  ingestRate: number;
  ingestBatch: number;
  ingestInflight: number;
  ingestSegment: number;
  ingestTtlS: number;
  probeMs: number;
  natsUrl: string;
  natsSubject: string;
  inbox: string;
  sweepMemberships: number;
  syncRate: number;
  partner: string;
  cookieName: string;
  users: number;
  seed: number;
  /** The measured window (a companion driven by the open-loop client runs for as long). */
  durationS: number;
  client: OpenLoopClient;
  rt: boolean;
}

function feedReport(f: FeedFigures | null, rate: number, error: string | undefined): BackgroundReport | null {
  if (!f) return null;
  const fresh = f.freshness;
  const text =
    `${f.transport}: ${int(f.acked)} records acked in ${int(f.batches)} batches (${int(f.recordsPerS)} records/s of ${int(rate)}), ` +
    `${int(f.applied)} applied, ${int(f.rejected)} rejected; batch ack p50 ${fmtUs(f.batch.latencyUs.p50)}, p99 ${fmtUs(f.batch.latencyUs.p99)}; ${f.batch.errorCount} failed` +
    (fresh
      ? `; freshness (ack → visible to a lookup) p50 ${fmtUs(fresh.latencyUs.p50)}, p99 ${fmtUs(fresh.latencyUs.p99)}, max ${fmtUs(fresh.latencyUs.max)} over ${int(fresh.requests)} probes${fresh.errorCount ? `, ${fresh.errorCount} never seen` : ''}`
      : '');
  const warnings: string[] = [];
  if (f.recordsPerS < rate * 0.95) warnings.push(`the feed reached ${int(f.recordsPerS)} of ${int(rate)} records/s`);
  if (error) warnings.push(`the feed failed: ${error}`);
  return {
    label: 'feed',
    text,
    short: `feed ${int(f.recordsPerS)}/${int(rate)} rec/s${fresh ? `, fresh p99 ${fmtUs(fresh.latencyUs.p99)}` : ''}`,
    ...(warnings.length ? { warning: warnings.join('; ') } : {}),
    figures: f,
  };
}

function feed(o: BackgroundOptions, origin: string, transport: 'push' | 'nats'): Background {
  const stream = new FeedStream(
    {
      origin,
      rate: o.ingestRate,
      batch: o.ingestBatch,
      inflight: o.ingestInflight,
      segment: o.ingestSegment,
      ttlS: o.ingestTtlS,
      seed: o.seed,
      users: o.users,
      probeEveryMs: o.probeMs,
    },
    transport === 'push' ? pushSender(origin, o.ingestKey) : natsSender(o.natsUrl, o.natsSubject),
  );
  return {
    prepare: () => stream.prepare(),
    start: () => stream.start(),
    stop: async () => feedReport(await stream.stop(), o.ingestRate, stream.error),
  };
}

/**
 * start() once, and never after stop(): the window opens when the server has
 * answered a /metrics scrape, which under overload can come after the run
 * ended; a companion started then would run on, unseen, through the next runs.
 */
function startOnce(b: Background): Background {
  let stopped = false;
  let started = false;
  return {
    prepare: () => b.prepare(),
    start: () => {
      if (stopped || started) return;
      started = true;
      b.start();
    },
    stop: () => {
      stopped = true;
      return b.stop();
    },
  };
}

/** What runs beside the lookups of `name` against segd (null: lookups alone). */
export function backgroundFor(
  name: ScenarioName,
  o: BackgroundOptions,
  origin: string,
  say: (m: string) => void,
): Background | null {
  const b = companion(name, o, origin, say);
  return b && startOnce(b);
}

function companion(
  name: ScenarioName,
  o: BackgroundOptions,
  origin: string,
  say: (m: string) => void,
): Background | null {
  switch (name) {
    case 'mixed':
      return o.ingestRate > 0 ? feed(o, origin, 'push') : null;
    case 'nats':
      return o.ingestRate > 0 ? feed(o, origin, 'nats') : null;
    case 'swap':
      return new SnapshotSwap({ inbox: o.inbox, users: o.users, seed: o.seed, say });
    case 'sweep':
      return new BigSweep({
        origin,
        adminKey: o.adminKey,
        ingestKey: o.ingestKey,
        memberships: o.sweepMemberships,
        users: o.users,
        seed: o.seed,
        // Its own segment: the feed scenarios' memberships (a longer TTL) stay out of its count.
        segment: o.ingestSegment + 1,
        say,
      });
    case 'filter-save':
      return new FilterSaves({ origin, adminKey: o.adminKey });
    case 'pixel':
      // Without an admin key the probe cannot read exposure segments: the pixel's own figures still stand.
      return o.adminKey && o.probeMs > 0
        ? new PixelProbe({
            origin,
            adminKey: o.adminKey,
            cookieName: o.cookieName,
            everyMs: o.probeMs,
            seed: o.seed,
          })
        : null;
    case 'outbound':
      return new OutboundSink({
        origin,
        adminKey: o.adminKey,
        segment: o.ingestSegment,
        feed: feed(o, origin, 'push'),
      });
    case 'syncs':
      return new SyncStream({
        origin,
        partner: o.partner,
        rate: o.syncRate,
        seed: o.seed,
        durationS: o.durationS,
        client: o.client,
        rt: o.rt,
      });
    default:
      return null;
  }
}
