// What runs beside the lookups in the tail scenarios, besides a feed
// (feed-stream.ts): a snapshot generation swap, a TTL sweep that expires many
// memberships, filter saves, and a cookie-sync stream. Each prepares before
// the warm-up (so its set-up is not measured), starts as the measured window
// opens and reports what it did, so a lookup tail can be read against it.
import { performance } from 'node:perf_hooks';
import { createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Synthetic, DEFAULT_SYNTHETIC, uidFor, writeSyntheticFeed } from '../gen/synthetic.js';
import { driveHttp, type DriveResult } from './drive-http.js';
import type { OpenLoopClient } from './native-client.js';
import type { HttpReq } from './scenarios.js';
import { fmtUs, fmtInt as int } from './gate.js';
import { pushSender } from './feed-stream.js';
import type { Background, BackgroundReport } from './background.js';

const admin = (key: string) => ({ Authorization: `Bearer ${key}` });

async function maintenance(
  origin: string,
  adminKey: string,
  task: 'sweep' | 'filter-save',
): Promise<{ ran: boolean; ms: number; detail: Record<string, number> }> {
  const r = await fetch(`${origin}/v1/admin/maintenance/${task}`, {
    method: 'POST',
    headers: admin(adminKey),
    signal: AbortSignal.timeout(120_000),
  });
  const text = await r.text();
  if (r.status !== 200)
    throw new Error(`POST /v1/admin/maintenance/${task} answered ${r.status}: ${text.slice(0, 200)}`);
  return JSON.parse(text) as { ran: boolean; ms: number; detail: Record<string, number> };
}

/**
 * A snapshot generation swap of the data set the target holds (the same
 * users, so lookups answer alike before and after): the snapshot is written
 * into the target's inbox under a name the inbox ignores, and renamed to a
 * snapshot name as the window opens. The swap is over when the inbox has
 * moved the file away (to done/).
 */
export class SnapshotSwap implements Background {
  private readonly staged: string;
  private live = '';
  private startedAt = 0;
  private finishedMs: number | null = null;
  private watching: Promise<void> = Promise.resolve();
  private stopped = false;
  private bytes = 0;

  constructor(private readonly o: { inbox: string; users: number; seed: number; say: (m: string) => void }) {
    this.staged = join(o.inbox, `.loadtest-swap-${process.pid}.snapshot.ndjson`);
  }

  async prepare(): Promise<void> {
    const part = `${this.staged}.part`;
    const t0 = performance.now();
    const stream = createWriteStream(part, { highWaterMark: 1 << 20 });
    const gen = new Synthetic({ ...DEFAULT_SYNTHETIC, seed: this.o.seed });
    await writeSyntheticFeed(stream, gen, this.o.users, Math.floor(Date.now() / 1000));
    await new Promise<void>((resolve, reject) => stream.end((err?: Error | null) => (err ? reject(err) : resolve())));
    await rename(part, this.staged);
    this.bytes = (await stat(this.staged)).size;
    this.o.say(
      `swap: wrote a ${int(this.o.users)}-user snapshot (${int(this.bytes / 1048576)} MB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  }

  start(): void {
    this.live = join(this.o.inbox, `loadtest-swap-${process.pid}-${Date.now()}.snapshot.ndjson`);
    this.startedAt = performance.now();
    this.watching = (async () => {
      await rename(this.staged, this.live);
      while (!this.stopped) {
        await new Promise((r) => setTimeout(r, 50));
        if (!(await stat(this.live).catch(() => null))) {
          this.finishedMs = performance.now() - this.startedAt;
          return;
        }
      }
    })();
  }

  async stop(): Promise<BackgroundReport | null> {
    this.stopped = true;
    await this.watching.catch(() => undefined);
    await rm(`${this.staged}.part`, { force: true });
    await rm(this.staged, { force: true });
    if (!this.startedAt) return null;
    const done = this.finishedMs !== null;
    return {
      label: 'snapshot swap',
      text: `${int(this.o.users)} users (${int(this.bytes / 1048576)} MB) dropped into the inbox as the window opened; ${done ? `loaded and flipped in ${(this.finishedMs! / 1000).toFixed(1)} s` : 'still loading when the window closed'}`,
      short: done ? `swap ${(this.finishedMs! / 1000).toFixed(1)} s` : 'swap unfinished',
      ...(done
        ? {}
        : {
            warning: `the snapshot swap did not finish inside the measured window: the figures cover part of it (raise --duration); it goes on in the target`,
          }),
      figures: { users: this.o.users, bytes: this.bytes, swapMs: this.finishedMs },
    };
  }
}

/**
 * A TTL sweep that expires `memberships` memberships: before the warm-up they
 * are pushed (distinct known users, the marker segment, TTL 1 s), so they
 * have expired when the window opens; then one sweep pass is asked for.
 */
export class BigSweep implements Background {
  private pass: Promise<{ ran: boolean; ms: number; detail: Record<string, number> } | string> | null = null;

  constructor(
    private readonly o: {
      origin: string;
      adminKey: string;
      ingestKey: string;
      memberships: number;
      users: number;
      seed: number;
      segment: number;
      say: (m: string) => void;
    },
  ) {}

  async prepare(): Promise<void> {
    const n = Math.min(this.o.memberships, this.o.users);
    const push = pushSender(this.o.origin, this.o.ingestKey);
    const t0 = performance.now();
    const BATCH = 5000;
    for (let from = 0; from < n; from += BATCH * 4) {
      const sends: Array<Promise<unknown>> = [];
      for (let b = from; b < Math.min(n, from + BATCH * 4); b += BATCH) {
        let body = '';
        for (let i = b; i < Math.min(n, b + BATCH); i++)
          body += `{"op":"add","uid":"${uidFor(this.o.seed, i)}","segments":[{"id":${this.o.segment},"ttl":1}]}\n`;
        sends.push(push.send(body));
      }
      await Promise.all(sends);
    }
    this.o.say(
      `sweep: pushed ${int(n)} memberships with a 1 s TTL in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    // Expiry is kept in whole seconds: 2 s after the last push every one of them has expired.
    await new Promise((r) => setTimeout(r, 2100));
  }

  start(): void {
    // A pass runs once the earliest expiry (whole seconds) has passed: ask until one ran.
    this.pass = (async () => {
      for (let tries = 0; tries < 20; tries++) {
        const a = await maintenance(this.o.origin, this.o.adminKey, 'sweep');
        if (a.ran) return a;
        await new Promise((r) => setTimeout(r, 250));
      }
      return 'no sweep pass ran: nothing had expired yet';
    })().catch((err: unknown) => (err as Error).message);
  }

  async stop(): Promise<BackgroundReport | null> {
    if (!this.pass) return null;
    const a = await this.pass;
    if (typeof a === 'string')
      return { label: 'TTL sweep', text: a, short: 'no sweep', warning: `TTL sweep: ${a}`, figures: { error: a } };
    const removed = a.detail.removed ?? 0;
    const want = Math.min(this.o.memberships, this.o.users);
    return {
      label: 'TTL sweep',
      text: `one pass: ${int(a.detail.scanned ?? 0)} users scanned, ${int(removed)} expired memberships removed in ${(a.ms / 1000).toFixed(2)} s`,
      short: `sweep ${int(removed)} in ${(a.ms / 1000).toFixed(1)} s`,
      ...(removed < want * 0.9
        ? {
            warning: `the sweep removed ${int(removed)} of the ${int(want)} memberships set to expire (the target's own sweep may have run first)`,
          }
        : {}),
      figures: { requested: want, ...a },
    };
  }
}

/** Full filter saves, one a second (each writes the whole known-users filter). */
export class FilterSaves implements Background {
  private running = false;
  private loop: Promise<void> = Promise.resolve();
  private readonly ms: number[] = [];
  private bytes = 0;
  private error: string | undefined;

  constructor(private readonly o: { origin: string; adminKey: string }) {}

  async prepare(): Promise<void> {
    const a = await maintenance(this.o.origin, this.o.adminKey, 'filter-save');
    if (!a.ran) throw new Error('the target keeps no known-users filter (SEGD_BLOOM_USERS=0): nothing to save');
  }

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const t = performance.now();
        try {
          const a = await maintenance(this.o.origin, this.o.adminKey, 'filter-save');
          this.ms.push(a.ms);
          this.bytes = a.detail.bytes ?? 0;
        } catch (err) {
          this.error ??= (err as Error).message;
        }
        const wait = 1000 - (performance.now() - t);
        if (wait > 0 && this.running) await new Promise((r) => setTimeout(r, wait));
      }
    })();
  }

  async stop(): Promise<BackgroundReport | null> {
    if (!this.running) return null;
    this.running = false;
    await this.loop;
    const sorted = [...this.ms].sort((a, b) => a - b);
    const med = sorted[Math.floor(sorted.length / 2)] ?? 0;
    return {
      label: 'filter saves',
      text: `${this.ms.length} full saves of ${int(this.bytes / 1024)} KB, one a second; median ${med.toFixed(1)} ms, max ${(sorted.at(-1) ?? 0).toFixed(1)} ms`,
      short: `${this.ms.length} saves`,
      ...(this.error ? { warning: `filter save: ${this.error}` } : {}),
      figures: { saves: this.ms.length, bytes: this.bytes, ms: this.ms },
    };
  }
}

/**
 * Cookie syncs at `rate`/s (GET /sync/in, no cookie: each one a new browser,
 * so each writes an id link through the writer), sent by the open-loop
 * client in its own process: sent from this process, 2k fetches a second
 * took the harness's event loop (and the lookups' schedule) tens of ms late.
 */
export class SyncStream implements Background {
  private run: Promise<DriveResult | string> | null = null;

  constructor(
    private readonly o: {
      origin: string;
      partner: string;
      rate: number;
      seed: number;
      durationS: number;
      client: OpenLoopClient;
      rt: boolean;
    },
  ) {}

  async prepare(): Promise<void> {
    const r = await fetch(`${this.o.origin}/sync/in?partner=${encodeURIComponent(this.o.partner)}&puid=lt-sync-probe`, {
      redirect: 'manual',
    });
    await r.arrayBuffer();
    if (r.status >= 400)
      throw new Error(
        `GET /sync/in?partner=${this.o.partner} answered ${r.status}: the target has no sync template for --partner ${this.o.partner}`,
      );
  }

  start(): void {
    if (this.o.rate <= 0) return;
    const url = new URL(this.o.origin);
    const p = encodeURIComponent(this.o.partner);
    // Distinct partner uids for the whole window (cycled past it).
    const n = Math.min(1_000_000, Math.ceil(this.o.rate * this.o.durationS) + 1);
    const requests: HttpReq[] = [];
    for (let i = 0; i < n; i++)
      requests.push({
        method: 'GET',
        path: `/sync/in?partner=${p}&puid=lt-sync-${this.o.seed}-${process.pid}-${i}`,
        headers: {},
      });
    this.run = driveHttp({
      host: url.hostname,
      port: Number(url.port || 80),
      requests,
      generator: 'client',
      client: this.o.client,
      realtime: this.o.rt,
      rate: this.o.rate,
      connections: 8,
      warmupS: 0,
      durationS: this.o.durationS,
      timeoutS: 10,
      maxRequests: 1_000_000_000,
      // A pixel (200/204) or a redirect to the next partner (302) are both answers.
      okBelow: 400,
    }).catch((err: unknown) => (err as Error).message);
  }

  async stop(): Promise<BackgroundReport | null> {
    if (!this.run) return null;
    const r = await this.run;
    if (typeof r === 'string')
      return {
        label: 'cookie syncs',
        text: r,
        short: 'syncs failed',
        warning: `sync stream: ${r}`,
        figures: { error: r },
      };
    const { slow: _s, ...f } = r.figures;
    return {
      label: 'cookie syncs',
      text: `${int(f.requests)} GET /sync/in (${int(f.rps)}/s of ${int(this.o.rate)}), ${int(f.errorCount)} failed; answer p50 ${fmtUs(f.latencyUs.p50)}, p99 ${fmtUs(f.latencyUs.p99)} (${r.info.generator})`,
      short: `syncs ${int(f.rps)}/${int(this.o.rate)}/s`,
      ...(f.rps < this.o.rate * 0.95
        ? { warning: `the sync stream reached ${int(f.rps)} of ${int(this.o.rate)} syncs/s` }
        : {}),
      figures: { rate: this.o.rate, perS: f.rps, ...f },
    };
  }
}
