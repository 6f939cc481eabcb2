import { performance } from 'node:perf_hooks';
// The event timeline: a bounded ring of what the process did and when (writer
// commits, snapshot flips, sweeps, filter and insights saves, insights queries, registry reloads, metrics
// scrapes, GC pauses, event-loop delay spikes), so a latency spike seen by a
// client can be laid against what the server was doing at that moment.
//
// One ring per thread (module state). The main thread's ring is the one served
// by GET /v1/admin/timeline; workers hand theirs over in batches (`drain`), and
// the main thread appends them (`append`). Recording is a handful of field
// writes, never on a request's path: call sites are writer transactions, timers
// and performance observers.

export const EVENT_KINDS = [
  'commit',
  'snapshot-flip',
  'sweep',
  'filter-save',
  'insights-save',
  'insights-query',
  'registry-reload',
  'metrics-scrape',
  'gc',
  'loop-delay',
] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

export type Detail = Record<string, string | number>;

export interface TimelineEvent {
  /** Order of arrival in the main thread's ring (a client polling with `since` can spot gaps). */
  seq: number;
  /** Wall clock when the event began, ms since the epoch. */
  t: number;
  /** Monotonic clock (process-wide, µs) when it began: orders events across threads without wall-clock steps. */
  us: number;
  kind: EventKind;
  /** How long it took, ms (loop-delay: the window the spike was seen in). */
  ms: number;
  /** `main`, or `worker N`. */
  thread: string;
  detail?: Detail;
}

export const DEFAULT_CAPACITY = 4096;

const monoUs = () => Number(process.hrtime.bigint() / 1000n);

/** Wall clock minus this thread's performance clock, ms; re-read every WALL_SYNC_MS so a stepped wall clock is followed. */
let wallOffset = Date.now() - performance.now();
let wallSyncedAt = performance.now();
const WALL_SYNC_MS = 10_000;

/** The wall-clock time (ms, sub-ms precision) of a performance.now() reading: monotonic between re-syncs. */
function wallOf(perf: number): number {
  const now = performance.now();
  if (now - wallSyncedAt > WALL_SYNC_MS) {
    wallOffset = Date.now() - now;
    wallSyncedAt = now;
  }
  return perf + wallOffset;
}

export class Timeline {
  private ring: (TimelineEvent | undefined)[];
  private next = 0;
  private seq = 0;
  /** Index in `ring` of the first event not yet handed over by `drain`. */
  private drained = 0;

  constructor(
    private cap = DEFAULT_CAPACITY,
    /** This thread's name in events. */
    public thread = 'main',
  ) {
    this.ring = new Array<TimelineEvent | undefined>(cap);
  }

  get capacity(): number {
    return this.cap;
  }

  /** Sets the ring's size (at start-up): what it held is dropped. */
  resize(capacity: number): void {
    this.cap = capacity;
    this.ring = new Array<TimelineEvent | undefined>(capacity);
    this.next = this.drained = 0;
  }

  /** An event that began at `startPerf` (this thread's performance.now()) and lasted `ms`. */
  add(kind: EventKind, startPerf: number, ms: number, detail?: Detail): void {
    const ago = performance.now() - startPerf;
    this.push({
      seq: 0,
      t: Math.round(wallOf(startPerf) * 1000) / 1000,
      us: Math.round(monoUs() - ago * 1000),
      kind,
      ms: Math.round(ms * 1000) / 1000,
      thread: this.thread,
      ...(detail ? { detail } : {}),
    });
  }

  /** An event that began at `startPerf` and ends now. */
  mark(kind: EventKind, startPerf: number, detail?: Detail): void {
    this.add(kind, startPerf, performance.now() - startPerf, detail);
  }

  /** Events recorded by another thread (a worker's `drain`). */
  append(events: readonly TimelineEvent[]): void {
    for (const e of events) this.push({ ...e });
  }

  private push(e: TimelineEvent): void {
    e.seq = ++this.seq;
    this.ring[this.next % this.capacity] = e;
    this.next++;
  }

  /** The events recorded since the last drain (those overwritten meanwhile are lost). */
  drain(): TimelineEvent[] {
    const from = Math.max(this.drained, this.next - this.capacity);
    const out: TimelineEvent[] = [];
    for (let i = from; i < this.next; i++) out.push(this.ring[i % this.capacity]!);
    this.drained = this.next;
    return out;
  }

  /** Events that began after `sinceMs` (wall clock), oldest first, and what the ring still holds. */
  since(sinceMs: number): TimelineAnswer {
    const from = Math.max(0, this.next - this.capacity);
    const events: TimelineEvent[] = [];
    for (let i = from; i < this.next; i++) {
      const e = this.ring[i % this.capacity]!;
      if (e.t > sinceMs) events.push(e);
    }
    events.sort((a, b) => a.t - b.t);
    const oldest = this.next > 0 ? this.ring[from % this.capacity]! : undefined;
    return {
      now: Date.now(),
      capacity: this.capacity,
      recorded: this.seq,
      ...(oldest ? { oldestSeq: oldest.seq } : {}),
      events,
    };
  }
}

export interface TimelineAnswer {
  /** The server's wall clock when it answered, ms. */
  now: number;
  capacity: number;
  /** Events recorded since start; `recorded − capacity` of them are gone from the ring. */
  recorded: number;
  /** seq of the oldest event still held: a client that last saw a lower seq missed events. */
  oldestSeq?: number;
  events: TimelineEvent[];
}

/** This thread's timeline. */
export const timeline = new Timeline();
