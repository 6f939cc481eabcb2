// GET /insights in a real Chromium: the overlap heat map and the affinity bars
// render as SVG with the structure the data asks for (one cell per pair, one
// bar per over-indexing segment, the diagonal darkest), no script runs (a
// segment name carrying markup stays text), and the page needs the admin key.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSegd, tempDir, feedLine, type Segd } from './helpers/server.js';
import { ADMIN_KEY, KEYS, PARTNERS, SEGMENTS, bearer } from './helpers/activation.js';
import { launchBrowser, type Browser } from './helpers/browser.js';

const HOSTILE = '<img src=x onerror="window.pwned=1">Sports';
const dir = tempDir('segd-insights-page-');
let segd: Segd;
let browser: Browser;

beforeAll(async () => {
  // 1001 every 2nd user, 1002 every 3rd, 2001 every 4th (so 2001 ⊂ 1001: it over-indexes there).
  const lines: string[] = [];
  for (let i = 0; i < 600; i++) {
    const s = [i % 2 === 0 && 1001, i % 3 === 0 && 1002, i % 4 === 0 && 2001].filter((x): x is number => x !== false);
    if (s.length) lines.push(feedLine({ op: 'add', uid: `u${i}`, segments: s }));
  }
  writeFileSync(join(dir, 'seed.ndjson'), lines.join(''));
  const segments = SEGMENTS.map((s) => (s.id === 1002 ? { ...s, name: HOSTILE } : s));
  writeFileSync(join(dir, 'segd.json'), JSON.stringify({ adminKeys: [ADMIN_KEY], partners: PARTNERS, segments }));
  segd = await startSegd({
    env: {
      SEGD_SEED: join(dir, 'seed.ndjson'),
      SEGD_CONFIG: join(dir, 'segd.json'),
      SEGD_LOOKUP_AUTH: 'required',
      SEGD_INSIGHTS: 'on',
    },
  });
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await segd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('GET /insights', () => {
  it('renders the heat map and the affinity bars as SVG, scriptless', async () => {
    await browser.ctx.setExtraHTTPHeaders(bearer(ADMIN_KEY));
    const page = await browser.ctx.newPage();
    const res = await page.goto(`${segd.url}/insights?segments=1001,1002,2001&affinity=2001&min=10`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()['content-security-policy']).toContain("default-src 'none'");
    // A string: the test's types know no DOM.
    const shape = (await page.evaluate(`({
      cells: [...document.querySelectorAll('svg.heatmap rect.cell')].map((r) => ({
        row: r.getAttribute('data-row'),
        col: r.getAttribute('data-col'),
        fill: getComputedStyle(r).fill,
      })),
      values: [...document.querySelectorAll('svg.heatmap text.cell-value')].map((t) => t.textContent),
      bars: [...document.querySelectorAll('svg.affinity rect.bar')].map((r) => r.getAttribute('data-segment')),
      images: document.querySelectorAll('img').length,
      pwned: window.pwned ?? 0,
      labels: [...document.querySelectorAll('svg.heatmap text.row-label')].map((t) => t.textContent),
    })`)) as {
      cells: Array<{ row: string; col: string; fill: string }>;
      values: string[];
      bars: string[];
      images: number;
      pwned: number;
      labels: string[];
    };
    expect(shape.cells).toHaveLength(9);
    // Users in both, row by row: 1001 = 300, 1002 = 200, 2001 = 150; 1001∩1002 = 100, 1001∩2001 = 150, 1002∩2001 = 50.
    expect(shape.values).toEqual(['300', '100', '150', '100', '200', '50', '150', '50', '150']);
    const fill = (r: string, c: string) => shape.cells.find((x) => x.row === r && x.col === c)!.fill;
    const blue = (rgb: string) => Number(/rgb\(\d+, \d+, (\d+)\)/.exec(rgb)![1]) - Number(/rgb\((\d+)/.exec(rgb)![1]);
    // The diagonal (Jaccard 1) is the darkest cell of its row.
    expect(blue(fill('1001', '1001'))).toBeGreaterThan(blue(fill('1001', '1002')));
    // Among 2001's members every one is in 1001 (index 200) and a third in 1002 (index 100).
    expect(shape.bars).toEqual(['1001', '1002']);
    expect(shape.images).toBe(0);
    expect(shape.pwned).toBe(0);
    expect(shape.labels[1]).toContain('<img');
    const box = await page.locator('svg.heatmap').boundingBox();
    expect(box!.width).toBeGreaterThan(300);
    const shot = await page.locator('svg.heatmap').screenshot();
    expect(shot.subarray(1, 4).toString()).toBe('PNG');
    await page.close();
  });

  it('needs the admin key and valid segments', async () => {
    const get = (q: string, key: string | null) =>
      fetch(`${segd.url}/insights${q}`, { headers: key === null ? {} : bearer(key) });
    expect((await get('?segments=1001,1002', null)).status).toBe(401);
    expect((await get('?segments=1001,1002', KEYS.all)).status).toBe(401);
    expect((await get('?segments=1001', ADMIN_KEY)).status).toBe(400);
    expect((await get('?segments=1001,1002&affinity=x', ADMIN_KEY)).status).toBe(400);
  });
});
