// The on-page targeting snippet (examples/gam-targeting.js) in a real
// browser: a page on another origin with the segd cookie loads it, and the
// values it hands to googletag are segd's `format=gam` answer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnTracked } from './helpers/procs.js';
import { stopReport, CLEAN_STOP, ROOT, type Segd } from './helpers/server.js';
import { startActivation } from './helpers/activation.js';

let segd: Segd;
let page: Server;
let pagePort = 0;
beforeAll(async () => {
  // Anonymous on-page lookups (see docs/api.md "Ad-server key-values and on-page targeting").
  segd = await startActivation({ SEGD_LOOKUP_AUTH: 'optional', SEGD_GAM_KEY: 'segd_aud', SEGD_GAM_MAX_BYTES: '24' });
  const snippet = readFileSync(join(ROOT, 'examples/gam-targeting.js'), 'utf8');
  page = createServer((req, res) => {
    if (req.url === '/gam-targeting.js') return res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(snippet);
    const uid = new URL(req.url ?? '/', 'http://x').searchParams.get('uid') ?? '';
    res.writeHead(200, { 'Content-Type': 'text/html' }).end(`<!doctype html><pre id="out">pending</pre>
<script>
  document.cookie = 'segd_uid=${uid}; path=/';
  // A stand-in for GPT that records what the page asks it to target.
  window.googletag = { cmd: [], pubads: function () { return { setTargeting: function (k, v) { document.getElementById('out').textContent = JSON.stringify([k, v]); } }; } };
</script>
<script src="/gam-targeting.js" data-segd="http://127.0.0.1:${segd.port}"></script>
<script>
  segdTargeting.then(function (t) {
    googletag.cmd.forEach(function (f) { f(); });
    if (!t) document.getElementById('out').textContent = 'none';
  });
</script>`);
  });
  await new Promise<void>((r) => page.listen(0, '127.0.0.1', () => r()));
  pagePort = (page.address() as { port: number }).port;
});
afterAll(async () => {
  page?.close();
  expect(await stopReport(segd)).toEqual(CLEAN_STOP);
});

function renderedOut(uid: string): Promise<string> {
  return new Promise((resolve, reject) => {
    // A process group: chromium's helper processes go with it (test/helpers/procs.ts).
    const p = spawnTracked(
      'chromium',
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--virtual-time-budget=5000',
        '--dump-dom',
        `http://127.0.0.1:${pagePort}/?uid=${uid}`,
      ],
      { stdio: ['ignore', 'pipe', 'ignore'], group: true },
    );
    let dom = '';
    p.stdout!.setEncoding('utf8').on('data', (c: string) => (dom += c));
    const timer = setTimeout(() => process.kill(-p.pid!, 'SIGKILL'), 30_000);
    p.on('exit', () => {
      clearTimeout(timer);
      const m = /<pre id="out">([^<]*)<\/pre>/.exec(dom);
      if (m) resolve(m[1]!.replace(/&quot;/g, '"'));
      else reject(new Error(`no #out in ${dom.slice(0, 500)}`));
    });
  });
}

describe('examples/gam-targeting.js in chromium', () => {
  it("targets the page with the user's segments under the configured key, within the size cap", async () => {
    // rtb-user-1 holds 1001,1002,2001,3005,4002: "segd_aud=1001,1002,2001" is 23 bytes; ",3005" would pass 24.
    expect(JSON.parse(await renderedOut('rtb-user-1'))).toEqual(['segd_aud', ['1001', '1002', '2001']]);
  }, 40_000);

  it('sets nothing for an unknown user', async () => {
    expect(await renderedOut('nobody-at-all')).toBe('none');
  }, 40_000);
});
