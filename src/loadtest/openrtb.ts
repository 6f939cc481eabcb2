// Realistic OpenRTB 2.6 BidRequests (2–3 KB, what an exchange sends a DSP) for
// the `openrtb` scenario: the user resolved by segd comes from the data set;
// everything else varies plausibly so no two requests are the same bytes.
// Web requests carry the key as user.id and user.buyeruid; app requests (the
// UUID-shaped keys, as device ad ids are) also as device.ifa.

const SITES = [
  ['news.example.com', 'Example News', 'IAB12'],
  ['recipes.example.org', 'Example Recipes', 'IAB8'],
  ['sports.example.net', 'Example Sports', 'IAB17'],
  ['autos.example.com', 'Example Autos', 'IAB2'],
  ['travel.example.org', 'Example Travel', 'IAB20'],
] as const;
const APPS = [
  ['com.example.puzzle', 'Puzzle Quest', 'IAB9-30'],
  ['com.example.weather', 'Weather Now', 'IAB15-10'],
  ['com.example.runner', 'City Runner', 'IAB9-30'],
] as const;
const UAS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
] as const;
const SIZES = [
  [300, 250],
  [728, 90],
  [320, 50],
  [160, 600],
  [300, 600],
  [970, 250],
] as const;
const GEO = [
  ['DEU', 'BE', 'Berlin', 52.52, 13.405],
  ['FRA', 'IDF', 'Paris', 48.8566, 2.3522],
  ['USA', 'CA', 'San Francisco', 37.7749, -122.4194],
  ['GBR', 'ENG', 'London', 51.5072, -0.1276],
] as const;
// A TCF v2 string of realistic length (the exact bits don't matter to a load test).
const TC_STRING =
  'CQBxNIAQBxNIAAHABBENBGFgAP_gAEPgAAAAKZtX_G__bWlr-bb3aftkeYxP9_hr7sQxBgbJk24FzLvW7JwX32E7NAzatqYKmRIAu3TBIQNlHJDURVCgaogVryDMaEyUoTNKJ6BkiFMRI2dYCFxvm4pjeQCY5vr991dx2B-t7dr83dzyy4hHn3a5_2S0WJCdA5-tDfv9bROb-9IOd_x8v4v4_F7pE2-eS1l_tWvp7D9-cts_9XW99_fbff9Pn_-uB_-_X_vf_H3wAAAAA';

function pick<T>(xs: readonly T[], r: () => number): T {
  return xs[Math.floor(r() * xs.length)]!;
}

function hex(r: () => number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += Math.floor(r() * 16).toString(16);
  return s;
}

const UUID_SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** One BidRequest for user key `uid` (the n-th of the run). */
export function bidRequest(uid: string, n: number, r: () => number): Record<string, unknown> {
  const app = UUID_SHAPE.test(uid);
  const [w, h] = pick(SIZES, r);
  const [country, region, city, lat, lon] = pick(GEO, r);
  const ua = pick(UAS, r);
  const imps = 1 + Math.floor(r() * 2);
  const req: Record<string, unknown> = {
    id: `${hex(r, 8)}-${hex(r, 4)}-${hex(r, 4)}-${hex(r, 4)}-${hex(r, 12)}`,
    imp: Array.from({ length: imps }, (_, k) => ({
      id: String(k + 1),
      tagid: `slot-${Math.floor(r() * 40)}`,
      bidfloor: Math.round(r() * 300) / 100,
      bidfloorcur: 'USD',
      secure: 1,
      banner: {
        w,
        h,
        format: SIZES.slice(0, 3).map(([fw, fh]) => ({ w: fw, h: fh })),
        pos: 1 + Math.floor(r() * 3),
        api: [3, 5],
      },
      ext: { gpid: `/1234/${app ? 'app' : 'web'}/slot-${k}`, data: { pbadslot: `/1234/slot-${k}` } },
    })),
    device: {
      ua,
      ip: `203.0.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}`,
      geo: { country, region, city, lat, lon, type: 2, utcoffset: 60 },
      dnt: 0,
      lmt: 0,
      devicetype: app ? 4 : 2,
      make: app ? 'Google' : undefined,
      model: app ? 'Pixel 8' : undefined,
      os: app ? 'Android' : 'Windows',
      osv: app ? '14' : '10',
      language: 'en',
      // OpenRTB 2.6 structured user agent (client hints), as Chrome-based exchanges send it.
      sua: {
        source: 2,
        browsers: [
          { brand: 'Chromium', version: ['124', '0', '6367', '82'] },
          { brand: 'Google Chrome', version: ['124', '0', '6367', '82'] },
          { brand: 'Not-A.Brand', version: ['99', '0', '0', '0'] },
        ],
        platform: { brand: app ? 'Android' : 'Windows', version: app ? ['14', '0', '0'] : ['15', '0', '0'] },
        mobile: app ? 1 : 0,
        architecture: app ? 'arm' : 'x86',
        bitness: '64',
      },
      connectiontype: 2,
      js: 1,
      ...(app ? { ifa: uid } : {}),
    },
    user: {
      id: uid,
      buyeruid: uid,
      consent: TC_STRING,
      eids: [
        { source: 'id5-sync.com', uids: [{ id: `ID5*${hex(r, 40)}`, atype: 1 }] },
        { source: 'liveramp.com', uids: [{ id: `Xi1${hex(r, 44)}`, atype: 3 }] },
      ],
    },
    at: 1,
    tmax: 120,
    cur: ['USD'],
    bcat: ['IAB25', 'IAB26', 'IAB7-39', 'IAB8-18'],
    badv: ['competitor.example'],
    source: {
      tid: `${hex(r, 8)}-${hex(r, 4)}-${hex(r, 4)}-${hex(r, 4)}-${hex(r, 12)}`,
      schain: { complete: 1, ver: '1.0', nodes: [{ asi: 'exchange.example', sid: String(1000 + (n % 500)), hp: 1 }] },
    },
    regs: { gdpr: 1, coppa: 0, us_privacy: '1---', ext: {} },
    ext: { prebid: { channel: { name: 'pbjs', version: '8.40.0' } } },
  };
  if (app) {
    const [bundle, name, cat] = pick(APPS, r);
    req.app = {
      id: bundle,
      bundle,
      name,
      cat: [cat],
      storeurl: `https://play.example/store/apps/details?id=${bundle}`,
      publisher: { id: `pub-${Math.floor(r() * 900)}`, name: `${name} Ltd` },
      ver: '3.2.1',
    };
  } else {
    const [domain, name, cat] = pick(SITES, r);
    req.site = {
      id: `site-${Math.floor(r() * 900)}`,
      name,
      domain,
      cat: [cat],
      page: `https://${domain}/articles/${hex(r, 12)}?utm_source=feed`,
      ref: 'https://www.search.example/',
      publisher: { id: `pub-${Math.floor(r() * 900)}`, name, domain },
      content: { language: 'en', keywords: 'local,weather,today,sports,scores' },
      mobile: ua.includes('Mobile') ? 1 : 0,
    };
  }
  return req;
}
