// A fake sync partner on its own loopback host (its own site): its sync URL
// gives the browser the partner's own uid (a cookie on the partner's site),
// remembers which segd uid it was told, and redirects the browser to segd's
// inbound sync with the partner uid — signed when it has an HMAC key.
import { createServer, type Server } from 'node:http';
import { randomUUID } from 'node:crypto';
import { sign } from '../../src/identity/signature.js';

export interface FakePartner {
  id: string;
  host: string;
  port: number;
  /** Every sync hit: the segd uid it was sent (null = none) and the partner uid it answered with. */
  hits: Array<{ segdUid: string | null; puid: string; query: URLSearchParams }>;
  close(): Promise<void>;
}

export async function startPartner(opts: {
  id: string;
  host: string;
  segdBase: () => string;
  hmacKey?: string;
}): Promise<FakePartner> {
  const hits: FakePartner['hits'] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://${opts.host}`);
    if (url.pathname !== '/sync') {
      res.writeHead(404).end();
      return;
    }
    const cookie = /(?:^|;\s*)pid=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
    const puid = cookie ?? `${opts.id}-${randomUUID()}`;
    hits.push({ segdUid: url.searchParams.get('segd'), puid, query: url.searchParams });
    const back = new URLSearchParams({ partner: opts.id, puid, f: 'i' });
    for (const k of ['gdpr', 'gdpr_consent', 'us_privacy', 'gpp', 'gpp_sid']) {
      const v = url.searchParams.get(k);
      if (v) back.set(k, v);
    }
    if (opts.hmacKey) {
      // Signed for the segd uid this partner was sent (its ${UID} macro).
      const ts = Math.floor(Date.now() / 1000);
      back.set('ts', String(ts));
      back.set('sig', sign(opts.hmacKey, opts.id, puid, ts, url.searchParams.get('segd') ?? ''));
    }
    res.writeHead(302, {
      Location: `${opts.segdBase()}/sync/in?${back}`,
      'Set-Cookie': `pid=${puid}; Max-Age=86400; Path=/; SameSite=None; Secure`,
    });
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, opts.host, r));
  const port = (server.address() as { port: number }).port;
  return {
    id: opts.id,
    host: opts.host,
    port,
    hits,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
