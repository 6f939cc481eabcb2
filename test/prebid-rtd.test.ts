// segd's Prebid RTD module with the real Prebid.js (npm `prebid.js`, its
// precompiled modules bundled here with esbuild) in a real headless
// Chromium, against a real segd: a publisher page on 127.0.0.1 runs an
// auction with two bidders ("alpha", allow-listed for segd partner dspa, and
// "beta") whose endpoint records the OpenRTB requests Prebid sends; segd is
// reached through a local relay on `localhost` (segd's cookie is Secure: see
// helpers/browser.ts) that counts /v1/rtd calls and can hold them (a slow
// segd). A stub CMP answers with real TCF strings.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createServer, request as httpRequest, type Server, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { build } from 'esbuild';
import type { Page } from 'playwright-core';
import { ROOT, waitFor, type Segd } from './helpers/server.js';
import { startRtdSegd, UID, type RtdSegd } from './fixtures/prebid/segd.js';
import { launchBrowser, type Browser } from './helpers/browser.js';
import { tcfString, gppUsNat, TEST_VENDOR } from './helpers/tcf.js';

const PREBID = join(ROOT, 'node_modules/prebid.js/dist/src');
/** Long enough that an auction ending before it proves the module called back (not Prebid's timer). */
const AUCTION_DELAY = 2000;
const CONSENT = tcfString({ vendors: [TEST_VENDOR], purposes: [1, 4] });
const REFUSED = tcfString({ vendors: [], purposes: [1] });

/** Prebid core, the RTD and consent modules, segd's module and the test bidders, as one page script. */
async function bundlePrebid(): Promise<string> {
  const mod = (p: string) => JSON.stringify(join(PREBID, p));
  const entry = [
    `import pbjs from ${mod('src/prebid.public.js')};`,
    ...['rtdModule', 'consentManagementTcf', 'consentManagementUsp', 'consentManagementGpp'].map(
      (m) => `import ${mod(`public/${m}.js`)};`,
    ),
    `import ${JSON.stringify(join(ROOT, 'integrations/prebid/segdRtdProvider.js'))};`,
    `import ${JSON.stringify(join(ROOT, 'test/fixtures/prebid/recorderBidAdapter.js'))};`,
    'pbjs.processQueue();',
  ].join('\n');
  const out = await build({
    stdin: { contents: entry, resolveDir: ROOT, loader: 'js' },
    bundle: true,
    format: 'iife',
    write: false,
    logLevel: 'error',
    plugins: [
      {
        // Modules outside Prebid's tree import core as if they were in modules/ (Prebid's module rules).
        name: 'prebid-module-imports',
        setup(b) {
          b.onResolve({ filter: /^\.\.\/(src|libraries)\// }, (args) =>
            args.importer.startsWith(PREBID) ? undefined : { path: join(PREBID, args.path.slice(3)) },
          );
        },
      },
    ],
  });
  return out.outputFiles[0]!.text;
}

const listen = (s: Server, host: string) =>
  new Promise<number>((r) => s.listen(0, host, () => r((s.address() as { port: number }).port)));
const body = (req: IncomingMessage) =>
  new Promise<string>((r) => {
    let b = '';
    req.on('data', (c: Buffer) => (b += c.toString()));
    req.on('end', () => r(b));
  });

let rtd: RtdSegd;
let segd: Segd;
let browser: Browser;
let script: string;
const servers: Server[] = [];
let pubOrigin = '';
let recorderUrl = '';
let relayBase = '';
let downBase = '';

/** OpenRTB requests the bidders sent, by bidder. */
const bids: Array<{ bidder: string; ortb: { user?: { data?: unknown[] } } }> = [];
/** /v1/rtd calls the relay saw; `hold` keeps answers back until released (a slow segd). */
const relay = { rtdCalls: 0, urls: [] as string[], hold: false, held: [] as Array<() => void> };

beforeAll(async () => {
  script = await bundlePrebid();
  const publisher = createServer((req, res) => {
    if (req.url === '/prebid.js') {
      res.writeHead(200, { 'Content-Type': 'application/javascript' });
      res.end(script);
    } else {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end('<!doctype html><title>news</title><script src="/prebid.js"></script><div id="top"></div>');
    }
  });
  const recorder = createServer((req, res) => {
    const cors = { 'Access-Control-Allow-Origin': req.headers.origin ?? '*' };
    if (req.method !== 'POST') {
      res.writeHead(204, { ...cors, 'Access-Control-Allow-Headers': 'content-type' });
      return res.end();
    }
    void body(req).then((b) => {
      const bidder = new URL(req.url!, 'http://x').searchParams.get('bidder')!;
      bids.push({ bidder, ortb: JSON.parse(b) as { user?: { data?: unknown[] } } });
      res.writeHead(204, cors);
      res.end();
    });
  });
  servers.push(publisher, recorder);
  pubOrigin = `http://127.0.0.1:${await listen(publisher, '127.0.0.1')}`;
  recorderUrl = `http://127.0.0.4:${await listen(recorder, '127.0.0.4')}/bid`;
  // A port nobody listens on: segd down.
  const gone = createServer();
  const goneport = await listen(gone, '127.0.0.1');
  await new Promise((r) => gone.close(r));
  downBase = `http://localhost:${goneport}`;

  rtd = await startRtdSegd(pubOrigin);
  segd = rtd.segd;
  const segdPort = segd.port;
  const proxy = createServer((req, res) => {
    if (req.url!.startsWith('/v1/rtd')) {
      relay.rtdCalls++;
      relay.urls.push(req.url!);
    }
    const forward = () => {
      const up = httpRequest(
        { host: '127.0.0.1', port: segdPort, path: req.url, method: req.method, headers: req.headers },
        (u) => {
          res.writeHead(u.statusCode!, u.headers);
          u.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    };
    if (relay.hold && req.url!.startsWith('/v1/rtd')) relay.held.push(forward);
    else forward();
  });
  servers.push(proxy);
  relayBase = `http://localhost:${await listen(proxy, '127.0.0.1')}`;
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  await rtd?.stop();
});

interface AuctionResult {
  ms: number;
  targeting: Record<string, Record<string, unknown>>;
}

interface Gpp {
  gppString: string;
  applicableSections: number[];
  parsedSections: Record<string, object>;
}

interface Setup {
  endpoint?: string;
  tc?: string;
  cacheTtl?: number;
  /** US Privacy and GPP as a CMP would give them (Prebid's `static` CMP setting). */
  usp?: string;
  gpp?: Gpp;
  /** Whether the auction waits for segd (default true). */
  waitForIt?: boolean;
  /** The module's `bidders` param (default alpha → dspa). */
  bidders?: Record<string, string>;
}

/** A fresh page view with the segd cookie and one auction; what the page saw. */
async function auction(s: Setup = {}): Promise<{ page: Page; result: AuctionResult }> {
  const page = await browser.ctx.newPage();
  await page.goto(pubOrigin);
  const result = await page.evaluate(
    ({ endpoint, tc, purposes, recorder, delay, cacheTtl, usp, gpp, waitForIt, bidders }) =>
      new Promise<AuctionResult>((resolve) => {
        const w = globalThis as unknown as {
          __tcfapi: unknown;
          pbjs: {
            que: Array<() => void>;
            setConfig(c: object): void;
            addAdUnits(u: object[]): void;
            requestBids(o: object): void;
            getAdserverTargeting(): Record<string, Record<string, unknown>>;
          };
        };
        const tcData = {
          tcString: tc,
          gdprApplies: true,
          eventStatus: 'tcloaded',
          cmpStatus: 'loaded',
          listenerId: 1,
          purpose: { consents: purposes },
          vendor: { consents: {} },
        };
        w.__tcfapi = (cmd: string, _v: number, cb: (d: unknown, ok: boolean) => void) => {
          if (cmd === 'ping') cb({ cmpLoaded: true, gdprApplies: true }, true);
          else cb(tcData, true);
        };
        w.pbjs.que.push(() => {
          w.pbjs.setConfig({
            bidderTimeout: 2000,
            consentManagement: {
              gdpr: { cmpApi: 'iab', timeout: 1000 },
              ...(usp ? { usp: { cmpApi: 'static', consentData: { getUSPData: { uspString: usp } } } } : {}),
              ...(gpp ? { gpp: { cmpApi: 'static', consentData: gpp } } : {}),
            },
            realTimeData: {
              auctionDelay: delay,
              dataProviders: [
                {
                  name: 'segd',
                  waitForIt,
                  params: {
                    endpoint,
                    partnerKey: 'pubnews',
                    bidders,
                    segtax: { 600: 601 },
                    cacheTtl,
                  },
                },
              ],
            },
          });
          w.pbjs.addAdUnits([
            {
              code: 'top',
              mediaTypes: { banner: { sizes: [[300, 250]] } },
              bids: [
                { bidder: 'alpha', params: { endpoint: recorder } },
                { bidder: 'beta', params: { endpoint: recorder } },
              ],
            },
          ]);
          const t0 = performance.now();
          w.pbjs.requestBids({
            bidsBackHandler: () => resolve({ ms: performance.now() - t0, targeting: w.pbjs.getAdserverTargeting() }),
          });
        });
      }),
    {
      endpoint: s.endpoint ?? relayBase,
      tc: s.tc ?? CONSENT,
      // What the stub CMP says the string holds (Prebid reads tcData; segd decodes the string itself).
      purposes: s.tc === REFUSED ? { 1: true } : { 1: true, 4: true },
      recorder: recorderUrl,
      delay: AUCTION_DELAY,
      cacheTtl: s.cacheTtl ?? 0,
      usp: s.usp ?? null,
      gpp: s.gpp ?? null,
      waitForIt: s.waitForIt ?? true,
      bidders: s.bidders ?? { alpha: 'dspa' },
    },
  );
  return { page, result };
}

/** The module's localStorage entry on the publisher's origin (the test's tsconfig has no DOM types: expressions as strings). */
const cached = (page: Page) => page.evaluate<string | null>("localStorage.getItem('segd_rtd')");
const forget = (page: Page) => page.evaluate("localStorage.removeItem('segd_rtd')");

const segdData = (bidder: string) => {
  const b = bids.filter((x) => x.bidder === bidder).at(-1);
  expect(b, `a bid request to ${bidder}`).toBeDefined();
  return (b!.ortb.user?.data ?? []) as Array<{ name: string; ext: { segtax: number }; segment: Array<{ id: string }> }>;
};
const segmentsBySegtax = (data: ReturnType<typeof segdData>) =>
  data.map((d) => [d.ext.segtax, d.segment.map((s) => s.id)]);

describe('segd RTD module in Prebid.js', () => {
  beforeEach(async () => {
    bids.length = 0;
    relay.hold = false;
    await browser.ctx.clearCookies();
    await browser.ctx.addCookies([
      { name: 'segd', value: UID, domain: 'localhost', path: '/', secure: true, httpOnly: true, sameSite: 'None' },
    ]);
  });

  it("puts the publisher's licensed segments into every bid request, one Data object per segtax; bidder data only for the allow-listed bidder", async () => {
    const before = relay.rtdCalls;
    const { page, result } = await auction();
    expect(relay.rtdCalls).toBe(before + 1);
    // The global data: 1001 (segtax 4) and 2001 (segd's 600, mapped to 601); never 3001 (dspa's) or 9001 (nobody's).
    expect(segmentsBySegtax(segdData('beta'))).toEqual([
      [4, ['1001']],
      [601, ['2001']],
    ]);
    expect(segdData('beta').every((d) => d.name.length > 0)).toBe(true);
    // alpha (for dspa) gets the same plus dspa's own segment.
    expect(segmentsBySegtax(segdData('alpha'))).toEqual([
      [4, ['1001']],
      [601, ['2001']],
      [4, ['3001']],
    ]);
    expect(result.ms).toBeLessThan(AUCTION_DELAY); // the module called back as segd answered
    await page.close();
  });

  it('puts the ad-server targeting key into pbjs.getAdserverTargeting()', async () => {
    const { page, result } = await auction();
    expect(result.targeting.top).toMatchObject({ seg: '1001,2001' });
    await page.close();
  });

  it('a refused TCF string: no call to segd, nothing stored, the auction runs as usual', async () => {
    const before = relay.rtdCalls;
    const { page, result } = await auction({ tc: REFUSED, cacheTtl: 600 });
    expect(relay.rtdCalls).toBe(before);
    expect(segdData('alpha')).toEqual([]);
    expect(segdData('beta')).toEqual([]);
    expect(result.targeting.top?.seg).toBeUndefined();
    expect(await cached(page)).toBeNull();
    await page.close();
  });

  it('segd slower than auctionDelay: the auction goes on at auctionDelay without segd data; the late answer serves the next auction', async () => {
    relay.hold = true;
    const before = relay.rtdCalls;
    const { page, result } = await auction({ cacheTtl: 600 });
    expect(relay.rtdCalls).toBe(before + 1); // asked, not answered yet
    expect(result.ms).toBeGreaterThanOrEqual(AUCTION_DELAY - 50);
    expect(result.ms).toBeLessThan(AUCTION_DELAY + 1000);
    expect(segdData('alpha')).toEqual([]);
    expect(segdData('beta')).toEqual([]);
    expect(result.targeting.top?.seg).toBeUndefined();
    relay.hold = false;
    for (const release of relay.held.splice(0)) release();
    await waitFor(async () => (await cached(page)) !== null, 5000);
    await page.close();
    bids.length = 0;
    const next = await auction({ cacheTtl: 600 });
    expect(relay.rtdCalls).toBe(before + 1);
    expect(segmentsBySegtax(segdData('beta'))).toEqual([
      [4, ['1001']],
      [601, ['2001']],
    ]);
    await forget(next.page);
    await next.page.close();
  });

  it('forwards US Privacy and GPP with gpp_sid beside the TCF string', async () => {
    const gppString = gppUsNat(false);
    const { page } = await auction({
      usp: '1YNN',
      gpp: { gppString, applicableSections: [7], parsedSections: { usnat: { SaleOptOut: 2, SaleOptOutNotice: 1 } } },
    });
    const q = new URL(relay.urls.at(-1)!, 'http://x').searchParams;
    expect(Object.fromEntries(q)).toEqual({
      pub: 'pubnews',
      bidders: 'dspa',
      gdpr: '1',
      gdpr_consent: CONSENT,
      us_privacy: '1YNN',
      gpp: gppString,
      gpp_sid: '7',
    });
    expect(segmentsBySegtax(segdData('beta'))).toEqual([
      [4, ['1001']],
      [601, ['2001']],
    ]);
    await page.close();
  });

  it('a GPP CMP with no applicable section ([-1]) and a bidder mapped to an invalid id: segd still answers', async () => {
    const gppString = gppUsNat(false);
    const { page } = await auction({
      gpp: { gppString, applicableSections: [-1], parsedSections: {} },
      bidders: { alpha: 'dspa', beta: 'Not A Partner' },
    });
    const q = new URL(relay.urls.at(-1)!, 'http://x').searchParams;
    expect([q.get('bidders'), q.get('gpp'), q.has('gpp_sid')]).toEqual(['dspa', gppString, false]);
    expect(segmentsBySegtax(segdData('alpha'))).toEqual([
      [4, ['1001']],
      [601, ['2001']],
      [4, ['3001']],
    ]);
    expect(segmentsBySegtax(segdData('beta'))).toEqual([
      [4, ['1001']],
      [601, ['2001']],
    ]);
    await page.close();
  });

  it('a US opt-out (GPP usnat sale opt-out, or US Privacy 1YYN): no call to segd', async () => {
    const before = relay.rtdCalls;
    const a = await auction({
      gpp: {
        gppString: gppUsNat(true),
        applicableSections: [7],
        parsedSections: { usnat: { SaleOptOut: 1, SaleOptOutNotice: 1 } },
      },
    });
    await a.page.close();
    const b = await auction({ usp: '1YYN' });
    await b.page.close();
    expect(relay.rtdCalls).toBe(before);
    expect(bids.map((x) => x.ortb.user?.data ?? [])).toEqual([[], [], [], []]);
  });

  it('segd down: the auction goes on at once without segd data', async () => {
    const { page, result } = await auction({ endpoint: downBase });
    expect(result.ms).toBeLessThan(AUCTION_DELAY / 2); // the module called back on the refused connection
    expect(segdData('alpha')).toEqual([]);
    expect(segdData('beta')).toEqual([]);
    await page.close();
  });

  it('with cacheTtl, the next page view is served from localStorage without waiting for segd', async () => {
    const first = await auction({ cacheTtl: 600 });
    const stored = await cached(first.page);
    expect(JSON.parse(stored!)).toMatchObject({ k: 'pubnews|dspa' });
    await first.page.close();
    // segd held: the cached answer is used, the auction does not wait for it.
    relay.hold = true;
    bids.length = 0;
    const before = relay.rtdCalls;
    const second = await auction({ cacheTtl: 600 });
    expect(relay.rtdCalls).toBe(before); // fresh: no refresh before half its lifetime
    expect(segmentsBySegtax(segdData('beta'))).toEqual([
      [4, ['1001']],
      [601, ['2001']],
    ]);
    expect(second.result.ms).toBeLessThan(AUCTION_DELAY);
    await forget(second.page);
    await second.page.close();
  });

  it('past half of cacheTtl the cached answer is still used, and refreshed in the background', async () => {
    const first = await auction({ cacheTtl: 600 });
    // Age the entry to 400 s of its 600.
    await first.page.evaluate(
      "const e = JSON.parse(localStorage.getItem('segd_rtd')); e.t -= 400000; localStorage.setItem('segd_rtd', JSON.stringify(e))",
    );
    const aged = (JSON.parse((await cached(first.page))!) as { t: number }).t;
    await first.page.close();
    relay.hold = true;
    bids.length = 0;
    const before = relay.rtdCalls;
    const second = await auction({ cacheTtl: 600 });
    expect(second.result.ms).toBeLessThan(AUCTION_DELAY); // served from the cache, not held
    expect(segmentsBySegtax(segdData('beta'))).toEqual([
      [4, ['1001']],
      [601, ['2001']],
    ]);
    expect(relay.rtdCalls).toBe(before + 1); // the background refresh
    relay.hold = false;
    for (const release of relay.held.splice(0)) release();
    await waitFor(async () => (JSON.parse((await cached(second.page))!) as { t: number }).t > aged + 300_000, 5000);
    await forget(second.page);
    await second.page.close();
  });

  it('without waitForIt the auction does not wait: it goes on at once, and the answer fills the cache for the next', async () => {
    const before = relay.rtdCalls;
    const first = await auction({ waitForIt: false, cacheTtl: 600 });
    expect(first.result.ms).toBeLessThan(AUCTION_DELAY / 2);
    expect(segdData('beta')).toEqual([]);
    await waitFor(async () => (await cached(first.page)) !== null, 5000);
    expect(relay.rtdCalls).toBe(before + 1);
    await first.page.close();
    bids.length = 0;
    const second = await auction({ waitForIt: false, cacheTtl: 600 });
    expect(segmentsBySegtax(segdData('alpha'))).toEqual([
      [4, ['1001']],
      [601, ['2001']],
      [4, ['3001']],
    ]);
    expect(second.result.targeting.top).toMatchObject({ seg: '1001,2001' });
    await forget(second.page);
    await second.page.close();
  });
});
