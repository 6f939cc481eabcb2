// GET /px, the exposure pixel: a browser seen for a campaign joins the
// exposure segment of (campaign, event), created on first use in the reserved
// id range with a taxonomy entry, and visible to insights (how soon is
// measured by `segd loadtest --scenario pixel`, not asserted here); the
// segd cookie is read (or set) as by /sync/in; no consent or an opt-out writes
// nothing; bad parameters are 400.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startActivation, ADMIN_KEY, bearer } from './helpers/activation.js';
import type { Segd } from './helpers/server.js';
import { EXPOSURE_FIRST_ID } from '../src/loader/exposures.js';

let segd: Segd;
beforeAll(async () => {
  segd = await startActivation({ SEGD_INSIGHTS: 'on' });
});
afterAll(async () => {
  await segd?.stop();
});

const admin = bearer(ADMIN_KEY);
async function exposureSegment(name: string): Promise<{ id: number; dataType: string } | undefined> {
  const r = await fetch(`${segd.url}/v1/admin/segments`, { headers: admin });
  const { segments } = (await r.json()) as { segments: Array<{ id: number; name: string; dataType: string }> };
  return segments.find((s) => s.name === name);
}
async function sizeOf(id: number): Promise<number> {
  const r = await fetch(`${segd.url}/v1/insights/segments/${id}`, { headers: admin });
  return ((await r.json()) as { size: number }).size;
}
/** Polls until `pred` holds, for at most `ms` (generous: a loaded CI machine delays the writer by seconds). */
async function until<T>(f: () => Promise<T>, pred: (v: T) => boolean, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (pred(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('GET /px', () => {
  it('puts the browser into the campaign exposure segment, visible to insights', async () => {
    const r = await fetch(`${segd.url}/px?c=spring-sale&e=imp&s=site1&cr=cr9`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('image/gif');
    const cookie = r.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^segd=/);
    const seg = await until(
      () => exposureSegment('exposure imp: spring-sale'),
      (s) => s !== undefined,
    );
    expect(seg).toMatchObject({ dataType: 'first' });
    expect(seg!.id).toBeGreaterThanOrEqual(EXPOSURE_FIRST_ID);
    expect(
      await until(
        () => sizeOf(seg!.id),
        (n) => n === 1,
      ),
    ).toBe(1);
    // The same browser again (its cookie): still one member; a click is another segment.
    const again = await fetch(`${segd.url}/px?c=spring-sale&e=click&f=n`, {
      headers: { cookie: cookie.split(';')[0]! },
    });
    expect(again.status).toBe(204);
    const click = await until(
      () => exposureSegment('exposure click: spring-sale'),
      (s) => s !== undefined,
    );
    expect(click, 'the click exposure segment exists').toBeDefined();
    expect(
      await until(
        () => sizeOf(click!.id),
        (n) => n === 1,
      ),
    ).toBe(1);
    const o = await fetch(`${segd.url}/v1/insights/overlap?segments=${seg!.id},${click!.id}`, { headers: admin });
    expect(((await o.json()) as { matrix: number[][] }).matrix).toEqual([
      [1, 1],
      [1, 1],
    ]);
    // Both hits were confirmed by the writer (its answer reaches the worker just after the commit), none refused or lost.
    const queued = async () => {
      const m = await (await fetch(`${segd.url}/metrics`)).text();
      return ['stored', 'refused', 'lost'].map((outcome) =>
        Number(
          new RegExp(`^segd_queued_writes_total\\{queue="exposures",outcome="${outcome}"\\} (\\d+)$`, 'm').exec(m)?.[1],
        ),
      );
    };
    expect(await until(queued, ([stored]) => stored === 2)).toEqual([2, 0, 0]);
  });

  it('writes nothing without consent or after an opt-out, and refuses bad parameters', async () => {
    const noConsent = await fetch(`${segd.url}/px?c=quiet&e=imp&gdpr=1`);
    expect(noConsent.status).toBe(204);
    expect(noConsent.headers.get('set-cookie')).toBeNull();
    // A consent field alone decides too: GPP section 2 (TCF EU) makes GDPR apply, and there is no TC string.
    for (const q of ['c=quiet&e=imp&gpp_sid=2', 'c=quiet&e=imp&gdpr=1&gdpr_consent=not-a-tc-string']) {
      const r = await fetch(`${segd.url}/px?${q}`);
      expect([r.status, r.headers.get('set-cookie')], q).toEqual([204, null]);
    }
    const optedOut = await fetch(`${segd.url}/px?c=quiet&e=imp`, { headers: { cookie: 'segd_optout=OPT_OUT' } });
    expect(optedOut.status).toBe(204);
    // Escapes are decoded as uWS decodes them (%20 and + are spaces, which no id may hold).
    for (const q of [
      'c=&e=imp',
      'c=a<b&e=imp',
      `c=${'x'.repeat(65)}&e=imp`,
      'c=x&e=view',
      'c=x',
      'c=x&e=imp&s=a b',
      'c=x&e=imp&s=a+b',
      'c=x&e=imp&cr=a%20b',
      'c=a%3Cb&e=imp',
    ])
      expect((await fetch(`${segd.url}/px?${q}`)).status, q).toBe(400);
    // A later hit's segment exists (its campaign escaped, its consent explicit); the refused ones never created theirs.
    expect((await fetch(`${segd.url}/px?c=mark%2Der&e=imp&gdpr=0`)).status).toBe(200);
    await until(
      () => exposureSegment('exposure imp: mark-er'),
      (s) => s !== undefined,
    );
    expect(await exposureSegment('exposure imp: quiet')).toBeUndefined();
  });
});
