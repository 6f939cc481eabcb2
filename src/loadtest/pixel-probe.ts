// The `pixel` scenario's companion: how soon a /px hit is visible, and how
// many hits the writer stored. Every `everyMs` one hit carries a browser no
// one else has (a fresh cookie); from its answer the probe polls the lookup
// route, with the admin key (exposure segments are licensed to no partner),
// until the browser holds an exposure segment. The hits the writer stored or
// refused over the window come from segd's own counters.
import { performance } from 'node:perf_hooks';
import { createHash } from 'node:crypto';
import { EXPOSURE_FIRST_ID } from '../loader/exposures.js';
import type { Background, BackgroundReport } from './background.js';
import { fmtUs, fmtInt as int } from './gate.js';
import { scrape } from './metrics-scrape.js';
import { percentilesOf, usHistogram } from './recorder.js';

/** A probe not visible after this long counts as never seen. */
const GIVE_UP_MS = 10_000;
/** Between polls of a probe. */
const POLL_MS = 5;

/** The cookie value standing for a load-test key: segd uids are 22 base64url characters. */
export function cookieUid(key: string): string {
  return createHash('sha256').update(key).digest('base64url').slice(0, 22);
}

const storedOf = (s: Map<string, number>, outcome: string) =>
  s.get(`segd_queued_writes_total{queue="exposures",outcome="${outcome}"}`) ?? 0;

export class PixelProbe implements Background {
  private running = false;
  private loop: Promise<void> = Promise.resolve();
  private readonly visible = usHistogram(3);
  private lost = 0;
  private before = new Map<string, number>();
  private t0 = 0;
  private error: string | undefined;

  constructor(
    private readonly o: { origin: string; adminKey: string; cookieName: string; everyMs: number; seed: number },
  ) {}

  async prepare(): Promise<void> {
    const r = await fetch(`${this.o.origin}/v1/segments?uid=lt-probe-check`, {
      headers: { authorization: `Bearer ${this.o.adminKey}` },
    });
    if (r.status === 401 || r.status === 403) throw new Error('pixel: --admin-key is not an admin key of the target');
  }

  start(): void {
    this.running = true;
    this.t0 = performance.now();
    this.loop = (async () => {
      this.before = (await scrape(this.o.origin)).samples;
      let n = 0;
      while (this.running) {
        const t = performance.now();
        try {
          await this.probe(cookieUid(`lt-pixel-probe-${this.o.seed}-${process.pid}-${n++}`));
        } catch (err) {
          this.error ??= (err as Error).message;
        }
        const wait = this.o.everyMs - (performance.now() - t);
        if (wait > 0 && this.running) await new Promise((r) => setTimeout(r, wait));
      }
    })();
  }

  private async probe(uid: string): Promise<void> {
    const hit = await fetch(`${this.o.origin}/px?c=lt-probe&e=imp&f=n`, {
      headers: { cookie: `${this.o.cookieName}=${uid}` },
    });
    if (hit.status !== 204) throw new Error(`/px answered ${hit.status}`);
    const t = performance.now();
    for (;;) {
      const r = await fetch(`${this.o.origin}/v1/segments?uid=${uid}`, {
        headers: { authorization: `Bearer ${this.o.adminKey}` },
      });
      const { segments } = (await r.json()) as { segments?: number[] };
      if (segments?.some((id) => id >= EXPOSURE_FIRST_ID)) {
        this.visible.recordValue(Math.max(1, Math.round((performance.now() - t) * 1000)));
        return;
      }
      if (performance.now() - t > GIVE_UP_MS) {
        this.lost++;
        return;
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  async stop(): Promise<BackgroundReport | null> {
    if (!this.running) return null;
    this.running = false;
    await this.loop;
    const seconds = (performance.now() - this.t0) / 1000;
    const after = (await scrape(this.o.origin)).samples;
    const stored = storedOf(after, 'stored') - storedOf(this.before, 'stored');
    const refused = storedOf(after, 'refused') - storedOf(this.before, 'refused');
    const lostWrites = storedOf(after, 'lost') - storedOf(this.before, 'lost');
    const p = percentilesOf(this.visible);
    const warnings: string[] = [];
    if (refused || lostWrites) warnings.push(`${int(refused)} hits refused and ${int(lostWrites)} lost by the writer`);
    if (this.lost) warnings.push(`${this.lost} probes never seen within ${GIVE_UP_MS / 1000} s`);
    if (this.error) warnings.push(`pixel probe: ${this.error}`);
    return {
      label: 'exposures',
      text:
        `${int(stored)} hits stored by the writer (${int(stored / seconds)}/s), ${int(refused)} refused, ${int(lostWrites)} lost; ` +
        `pixel answer → visible to a lookup p50 ${fmtUs(p.p50)}, p99 ${fmtUs(p.p99)}, max ${fmtUs(p.max)} over ${this.visible.totalCount} probes`,
      short: `${int(stored / seconds)} stored/s, visible p99 ${fmtUs(p.p99)}`,
      ...(warnings.length ? { warning: warnings.join('; ') } : {}),
      figures: { stored, refused, lost: lostWrites, storedPerS: stored / seconds, visibleUs: p, neverSeen: this.lost },
    };
  }
}
