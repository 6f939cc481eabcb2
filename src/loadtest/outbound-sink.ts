// The `outbound` tail scenario's companion: lookups while segd delivers
// membership changes to a destination. The harness starts a webhook sink
// (node:http, answering 200 to every batch), registers a partner licensed
// the feed's segment and a destination pointing at the sink through the
// admin API, and runs the push feed (the `mixed` companion) so every record
// it applies is a change segd delivers. Reported beside the lookups: changes
// delivered per second and the destination's lag and backlog, polled once a
// second. The partner and destination are removed at the end.
import { performance } from 'node:perf_hooks';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Background, BackgroundReport } from './background.js';
import { fmtInt as int } from './gate.js';

export interface OutboundSinkOptions {
  origin: string;
  adminKey: string;
  /** The feed's segment: the only one the destination receives. */
  segment: number;
  /** The push feed companion: it makes the changes. */
  feed: Background;
  /** Where the sink listens (the target must reach it: 127.0.0.1 when both run on one machine). */
  host?: string;
}

/** The partner and destination the scenario registers (and removes). */
export const OUTBOUND_ID = 'loadtest-outbound';
const POLL_MS = 1000;

export class OutboundSink implements Background {
  private server: Server | null = null;
  private users = 0;
  private requests = 0;
  private usersAtStart = 0;
  private t0 = 0;
  private poll: NodeJS.Timeout | null = null;
  private readonly lag: number[] = [];
  private maxBacklog = 0;
  private pollError: string | undefined;

  constructor(private readonly o: OutboundSinkOptions) {}

  private admin(method: string, path: string, body?: unknown): Promise<Response> {
    return fetch(`${this.o.origin}/v1/admin/${path}`, {
      method,
      headers: { authorization: `Bearer ${this.o.adminKey}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async prepare(): Promise<void> {
    await this.o.feed.prepare();
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        try {
          this.users += (JSON.parse(Buffer.concat(chunks).toString()) as { users: unknown[] }).users.length;
        } catch {
          // Counted as a request all the same: segd's body is JSON, a broken one is its to explain.
        }
        this.requests++;
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    const host = this.o.host ?? '127.0.0.1';
    await new Promise<void>((resolve) => this.server!.listen(0, host, resolve));
    const { port } = this.server.address() as AddressInfo;
    for (const [path, body] of [
      [`partners/${OUTBOUND_ID}`, { segments: [this.o.segment] }],
      [
        `destinations/${OUTBOUND_ID}`,
        { partner: OUTBOUND_ID, url: `http://${host}:${port}/`, segments: [this.o.segment], maxDelayMs: 200 },
      ],
    ] as const) {
      const r = await this.admin('PUT', path, body);
      if (r.status >= 300) throw new Error(`outbound: PUT /v1/admin/${path} answered ${r.status}: ${await r.text()}`);
    }
  }

  start(): void {
    this.o.feed.start();
    this.t0 = performance.now();
    this.usersAtStart = this.users;
    this.poll = setInterval(() => void this.sample(), POLL_MS);
  }

  private async sample(): Promise<void> {
    try {
      const r = await this.admin('GET', `destinations/${OUTBOUND_ID}`);
      const d = ((await r.json()) as { destination: { delivery: { lagSeconds: number; backlog: number } } }).destination
        .delivery;
      this.lag.push(d.lagSeconds);
      this.maxBacklog = Math.max(this.maxBacklog, d.backlog);
    } catch (err) {
      this.pollError ??= (err as Error).message;
    }
  }

  async stop(): Promise<BackgroundReport | null> {
    if (this.poll) clearInterval(this.poll);
    const started = this.t0 > 0;
    const seconds = (performance.now() - this.t0) / 1000;
    const delivered = this.users - this.usersAtStart;
    const feed = await this.o.feed.stop();
    // Removed whatever happened: the target must not go on pushing to a sink that is gone.
    await this.admin('DELETE', `destinations/${OUTBOUND_ID}`).catch(() => undefined);
    await this.admin('DELETE', `partners/${OUTBOUND_ID}`).catch(() => undefined);
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    if (!started) return null;
    const lag = [...this.lag].sort((a, b) => a - b);
    const figures = {
      deliveredChanges: delivered,
      deliveredPerS: delivered / seconds,
      requests: this.requests,
      lagSeconds: { p50: lag[Math.floor(lag.length / 2)] ?? 0, max: lag[lag.length - 1] ?? 0, samples: lag.length },
      maxBacklog: this.maxBacklog,
      feed: feed?.figures ?? null,
    };
    const warnings = [feed?.warning, this.pollError && `polling the destination failed: ${this.pollError}`];
    if (delivered === 0) warnings.push('nothing was delivered to the sink');
    const warning = warnings.filter(Boolean).join('; ');
    return {
      label: 'outbound',
      text:
        `${int(delivered)} changes delivered (${int(figures.deliveredPerS)}/s) in ${int(this.requests)} requests; ` +
        `lag p50 ${figures.lagSeconds.p50.toFixed(2)} s, max ${figures.lagSeconds.max.toFixed(2)} s; backlog max ${int(this.maxBacklog)}` +
        (feed ? ` — ${feed.text}` : ''),
      short: `out ${int(figures.deliveredPerS)}/s, lag max ${figures.lagSeconds.max.toFixed(1)} s`,
      ...(warning ? { warning } : {}),
      figures,
    };
  }
}
