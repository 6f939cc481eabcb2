// Cookie sync end to end in a real headless Chromium: a publisher page on one
// site loads segd's sync script from another; the script fires both partners'
// sync URLs (each partner on its own site); each partner redirects the browser
// back to segd's inbound sync with its own uid. Then: the cookies as the
// browser stored them, the matches as segd stored them, lookups by each
// partner's uid, the skip of recently synced partners, the opt-out, and a
// restart.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { waitFor } from './helpers/server.js';
import { identityServer } from './helpers/identity.js';
import { metric } from './helpers/metrics.js';
import { launchBrowser, type Browser } from './helpers/browser.js';
import { startPartner, type FakePartner } from './helpers/partner.js';

const HMAC = 'partner-b-hmac-key-0123';
const MAX_AGE = 86_400;

let browser: Browser;
let a: FakePartner;
let b: FakePartner;
let publisher: Server;
let pubUrl: string;
/** segd as the browser sees it: localhost (see helpers/browser.ts on Secure cookies). */
const segdBase = () => `http://localhost:${fx.segd.port}`;

beforeAll(async () => {
  a = await startPartner({ id: 'dspa', host: '127.0.0.2', segdBase });
  b = await startPartner({ id: 'dspb', host: '127.0.0.3', segdBase, hmacKey: HMAC });
});
afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
});

const fx = identityServer({
  name: 'segd-browser-',
  env: { SEGD_COOKIE_MAX_AGE: String(MAX_AGE) },
  partners: () => [
    {
      id: 'dspa',
      name: 'DSP A',
      sync: {
        url: `http://127.0.0.2:${a.port}/sync?segd=\${UID}&gdpr=\${GDPR}&gdpr_consent=\${GDPR_CONSENT}`,
        type: 'redirect',
      },
    },
    {
      id: 'dspb',
      name: 'DSP B',
      sync: {
        url: `http://127.0.0.3:${b.port}/sync?segd=\${UID}&us_privacy=\${US_PRIVACY}`,
        type: 'pixel',
        hmacKey: HMAC,
      },
    },
  ],
});
const { lookup, push } = fx;

beforeAll(async () => {
  publisher = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(
      `<!doctype html><title>news</title><p>article</p><script async src="${segdBase()}/sync/script.js?gdpr=0&us_privacy=1YNN"></script>`,
    );
  });
  await new Promise<void>((r) => publisher.listen(0, '127.0.0.1', r));
  pubUrl = `http://127.0.0.1:${(publisher.address() as { port: number }).port}/article`;
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await new Promise((r) => publisher?.close(r));
});

/** What a page view on the publisher did for this browser: its segd uid and each partner's sync hit. */
interface Synced {
  uid: string;
  a: FakePartner['hits'][number];
  b: FakePartner['hits'][number];
}

/** A page view on the publisher; returns once both partners synced this browser and segd stored both matches. */
async function pageView(): Promise<Synced> {
  const [na, nb] = [a.hits.length, b.hits.length];
  const page = await browser.ctx.newPage();
  await page.goto(pubUrl);
  await waitFor(async () => a.hits.length > na && b.hits.length > nb, 15_000);
  await page.close();
  expect([a.hits.length, b.hits.length]).toEqual([na + 1, nb + 1]);
  const uid = (await browser.ctx.cookies(segdBase())).find((c) => c.name === 'segd')!.value;
  const synced = { uid, a: a.hits.at(-1)!, b: b.hits.at(-1)! };
  // The matches segd stored: each partner's uid resolves to the cookie's uid.
  await waitFor(
    async () =>
      (await lookup(`partner=dspa&puid=${encodeURIComponent(synced.a.puid)}`)).uid === uid &&
      (await lookup(`partner=dspb&puid=${encodeURIComponent(synced.b.puid)}`)).uid === uid,
    10_000,
  );
  return synced;
}

describe('cookie sync in Chromium', () => {
  // Each test is a browser of its own: no segd, opt-out or partner cookie from another.
  beforeEach(() => browser.ctx.clearCookies());

  it('follows publisher → segd script → both partners → segd inbound, and stores both matches', async () => {
    const t0 = Date.now() / 1000;
    const s = await pageView();
    const id = (await browser.ctx.cookies(segdBase())).find((c) => c.name === 'segd')!;
    expect(id).toMatchObject({ domain: 'localhost', path: '/', secure: true, httpOnly: true, sameSite: 'None' });
    expect(id.value).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(id.expires).toBeGreaterThan(t0 + MAX_AGE - 60);
    expect(id.expires).toBeLessThan(t0 + MAX_AGE + 60);
    // Both partners were sent this browser's segd uid, filled into their templates.
    expect(s.a.segdUid).toBe(s.uid);
    expect(s.a.query.get('gdpr')).toBe('0');
    expect(s.b.segdUid).toBe(s.uid);
    expect(s.b.query.get('us_privacy')).toBe('1YNN');
  });

  it('a lookup by each partner uid returns the user’s segments', async () => {
    const s = await pageView();
    expect(await push([{ op: 'add', uid: s.uid, segments: [501, 502] }])).toMatchObject({ applied: 1 });
    for (const [id, hit] of [
      ['dspa', s.a],
      ['dspb', s.b],
    ] as const) {
      expect(await lookup(`partner=${id}&puid=${encodeURIComponent(hit.puid)}`)).toEqual({
        uid: s.uid,
        segments: [501, 502],
      });
    }
    // Another partner's uid, or the right uid under the wrong partner, is unknown.
    expect(await lookup(`partner=dspa&puid=${encodeURIComponent(s.b.puid)}`)).toEqual({
      uid: null,
      segments: [],
    });
  });

  it('the next page view skips partners synced recently (both parallel callbacks were recorded)', async () => {
    await pageView();
    const [na, nb] = [a.hits.length, b.hits.length];
    const page = await browser.ctx.newPage();
    const frame = page.waitForResponse((r) => r.url().includes('/sync/frame.html'));
    await page.goto(pubUrl);
    const answer = await frame;
    // The frame fires only its list, as it loads: an empty list, and the frame loaded, is nothing fired.
    expect(await answer.text()).toContain('id="s">[]<');
    await answer.frame().waitForLoadState('load');
    expect([a.hits.length, b.hits.length]).toEqual([na, nb]);
    await page.close();
  });

  it('the browser is never sent anywhere by the inbound sync, whatever it is given', async () => {
    const page = await browser.ctx.newPage();
    for (const q of [
      'redirect=https://evil.example/',
      'redir=//evil.example',
      'url=javascript:alert(1)',
      'redirect=%252F%252Fevil.example',
      'puid=%252F%252Fevil.example',
    ]) {
      const target = `${segdBase()}/sync/in?partner=dspa&f=b&${q.startsWith('puid') ? q : `puid=open-redirect&${q}`}`;
      const r = await page.goto(target);
      expect([q, r!.status(), page.url()]).toEqual([q, 200, target]);
      expect(r!.request().redirectedFrom()).toBeNull();
    }
    await page.close();
  });

  it('opt-out: opt-out cookie set, id cookie gone, matches and segments deleted, later syncs are no-ops — across a restart', async () => {
    const s = await pageView();
    const page = await browser.ctx.newPage();
    const answer = await page.goto(`${segdBase()}/optout`);
    expect(answer!.status()).toBe(200);
    const cookies = await browser.ctx.cookies(segdBase());
    expect(cookies.find((c) => c.name === 'segd')).toBeUndefined();
    const opt = cookies.find((c) => c.name === 'segd_optout')!;
    expect(opt).toMatchObject({ value: 'OPT_OUT', secure: true, httpOnly: true, sameSite: 'None', path: '/' });
    expect(opt.expires).toBeGreaterThan(Date.now() / 1000 + 399 * 86_400); // 5 years asked; Chromium keeps at most 400 days
    const byPartner = [
      `partner=dspa&puid=${encodeURIComponent(s.a.puid)}`,
      `partner=dspb&puid=${encodeURIComponent(s.b.puid)}`,
    ];
    for (const q of byPartner) expect(await lookup(q)).toEqual({ uid: null, segments: [] });
    expect(await lookup(`uid=${s.uid}`)).toEqual({ uid: s.uid, segments: [] });

    // A partner syncing this browser again gets a no-op: no cookie, no match.
    const before = a.hits.length;
    const optedOut = () => metric(fx.segd.url, 'segd_sync_total', { direction: 'in', outcome: 'opted_out' });
    const optedOutBefore = await optedOut();
    const loaded = await page.evaluate(`new Promise((r) => {
      const img = new Image();
      img.onload = () => r('load');
      img.onerror = () => r('error');
      img.src = ${JSON.stringify(`http://127.0.0.2:${a.port}/sync?segd=`)};
    })`);
    expect([a.hits.length, loaded]).toEqual([before + 1, 'error']); // 204: no image
    expect(await optedOut()).toBe(optedOutBefore + 1);
    await fx.matchesWritten();
    expect((await lookup(`partner=dspa&puid=${encodeURIComponent(a.hits.at(-1)!.puid)}`)).uid).toBeNull();
    expect((await browser.ctx.cookies(segdBase())).map((c) => c.name)).toEqual(['segd_optout']);
    // The publisher page fires no syncs now.
    const frame = page.waitForResponse((r) => r.url().includes('/sync/frame.html'));
    await page.goto(pubUrl);
    expect(await (await frame).text()).toContain('id="s">[]<');

    await fx.restart();
    // Upstream data for the opted-out user does not bring it back.
    expect(await push([{ op: 'add', uid: s.uid, segments: [777] }])).toMatchObject({ applied: 0, stale: 1 });
    expect(await lookup(`uid=${s.uid}`)).toEqual({ uid: s.uid, segments: [] });
    for (const q of byPartner) expect((await lookup(q)).uid).toBeNull();
    await page.close();
  });

  it('the embedding page cannot find the uid in anything the script exposes: DOM, script text, its performance entries, a credentialed fetch', async () => {
    const fresh = await launchBrowser();
    try {
      const page = await fresh.ctx.newPage();
      const [na, nb] = [a.hits.length, b.hits.length];
      const scriptText = page.waitForResponse((r) => r.url().includes('/sync/script.js')).then((r) => r.text());
      await page.goto(pubUrl);
      await waitFor(async () => a.hits.length > na && b.hits.length > nb, 15_000);
      const id = (await fresh.ctx.cookies(segdBase())).find((c) => c.name === 'segd')!.value;
      // The syncs fired, with this browser's uid, from segd's frame.
      expect([a.hits.at(-1)!.segdUid, b.hits.at(-1)!.segdUid]).toEqual([id, id]);
      await waitFor(
        async () => (await lookup(`partner=dspb&puid=${encodeURIComponent(b.hits.at(-1)!.puid)}`)).uid === id,
        10_000,
      );
      const seen = (await page.evaluate(`(async () => {
        const frames = [...document.querySelectorAll('iframe')].map((f) => { try { return f.contentDocument ? f.contentDocument.documentElement.outerHTML : 'no document'; } catch (e) { return 'blocked'; } });
        let fetched;
        try { fetched = await (await fetch(${JSON.stringify(`${segdBase()}/sync/out?partners=*`)}, { credentials: 'include' })).text(); } catch (e) { fetched = 'refused'; }
        return { html: document.documentElement.outerHTML, cookie: document.cookie, scripts: [...document.scripts].map((s) => s.src + s.text), entries: performance.getEntries().map((e) => e.name), frames, fetched };
      })()`)) as { frames: string[]; fetched: string; entries: string[] };
      expect(JSON.stringify(seen)).not.toContain(id);
      expect(await scriptText).not.toContain(id);
      expect([seen.frames, seen.fetched]).toEqual([['no document'], 'refused']);
      expect(seen.entries.some((e) => e.includes('/sync/frame.html'))).toBe(true);
    } finally {
      await fresh.close();
    }
  });
});
