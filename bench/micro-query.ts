// The lookup route's and the exposure pixel's query reads, timed inside a
// real uWS handler (a request's HttpRequest lives only there): uWS's
// `getQuery(key)` per value against one `getQuery()` searched in JS
// (src/http/query.ts), same request, alternating rounds, best of each. Run
// as part of `npm run bench:micro`.
import uWS from 'uWebSockets.js';
import { queryParam } from '../src/http/query.js';
import { mayStore, parseConsent } from '../src/privacy/consent.js';

const CALLS = 20_000;
const ROUNDS = 15;
const QUERY = 'uid=7d3f1c2a-9b8e-4f6a-a1b2-c3d4e5f60718';
/** What the loadtest's pixel sends (a tag without consent fields). */
const PIXEL_QUERY = 'c=lt-1&e=imp&f=n';
const VENDOR = 1;

/** Times `variants` inside a uWS handler for a request to `path`: ns per call, best of the rounds. */
async function timed(path: string, variants: (req: uWS.HttpRequest) => [string, () => number][]) {
  const app = uWS.App();
  const rows = await new Promise<[string, number][]>((resolve, reject) => {
    app.get('/*', (res, req) => {
      const vs = variants(req);
      const best = vs.map(() => Infinity);
      let sink = 0;
      for (let r = 0; r < ROUNDS; r++)
        vs.forEach(([, fn], k) => {
          const t0 = process.hrtime.bigint();
          for (let i = 0; i < CALLS; i++) sink += fn();
          best[k] = Math.min(best[k]!, Number(process.hrtime.bigint() - t0) / CALLS);
        });
      res.end(String(sink));
      resolve(vs.map(([name], k) => [name, best[k]!]));
    });
    app.listen('127.0.0.1', 0, (ls) => {
      if (!ls) return reject(new Error('listen failed'));
      fetch(`http://127.0.0.1:${uWS.us_socket_local_port(ls)}${path}`)
        .then((r) => r.text())
        .then(() => uWS.us_listen_socket_close(ls), reject);
    });
  });
  (app as unknown as { close(): void }).close();
  return rows;
}

/** The pixel route's reads (c, e, s, cr, f and the five consent fields) and its consent verdict. */
function pixelVariants(req: uWS.HttpRequest): [string, () => number][] {
  const consentKeys = ['gdpr', 'gdpr_consent', 'us_privacy', 'gpp', 'gpp_sid'] as const;
  return [
    [
      'pixel: getQuery(key) ×10, consent parsed',
      () => {
        let n = 0;
        for (const k of ['c', 'e', 's', 'cr', 'f']) n += len(req.getQuery(k));
        const [gdpr, gdprConsent, usPrivacy, gpp, gppSid] = consentKeys.map((k) => req.getQuery(k));
        return n + (mayStore(parseConsent({ gdpr, gdprConsent, usPrivacy, gpp, gppSid }), VENDOR) ? 1 : 0);
      },
    ],
    [
      'pixel: getQuery() + queryParam ×10, consent parsed',
      () => {
        const q = req.getQuery() ?? '';
        let n = 0;
        for (const k of ['c', 'e', 's', 'cr', 'f']) n += len(queryParam(req, q, k));
        const [gdpr, gdprConsent, usPrivacy, gpp, gppSid] = consentKeys.map((k) => queryParam(req, q, k));
        return n + (mayStore(parseConsent({ gdpr, gdprConsent, usPrivacy, gpp, gppSid }), VENDOR) ? 1 : 0);
      },
    ],
  ];
}

export async function queryBench(): Promise<void> {
  const rows = await timed(`/v1/segments?${QUERY}`, (req) => [
    ['uWS getQuery(uid), getQuery(format)', () => len(req.getQuery('uid')) + len(req.getQuery('format'))],
    [
      '  + getQuery(partner)',
      () => len(req.getQuery('uid')) + len(req.getQuery('format')) + len(req.getQuery('partner')),
    ],
    [
      'getQuery() + queryParam uid, format',
      () => {
        const q = req.getQuery() ?? '';
        return len(queryParam(req, q, 'uid')) + len(queryParam(req, q, 'format'));
      },
    ],
    [
      '  + queryParam partner',
      () => {
        const q = req.getQuery() ?? '';
        return len(queryParam(req, q, 'uid')) + len(queryParam(req, q, 'format')) + len(queryParam(req, q, 'partner'));
      },
    ],
  ]);
  console.log(`\nthe lookup route's query reads, ?${QUERY}, in a uWS handler (best of ${ROUNDS} alternating rounds)\n`);
  for (const [name, ns] of rows) console.log(`${name.padEnd(48)} ${ns.toFixed(1).padStart(8)} ns/request`);
  const pixel = await timed(`/px?${PIXEL_QUERY}`, pixelVariants);
  console.log(
    `\nthe exposure pixel's query reads, ?${PIXEL_QUERY}, in a uWS handler (best of ${ROUNDS} alternating rounds)\n`,
  );
  for (const [name, ns] of pixel) console.log(`${name.padEnd(62)} ${ns.toFixed(1).padStart(8)} ns/request`);
}

const len = (s: string | undefined) => (s === undefined ? 0 : s.length);
