// The lookup route's query reads, timed inside a real uWS handler (a
// request's HttpRequest lives only there): uWS's `getQuery(key)` per value
// against one `getQuery()` searched in JS (src/http/query.ts), same request,
// alternating rounds, best of each. Run as part of `npm run bench:micro`.
import uWS from 'uWebSockets.js';
import { queryParam } from '../src/http/query.js';

const CALLS = 20_000;
const ROUNDS = 15;
const QUERY = 'uid=7d3f1c2a-9b8e-4f6a-a1b2-c3d4e5f60718';

export async function queryBench(): Promise<void> {
  const app = uWS.App();
  const rows = await new Promise<[string, number][]>((resolve, reject) => {
    app.get('/*', (res, req) => {
      const variants: [string, () => number][] = [
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
            return (
              len(queryParam(req, q, 'uid')) + len(queryParam(req, q, 'format')) + len(queryParam(req, q, 'partner'))
            );
          },
        ],
      ];
      const best = variants.map(() => Infinity);
      let sink = 0;
      for (let r = 0; r < ROUNDS; r++)
        variants.forEach(([, fn], k) => {
          const t0 = process.hrtime.bigint();
          for (let i = 0; i < CALLS; i++) sink += fn();
          best[k] = Math.min(best[k]!, Number(process.hrtime.bigint() - t0) / CALLS);
        });
      res.end(String(sink));
      resolve(variants.map(([name], k) => [name, best[k]!]));
    });
    app.listen('127.0.0.1', 0, (ls) => {
      if (!ls) return reject(new Error('listen failed'));
      fetch(`http://127.0.0.1:${uWS.us_socket_local_port(ls)}/v1/segments?${QUERY}`)
        .then((r) => r.text())
        .then(() => uWS.us_listen_socket_close(ls), reject);
    });
  });
  (app as unknown as { close(): void }).close();
  console.log(`\nthe lookup route's query reads, ?${QUERY}, in a uWS handler (best of ${ROUNDS} alternating rounds)\n`);
  for (const [name, ns] of rows) console.log(`${name.padEnd(48)} ${ns.toFixed(1).padStart(8)} ns/request`);
}

const len = (s: string | undefined) => (s === undefined ? 0 : s.length);
