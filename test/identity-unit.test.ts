// The pure parts of identity: template filling (no macro value can move the
// browser elsewhere), the sync script's escaping, cookie parsing and the
// sync-times cookie's bound, the match queue's bound. Properties over
// generated input, not examples.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { compileTemplate, TemplateError } from '../src/identity/sync-template.js';
import { frameHtml } from '../src/identity/sync-frame.js';
import { readCookie } from '../src/identity/cookie.js';
import { groupCommitted } from '../src/loader/group-commit.js';
import { MatchQueue, type MatchItem } from '../src/identity/match-queue.js';
import { waitFor } from './helpers/server.js';

describe('sync templates', () => {
  const t = compileTemplate(
    'https://sync.example.com/p/m?u=${UID}&g=${GDPR}&c=${GDPR_CONSENT}&x=${US_PRIVACY}&y=${GPP}&z=${GPP_SID}#f',
  );
  it('no macro value changes the scheme, host, path or parameter names', () => {
    fc.assert(
      fc.property(
        fc.record({
          UID: fc.string(),
          GDPR: fc.string(),
          GDPR_CONSENT: fc.string({ unit: 'binary' }),
          US_PRIVACY: fc.string(),
          GPP: fc.string({ unit: 'grapheme' }),
          GPP_SID: fc.string(),
        }),
        (v) => {
          const u = new URL(t.fill(v));
          expect([u.origin, u.pathname, [...u.searchParams.keys()], u.hash]).toEqual([
            'https://sync.example.com',
            '/p/m',
            ['u', 'g', 'c', 'x', 'y', 'z'],
            '#f',
          ]);
          // Values arrive intact (lone surrogates, possible from a JSON body, become U+FFFD: see below).
          if (!/[\ud800-\udfff]/.test(v.GDPR_CONSENT)) expect(u.searchParams.get('c')).toBe(v.GDPR_CONSENT);
        },
      ),
    );
  });
  it('fills a lone surrogate as U+FFFD instead of throwing', () => {
    expect(
      compileTemplate('https://x.example/?c=${GDPR_CONSENT}').fill({
        UID: '',
        GDPR: '',
        GDPR_CONSENT: 'a\ud800b',
        US_PRIVACY: '',
        GPP: '',
        GPP_SID: '',
      }),
    ).toBe('https://x.example/?c=a%EF%BF%BDb');
  });
  it.each([
    'https://${UID}.example.com/',
    'https://example.com${UID}/',
    '//example.com/?u=${UID}',
    'javascript:alert(1)//${UID}',
    'https://example.com/?u=${PUID}',
    'https://user:pw@example.com/',
    'https://example.com/a b',
    'https://example.com/\r\n',
  ])('refuses %s', (url) => {
    expect(() => compileTemplate(url)).toThrow(TemplateError);
  });
});

describe('the sync frame', () => {
  it('cannot be broken out of, whatever the URLs hold', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.string({
            unit: fc.constantFrom(
              '<',
              '/',
              's',
              'c',
              'r',
              'i',
              'p',
              't',
              '>',
              '!',
              '-',
              '\u2028',
              '\u2029',
              '"',
              '\\',
              "'",
            ),
          }),
        ),
        (urls) => {
          const html = frameHtml(urls.map((url) => ({ url, type: 'pixel' })));
          const open = '<script type="application/json" id="s">';
          const data = html.slice(html.indexOf(open) + open.length, html.indexOf('</script>'));
          // The data element ends where the page says, and holds exactly what went in.
          expect(data).not.toMatch(/<|[\u2028\u2029]/);
          expect(JSON.parse(data)).toEqual(urls.map((url) => ({ url, type: 'pixel' })));
        },
      ),
    );
  });
});

describe('cookies', () => {
  it('reads the last cookie of a name, and only that name', () => {
    expect(readCookie('a=1; segdx=2; segd=3;segd=4', 'segd')).toBe('4');
    expect(readCookie('xsegd=1', 'segd')).toBeUndefined();
  });
});

describe('the match queue', () => {
  it('batches, and refuses (rather than queueing without bound) while the writer is behind', async () => {
    const sent: MatchItem[][] = [];
    let release!: () => void;
    const stuck = new Promise<void>((r) => (release = r));
    const counted = { stored: 0, refused: 0, lost: 0 };
    const q = new MatchQueue(
      async (items) => {
        sent.push(items);
        await stuck;
      },
      () => {},
      (outcome, n) => (counted[outcome] += n),
      1,
      3,
      6,
    );
    const item = (i: number) => ({ key: `k${i}`, uid: 'u' });
    // Two full batches go out at once; the writer holds both: six items await it, the bound.
    for (let i = 0; i < 6; i++) expect(q.push(item(i))).toBe(true);
    expect([sent.length, q.inFlight]).toEqual([2, 2]);
    expect(q.push(item(6))).toBe(false);
    release();
    await waitFor(async () => q.inFlight === 0);
    expect(q.push(item(7))).toBe(true);
    q.flush();
    expect(sent.map((b) => b.map((m) => m.key))).toEqual([['k0', 'k1', 'k2'], ['k3', 'k4', 'k5'], ['k7']]);
    await waitFor(async () => q.inFlight === 0);
    expect(counted).toEqual({ stored: 7, refused: 1, lost: 0 });
  });

  it('bounds the items awaiting the writer, however few each batch holds', async () => {
    let release!: () => void;
    const stuck = new Promise<void>((r) => (release = r));
    const counted = { stored: 0, refused: 0, lost: 0 };
    const q = new MatchQueue(
      () => stuck,
      () => {},
      (outcome, n) => (counted[outcome] += n),
      1,
      3,
      4,
    );
    const item = (i: number) => ({ key: `k${i}`, uid: 'u' });
    // Batches of one (a timer's flush at a low rate): four batches are four items, the bound.
    for (let i = 0; i < 4; i++) {
      expect(q.push(item(i))).toBe(true);
      q.flush();
    }
    expect([q.inFlight, q.push(item(4))]).toEqual([4, false]);
    release();
    await waitFor(async () => q.inFlight === 0);
    // Items not sent yet count too.
    const held = new MatchQueue(
      () => stuck,
      () => {},
      (outcome, n) => (counted[outcome] += n),
      60_000,
      10,
      2,
    );
    expect([held.push(item(5)), held.push(item(6)), held.push(item(7))]).toEqual([true, true, false]);
    held.flush();
    await waitFor(async () => held.inFlight === 0);
    expect(counted).toEqual({ stored: 6, refused: 2, lost: 0 });
  });

  it('counts a batch whose write failed as lost, and reports it', async () => {
    const counted = { stored: 0, refused: 0, lost: 0 };
    const errors: number[] = [];
    const q = new MatchQueue(
      () => Promise.reject(new Error('store full')),
      (_err, lost) => errors.push(lost),
      (outcome, n) => (counted[outcome] += n),
    );
    q.push({ key: 'a', uid: 'u' });
    q.push({ key: 'b', uid: 'u' });
    q.flush();
    await waitFor(async () => q.inFlight === 0);
    expect(errors).toEqual([2]);
    expect(counted).toEqual({ stored: 0, refused: 0, lost: 2 });
  });
});

describe('the group commit', () => {
  it('begins commits at least the minimum interval apart, and what arrives meanwhile goes in one', async () => {
    const commits: Array<{ at: number; items: number[] }> = [];
    const apply = groupCommitted((items: number[]) => {
      commits.push({ at: performance.now(), items });
      return items.map((i) => i * 2);
    }, 50);
    expect(await apply(1)).toBe(2);
    expect(await Promise.all([apply(2), apply(3)])).toEqual([4, 6]);
    expect(commits.map((c) => c.items)).toEqual([[1], [2, 3]]);
    expect(commits[1]!.at - commits[0]!.at).toBeGreaterThanOrEqual(49);
  });
});
