// The NATS JetStream source: the distributed feed. Every node is a durable
// pull consumer of the same stream. Each fetched batch is applied in one
// transaction that also records the last stream sequence it covers; only
// then is it acked (AckPolicy.All: one ack covers the batch). The next pull is
// in flight while a batch commits (the consumer's ack window holds two pulls),
// and batches commit strictly in order: a batch whose commit or ack failed
// stops every batch behind it, which is then redelivered. A message at or
// below the stored sequence — a redelivery after a crash between commit and
// ack, or a duplicate — is skipped and acked, so nothing is applied twice and
// nothing acked is lost. A poison message is rejected with its sequence and
// reason and acked like the rest: it never blocks the messages behind it.
//
// Payload: NDJSON feed records (one or more lines per message), or msgpack
// with the header `Content-Type: application/msgpack`.
//
// Stopping never waits on the servers: a fetch in progress is stopped (while
// the client reconnects it checks no heartbeats, so a fetch begun before the
// servers went away would wait for them forever), the retry backoff and an
// unfinished connect are cut short, and after a short grace for the ack of a
// batch in hand (the one committing; a prefetched pull is stopped like any
// fetch) the connection is closed, which fails every request still waiting
// for an answer. A lost ack costs nothing: the redelivery is skipped.
//
// A store copied from another node (`segd backup`) carries that node's
// checkpoint under that node's durable name. A node without a checkpoint of
// its own adopts the one of the same stream and subject filter: the copy holds
// exactly what that checkpoint covers, so consuming goes on right after it.
import { performance } from 'node:perf_hooks';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  jetstream,
  jetstreamManager,
  AckPolicy,
  DeliverPolicy,
  type Consumer,
  type ConsumerInfo,
  type ConsumerMessages,
  type JsMsg,
} from '@nats-io/jetstream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Store } from '../store/env.js';
import type { Logger } from '../log.js';
import { nowSeconds } from '../lookup/segments.js';
import type { Writer } from './writer.js';
import { parseBody, type ParsedPush, type PushReject } from './push.js';
import { rejectReason, type Change, type RecordLimits } from './records.js';
import { shardOf, type ShardSpec } from '../shard/shard.js';

export interface JetStreamOptions {
  servers: string[];
  stream: string;
  subject: string;
  durable: string;
  batch: number;
  /** Records per write transaction at most (SEGD_LOADER_BATCH): a fetch of big messages is committed in parts. */
  maxRecords: number;
  maxUidBytes: RecordLimits;
  /** This node's shard: a record of another shard's user is rejected, not stored where no lookup reaches it. */
  shard: ShardSpec | null;
}

export interface JetStreamStats {
  applied: number;
  stale: number;
  rejected: number;
  skipped: number;
}

interface StreamCheckpoint {
  seq: number;
  at: number;
  /** The consumer's subject filter: which messages of the stream `seq` covers. */
  subject?: string;
}

const INFO_EVERY_MS = 1000;
/**
 * Most messages one pull asks for while the consumer is behind (a restored
 * node, a node back from a restart): they are committed as one transaction
 * (cut at SEGD_LOADER_BATCH records). A transaction's commit costs the same
 * whatever it holds, and a bigger one dirties fewer pages per record
 * (bench:writer: ≈ 35 µs CPU per record at 1,200 records a transaction,
 * ≈ 18 µs at 20,000, on 1M users).
 */
const CATCH_UP_PULL = 20_000;
/** How long one pull waits for messages (the client's least). */
const FETCH_EXPIRES_MS = 1000;
/**
 * A pull sized by the backlog: how long it stays open at the server, and the
 * heartbeat it asks for. Its messages are on the server already, so it ends
 * when they are in, not at its expiry. A server short of CPU can fall silent
 * mid-pull for a second or more (bench:restore at 10M, the servers sharing a
 * core with another node catching up: in two runs of four, 2.6–3.4 s lost
 * each time); at a live pull's 500 ms heartbeats the client ended the pull
 * after 1 s of silence, the messages in hand (up to 17,000) were dropped, the
 * consumer made anew and they were pulled again. At 1 s heartbeats a pull
 * outlasts up to 2 s of silence, and at 10 s it does not expire meanwhile; a
 * server really gone is noticed within 3 s.
 */
const CATCH_UP_EXPIRES_MS = 10_000;
const CATCH_UP_HEARTBEAT_MS = 1000;
/** The client's error for a pull whose heartbeats it stopped seeing (@nats-io/jetstream's consumer.js). */
const HEARTBEATS_MISSED = 'heartbeats missed';
/** How long stop() waits after the last commit for the acks to reach a server before closing the connection. */
const ACK_GRACE_MS = 2000;

/** A message as parsed on arrival: all a group keeps of it until its commit. */
interface Received {
  seq: number;
  subject: string;
  changes: Change[];
  rejects: PushReject[];
}

type Phase = 'nothing' | 'connect and consumer' | 'fetch, commit and ack' | 'consumer info' | 'retry backoff';

export class JetStreamSource {
  readonly checkpointKey: string;
  private pendingNow = -1;
  /** Told every new pending figure as it is known (the readiness gauge), not at the next poll. */
  onPending: ((pending: number) => void) | null = null;
  /** Messages the consumer has not yet been handed or not yet acked; -1 = unknown. */
  get pending(): number {
    return this.pendingNow;
  }
  private set pending(n: number) {
    if (n === this.pendingNow) return;
    this.pendingNow = n;
    this.onPending?.(n);
  }
  /** The most messages one pull asks for. */
  private readonly largestPull: number;
  /** The consumer's window of unacked messages as attached: two pulls (one committing, one arriving). */
  private window: number;
  /** Messages the server had behind the last one received: how much the next pull asks for. */
  private serverPending = -1;
  /**
   * The commits and acks of the groups received so far, in order. It rejects
   * once one fails, and every group chained after that is then skipped (never
   * acked, so redelivered): nothing commits past a batch that did not.
   */
  private inHand: Promise<void> = Promise.resolve();
  /** Groups received and not yet committed and acked. */
  private groupsInHand = 0;
  lastError: string | null = null;
  /** Whether the client holds a connection to a server now (it reconnects by itself while false). */
  connected = false;
  private nc: NatsConnection | null = null;
  private consumer: Consumer | null = null;
  private stopped = false;
  private loop: Promise<void> | null = null;
  /** The attach prepare() began, taken over by the first turn of run(). */
  private attaching: Promise<Consumer> | null = null;
  private infoAt = 0;
  /** Aborted by stop(): ends the retry backoff and an unfinished connect. */
  private readonly halt = new AbortController();
  /** The fetch in progress, stopped by stop(). */
  private fetching: ConsumerMessages | null = null;
  /** A group was committed since the last retry: the backoff starts over. */
  private committedSinceRetry = false;
  /** Commits ended so far: stop() waits for acks while they go on. */
  private commitsEnded = 0;
  /** What the source is waiting for now (named in the log of a shutdown that runs out of time). */
  waitingFor: Phase = 'nothing';

  constructor(
    private readonly store: Store,
    private readonly writer: Writer,
    private readonly opts: JetStreamOptions,
    private readonly log: Logger,
    private readonly onBatch?: (s: JetStreamStats) => void,
  ) {
    this.checkpointKey = `ckpt:nats:${opts.stream}:${opts.durable}`;
    this.largestPull = Math.max(opts.batch, CATCH_UP_PULL);
    this.window = 2 * this.largestPull;
  }

  /**
   * Connects and attaches the consumer ahead of start(), while the node loads
   * (its filter, its workers): the round trips and the consumer's creation on
   * the servers cost a restored node ≈ 1 s between loaded and consuming
   * otherwise. Nothing is fetched before start(); a failure here is met again
   * by start()'s first attach, which retries as usual.
   */
  prepare(): void {
    if (this.attaching !== null || this.loop !== null || this.stopped) return;
    this.attaching = this.attach();
    this.attaching.catch(() => undefined);
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops consuming and closes the connection, whether or not any server answers. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.halt.abort();
    this.fetching?.stop();
    // Only a batch in hand has anything left to finish; any other wait ends with the connection.
    // The grace is for the acks' round trips, so it starts over whenever a
    // commit ends: groups received before stop() still commit (in parts, for
    // seconds on a loaded machine), and a connection closed under them would
    // leave their ack unsent (the messages redelivered, then skipped by the
    // checkpoint). It ends once a grace passes with no commit; the shutdown's
    // own timeout bounds the whole.
    if (this.loop && (this.waitingFor === 'fetch, commit and ack' || this.groupsInHand > 0)) {
      const ended = this.loop.then(() => true);
      for (let seen = -1; seen !== this.commitsEnded;) {
        seen = this.commitsEnded;
        const grace = new AbortController();
        const over = await Promise.race([
          ended,
          sleep(ACK_GRACE_MS, false, { signal: grace.signal }).catch(() => false),
        ]);
        grace.abort();
        if (over) break;
      }
    }
    await this.nc?.close().catch(() => undefined);
    await this.loop;
    this.waitingFor = 'nothing';
  }

  private async run(): Promise<void> {
    let backoff = 250;
    while (!this.stopped) {
      try {
        this.waitingFor = 'connect and consumer';
        const prepared = this.attaching;
        this.attaching = null;
        const consumer = this.consumer ?? (await (prepared ?? this.attach()));
        this.waitingFor = 'fetch, commit and ack';
        const n = await this.fetchAndApply(consumer);
        backoff = 250;
        if (this.stopped) break;
        if (n === 0) {
          // Nothing arrived: nothing is committing either; the lag is asked of the server.
          this.waitingFor = 'consumer info';
          await this.refreshLag(consumer);
        } else if (performance.now() - this.infoAt > INFO_EVERY_MS) {
          // Asked beside the next pull, not before it: waiting here would let the
          // group just received commit with no pull in flight.
          this.refreshLag(consumer).catch((err: unknown) =>
            this.log.debug({ err: (err as Error).message }, 'jetstream consumer info failed'),
          );
        }
      } catch (err) {
        if (this.stopped) break;
        // Whatever was received before the failure commits (or fails) first: the
        // consumer is re-attached at the checkpoint that leaves.
        await this.settled();
        const message = (err as Error).message;
        // The client ends a pull once two of its heartbeat checks in a row (every
        // 500 ms) found nothing read: a loader whose loop sat in commits for a
        // second or more does that with nothing wrong. After progress it is
        // attached and pulled again at once; a server really gone fails that
        // too, and the failure is then reported and backed off.
        const busy = message === HEARTBEATS_MISSED && this.committedSinceRetry;
        if (busy)
          this.log.info({ stream: this.opts.stream }, 'jetstream pull ended on missed heartbeats; pulling again');
        else if (message !== this.lastError)
          this.log.warn({ err: message, stream: this.opts.stream }, 'jetstream source: retrying');
        if (!busy) this.lastError = message;
        this.pending = -1; // the last figure is no longer known to hold (a leader change, a lost server)
        this.serverPending = -1;
        // Re-resolved after reconnects and server restarts, and after any ended
        // pull: what it was handed and not applied must come again (attach()).
        this.consumer = null;
        if (busy) {
          this.committedSinceRetry = false;
          continue;
        }
        this.waitingFor = 'retry backoff';
        // A pull that applied messages before it failed made progress: the wait
        // starts over rather than doubling towards 5 s.
        if (this.committedSinceRetry) backoff = 250;
        this.committedSinceRetry = false;
        await sleep(backoff, undefined, { signal: this.halt.signal }).catch(() => undefined);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
    await this.settled();
  }

  /** Waits for the groups in hand to commit and ack (or fail), and starts a new chain. */
  private async settled(): Promise<void> {
    // A group scheduled before a failed pull ended may chain on while this waits.
    for (let chain = this.inHand; ; chain = this.inHand) {
      await chain.catch(() => undefined);
      if (chain === this.inHand) break;
    }
    this.inHand = Promise.resolve();
  }

  /** One connection (the client reconnects by itself); a stop during the connect closes it once made. */
  private async connection(): Promise<NatsConnection> {
    if (this.nc) return this.nc;
    const connecting = connect({
      servers: this.opts.servers,
      name: `segd ${this.opts.durable}`,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
    });
    const halted = new Promise<never>((_, reject) => {
      const onHalt = () => reject(new Error('jetstream source stopped while connecting'));
      if (this.halt.signal.aborted) onHalt();
      else this.halt.signal.addEventListener('abort', onHalt, { once: true });
    });
    halted.catch(() => undefined);
    connecting.then((nc) => (this.stopped ? nc.close() : undefined)).catch(() => undefined);
    const nc = await Promise.race([connecting, halted]);
    this.nc = nc;
    this.connected = true;
    void this.watchConnection(nc);
    return nc;
  }

  /** Follows the client's disconnects and reconnects, for `connected` (a metric, and the log). */
  private async watchConnection(nc: NatsConnection): Promise<void> {
    for await (const st of nc.status()) {
      if (st.type === 'disconnect' && this.connected) {
        this.connected = false;
        if (!this.stopped) this.log.warn({ server: st.server }, 'jetstream source: disconnected; reconnecting');
      } else if (st.type === 'reconnect') {
        this.connected = true;
        this.log.info({ server: st.server }, 'jetstream source: reconnected');
      }
    }
    this.connected = false;
  }

  /** Connects (once; the client reconnects by itself) and makes sure the durable consumer exists. */
  private async attach(): Promise<Consumer> {
    const nc = await this.connection();
    const jsm = await jetstreamManager(nc);
    const resumeAfter = (await this.ownOrAdoptedCheckpoint())?.seq ?? 0;
    let delivered: number | null;
    let maxAckPending = 0;
    // The backlog as the consumer stands: the first pull is sized by it (a
    // restored node's first pull of 1,000 cost a whole commit-and-ack cycle).
    let info: ConsumerInfo | null = null;
    try {
      info = await jsm.consumers.info(this.opts.stream, this.opts.durable);
      delivered = info.delivered.stream_seq;
      maxAckPending = info.config.max_ack_pending ?? 0;
    } catch {
      delivered = null; // no such consumer yet
    }
    // Our checkpoint, not the server's ack state, says where to go on. If the
    // consumer handed out messages this store never committed (segd died
    // between fetch and commit), they sit unacked until their ack wait — and
    // the next AckPolicy.All ack would drop them. So the consumer is put back
    // to the message after the checkpoint.
    if (delivered !== null && delivered > resumeAfter) {
      await jsm.consumers.delete(this.opts.stream, this.opts.durable);
      this.log.info({ delivered, resumeAfter }, 'jetstream consumer was ahead of the store; repositioning it');
      delivered = null;
    }
    if (delivered === null) {
      info = await jsm.consumers.add(this.opts.stream, {
        durable_name: this.opts.durable,
        ack_policy: AckPolicy.All,
        max_ack_pending: 2 * this.largestPull,
        filter_subject: this.opts.subject,
        ...(resumeAfter > 0
          ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: resumeAfter + 1 }
          : { deliver_policy: DeliverPolicy.All }),
      });
      this.log.info(
        { stream: this.opts.stream, durable: this.opts.durable, subject: this.opts.subject, from: resumeAfter + 1 },
        'jetstream consumer created',
      );
    } else if (maxAckPending !== -1 && maxAckPending < 2 * this.largestPull) {
      // A consumer made with the server's default (1,000) would hold a catch-up pull to that many messages.
      try {
        await jsm.consumers.update(this.opts.stream, this.opts.durable, { max_ack_pending: 2 * this.largestPull });
      } catch (err) {
        // Not allowed (an account's limits): the backlog is then pulled in the consumer's window.
        this.window = Math.max(1, maxAckPending);
        this.log.warn(
          { err: (err as Error).message, maxAckPending },
          'jetstream consumer: could not widen its ack window; pulling a backlog in that window',
        );
      }
    }
    this.consumer = await jetstream(nc).consumers.get(this.opts.stream, this.opts.durable);
    if (info !== null) this.lagOf(info);
    this.log.info(
      { stream: this.opts.stream, durable: this.opts.durable, resumeAfter, pending: this.pending },
      'jetstream source attached',
    );
    this.lastError = null;
    return this.consumer;
  }

  /** This durable's checkpoint, or one copied with the store for the same stream and subject (made this durable's). */
  private async ownOrAdoptedCheckpoint(): Promise<StreamCheckpoint | undefined> {
    const own = this.store.meta.get(this.checkpointKey) as StreamCheckpoint | undefined;
    if (own) return own;
    const prefix = `ckpt:nats:${this.opts.stream}:`;
    let adopted: { key: string; value: StreamCheckpoint } | undefined;
    for (const { key, value } of this.store.meta.getRange({ start: prefix, end: `${prefix}\uffff` })) {
      const cp = value as StreamCheckpoint;
      // Two copied checkpoints: the lower one, so nothing either covers is skipped (reapplying is idempotent).
      if (cp.subject === this.opts.subject && (!adopted || cp.seq < adopted.value.seq)) adopted = { key, value: cp };
    }
    if (!adopted) return undefined;
    await this.store.meta.put(this.checkpointKey, adopted.value);
    this.log.info(
      { from: adopted.key, seq: adopted.value.seq, durable: this.opts.durable },
      'jetstream checkpoint adopted from the copied store',
    );
    return adopted.value;
  }

  /**
   * One pull (up to SEGD_NATS_BATCH messages, or a second): messages are
   * applied as they arrive, not when the pull ends. Whatever arrived together
   * (drained from the client's buffer before the next turn of the event loop)
   * is one group; a group's commit and ack run while the next group gathers,
   * and the last group's while the next pull arrives: this returns once the
   * pull's messages are in and the previous pull's groups are committed, so at
   * most two pulls are unacked. Waiting for the whole pull held every message
   * back for up to its second: beside 20k lookups/s, publish → visible had a
   * p99 of 3.9 s. The next pull is asked for before the last group commits,
   * so the servers deliver it meanwhile (bench:restore at 10M: ×1.25–1.44 the
   * replay rate when the node and the servers are short of CPU; within the
   * runs' spread at moderate load).
   */
  private async fetchAndApply(consumer: Consumer): Promise<number> {
    const previous = this.inHand;
    // Behind by more than a pull: one big pull, one transaction (the messages are on the server already).
    const pull = Math.max(1, Math.floor(this.window / 2));
    const behind = this.serverPending >= 0 ? this.serverPending : this.pending;
    const max = Math.min(behind > this.opts.batch ? behind : this.opts.batch, pull);
    const asked = performance.now();
    const fetching = await consumer.fetch(
      max > this.opts.batch
        ? { max_messages: max, expires: CATCH_UP_EXPIRES_MS, idle_heartbeat: CATCH_UP_HEARTBEAT_MS }
        : { max_messages: max, expires: FETCH_EXPIRES_MS },
    );
    this.fetching = fetching;
    let firstAt = 0;
    if (this.stopped) fetching.stop();
    // A failed commit or ack before this pull: its messages are redelivered, not applied past the failure.
    previous.catch(() => fetching.stop());
    // Messages are parsed as they arrive and only the group's last is kept (for
    // its ack): a backlog's group holds up to 20,000, and holding the
    // messages themselves (each a view of the client's read buffer) until the
    // commit cost a fifth of the replay's CPU in garbage collection.
    let group: Received[] = [];
    let groupLast: JsMsg | null = null;
    let total = 0;
    let gathering = false;
    const applyGroup = () => {
      gathering = false;
      const items = group;
      const last = groupLast;
      group = [];
      groupLast = null;
      // Received after stop(): left unacked (redelivered and applied after the restart), not committed on the way out.
      if (last === null || this.stopped) return;
      this.groupsInHand++;
      const applied = this.inHand.then(async () => {
        // A turn of the event loop first: the next pull's request (queued by the
        // client for a microtask) is on the wire before this synchronous commit.
        await new Promise((r) => setImmediate(r));
        await this.applyMessages(items, last);
        // What the server had left behind the group's last message, and what arrived since.
        this.pending = last.info.pending + group.length;
      });
      this.inHand = applied;
      applied
        .catch(() => fetching.stop()) // the rest of this pull is redelivered (never acked) and skipped up to the checkpoint
        .finally(() => this.groupsInHand--);
    };
    try {
      for await (const m of fetching) {
        if (total === 0) firstAt = performance.now();
        group.push(this.receive(m));
        groupLast = m;
        this.serverPending = m.info.pending;
        total++;
        // A message the server has more behind (a backlog) waits for them, up to
        // a catch-up pull: one transaction for all. The last one of a backlog,
        // or a live one, is applied with whatever arrived with it.
        if (m.info.pending > 0 && group.length < pull) continue;
        if (!gathering) {
          gathering = true;
          setImmediate(applyGroup);
        }
      }
    } finally {
      this.fetching = null;
    }
    if (gathering) await new Promise((r) => setImmediate(r)); // the group scheduled last runs first
    applyGroup(); // what the pull ended on while more was pending
    const inAt = performance.now();
    // The previous pull's groups: committed and acked (or failed) before the next pull is asked for.
    await previous;
    this.log.debug(
      {
        asked: max,
        got: total,
        firstMs: total === 0 ? null : Math.round(firstAt - asked),
        inMs: Math.round(inAt - asked),
        previousMs: Math.round(performance.now() - inAt),
      },
      'jetstream pull',
    );
    return total;
  }

  /** One message's records (of this node's shard) and rejects, parsed synchronously (no promise per message). */
  private receive(m: JsMsg): Received {
    const body = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength);
    const msgpack = m.headers?.get('Content-Type')?.startsWith('application/msgpack') ?? false;
    let parsed: ParsedPush;
    try {
      parsed = parseBody(msgpack ? 'msgpack' : 'ndjson', body, nowSeconds(), this.opts.maxUidBytes);
    } catch (err) {
      // Parsing is pure: whatever it throws is this message's fault, so the message is the reject.
      parsed = { changes: [], rejects: [{ line: 0, reason: rejectReason(err) }] };
    }
    const shard = this.opts.shard;
    let changes = parsed.changes;
    if (shard !== null) {
      changes = [];
      for (const c of parsed.changes) {
        if (shardOf(c.uid, shard.count) === shard.index) changes.push(c);
        else
          parsed.rejects.push({ line: 0, reason: `user of shard ${shardOf(c.uid, shard.count)}, not ${shard.index}` });
      }
    }
    return { seq: m.info.streamSequence, subject: m.subject, changes, rejects: parsed.rejects };
  }

  /** Applies the messages of one group (in SEGD_LOADER_BATCH parts), then acks the last. */
  private async applyMessages(items: Received[], lastMsg: JsMsg): Promise<void> {
    const now = nowSeconds();
    const done = (this.store.meta.get(this.checkpointKey) as StreamCheckpoint | undefined)?.seq ?? 0;
    let changes: Change[] = [];
    const stats: JetStreamStats = { applied: 0, stale: 0, rejected: 0, skipped: 0 };
    let last = done;
    let committed = done;
    // One transaction per SEGD_LOADER_BATCH records, cut after a whole message:
    // each records the sequence of the last message it holds, so a crash
    // between parts resumes after it; the event loop turns between them.
    let commitMs = 0;
    const commit = async () => {
      const t = performance.now();
      const r = this.writer.apply(changes, now, {
        key: this.checkpointKey,
        value: { seq: last, at: now, subject: this.opts.subject } satisfies StreamCheckpoint,
      });
      stats.applied += r.applied;
      stats.stale += r.stale;
      committed = last;
      this.commitsEnded++;
      changes = [];
      commitMs += performance.now() - t;
      await new Promise((r) => setImmediate(r));
    };
    for (const { seq, subject, changes: received, rejects } of items) {
      if (seq <= done) {
        stats.skipped++;
        continue;
      }
      last = Math.max(last, seq);
      for (const c of received) changes.push(c);
      if (rejects.length) {
        stats.rejected += rejects.length;
        this.log.warn(
          { seq, subject, rejects: rejects.slice(0, 5) },
          'jetstream message rejected (acked, not retried)',
        );
      }
      if (changes.length >= this.opts.maxRecords) await commit();
    }
    if (last > committed) await commit();
    // Counted once committed, whatever happens to the ack (a lost ack means a
    // redelivery, which the checkpoint then skips).
    this.onBatch?.(stats);
    const ackFrom = performance.now();
    // Acked only after the commit above: AckPolicy.All acks the whole batch.
    this.committedSinceRetry = true;
    await lastMsg.ackAck();
    this.log.debug(
      {
        from: items[0]!.seq,
        to: last,
        done,
        ...stats,
        commitMs: Math.round(commitMs),
        ackMs: Math.round(performance.now() - ackFrom),
      },
      'jetstream batch committed and acked',
    );
  }

  private async refreshLag(consumer: Consumer): Promise<void> {
    this.infoAt = performance.now();
    this.lagOf(await consumer.info(false)); // false: ask the server, not the cache
  }

  private lagOf(info: ConsumerInfo): void {
    this.pending = info.num_pending + info.num_ack_pending;
    this.serverPending = info.num_pending;
  }
}
