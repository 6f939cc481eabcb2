// Enrichment remembers the consent decision per distinct privacy signals
// (src/openrtb/refusals.ts): decoding a TCF or GPP string costs tens of µs.
// The specification is personalisationRefusal itself: over the fixtures'
// real consent strings and generated signals (every spelling of gdpr, GPP
// sections, US privacy, COPPA, escaped and malformed strings, duplicate
// keys), a remembered answer is always the one a fresh decode gives — on the
// first request, on a repeat, and after the memo has started over.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BidRequestScanner } from '../src/openrtb/scan.js';
import { readBidRequest } from '../src/openrtb/bid-request.js';
import { Refusals } from '../src/openrtb/refusals.js';
import { personalisationRefusal, type ConsentPolicy } from '../src/privacy/personalisation.js';
import { ROOT } from './helpers/server.js';
import { TEST_VENDOR, gppUsNat, tcfString } from './helpers/tcf.js';

const FIXTURES = join(ROOT, 'test/fixtures/openrtb');
const fixtures = readdirSync(FIXTURES)
  .filter((f) => f.endsWith('.json'))
  .map((f) => readFileSync(join(FIXTURES, f), 'utf8'));
// The fixtures' strings (issued for other vendors: refused) and strings issued for segd's vendor (allowed).
const fixtureConsent = [
  ...fixtures
    .map((t) => JSON.parse(t) as { user?: { consent?: unknown } })
    .map((d) => d.user?.consent)
    .filter((c): c is string => typeof c === 'string'),
  tcfString({ vendors: [TEST_VENDOR], purposes: [1, 4] }),
  tcfString({ vendors: [TEST_VENDOR], purposes: [1] }),
];
const fixtureGpp = [
  ...fixtures
    .map((t) => JSON.parse(t) as { regs?: { gpp?: unknown } })
    .map((d) => d.regs?.gpp)
    .filter((c): c is string => typeof c === 'string'),
  gppUsNat(false),
  gppUsNat(true),
];

/** Every character of `s` as a \u escape: the same string to JSON.parse, other bytes to the memo. */
const escaped = (s: string) =>
  '"' + [...s].map((c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')).join('') + '"';

const json = (v: unknown) => fc.constant(JSON.stringify(v));
const flagText = fc.oneof(
  json(0),
  json(1),
  json('0'),
  json('1'),
  json(true),
  json(null),
  json(2),
  json('yes'),
  json([1]),
);
const consentText = fc.oneof(
  ...fixtureConsent.map((c) => json(c)),
  ...fixtureConsent.map((c) => fc.constant(escaped(c))),
  json('not-a-tcf-string'),
  json(''),
  json(null),
  json(42),
);
const gppText = fc.oneof(...fixtureGpp.map((g) => json(g)), json('DBABMA~garbage'), json(''), json(null));
const sidText = fc.oneof(json([2]), json([7]), json([2, 7]), json([]), json('2'), json([8]), json(null));
const uspText = fc.oneof(json('1YNN'), json('1YYN'), json('1---'), json('x'), json(null));

/** Members of an object as JSON text: each present one written (a duplicate key now and then). */
function members(entries: Array<[string, string | undefined]>, dup: boolean): string {
  const out = entries.filter(([, v]) => v !== undefined).map(([k, v]) => `${JSON.stringify(k)}:${v}`);
  if (dup && out.length > 0) out.push(out[0]!.replace(/:.*/, ':0'));
  return out.join(',');
}

const signals = fc.record({
  gdpr: fc.option(flagText, { nil: undefined }),
  extGdpr: fc.option(flagText, { nil: undefined }),
  consent: fc.option(consentText, { nil: undefined }),
  extConsent: fc.option(consentText, { nil: undefined }),
  usp: fc.option(uspText, { nil: undefined }),
  extUsp: fc.option(uspText, { nil: undefined }),
  gpp: fc.option(gppText, { nil: undefined }),
  sid: fc.option(sidText, { nil: undefined }),
  coppa: fc.option(flagText, { nil: undefined }),
  dup: fc.boolean(),
});
type Signals = typeof signals extends fc.Arbitrary<infer T> ? T : never;

function requestText(g: Signals): string {
  const regsExt = members(
    [
      ['gdpr', g.extGdpr],
      ['us_privacy', g.extUsp],
    ],
    false,
  );
  const regs = members(
    [
      ['gdpr', g.gdpr],
      ['us_privacy', g.usp],
      ['gpp', g.gpp],
      ['gpp_sid', g.sid],
      ['coppa', g.coppa],
      ['ext', `{${regsExt}}`],
    ],
    g.dup,
  );
  const user = members(
    [
      ['id', '"u1"'],
      ['consent', g.consent],
      ['ext', g.extConsent === undefined ? undefined : `{"consent":${g.extConsent}}`],
    ],
    false,
  );
  return `{"id":"r","imp":[{"id":"1"}],"user":{${user}},"regs":{${regs}}}`;
}

const policies: ConsentPolicy[] = [
  { gvlVendorId: TEST_VENDOR, gdprApplies: true },
  { gvlVendorId: 1234, gdprApplies: false },
];

describe('remembered consent decisions', () => {
  it('are what personalisationRefusal decides, first time, repeated and after the memo starts over', () => {
    for (const policy of policies) {
      const scanner = new BidRequestScanner('dmp.example');
      const refusals = new Refusals(policy, 8);
      const decide = (text: string) => {
        const body = Buffer.from(text);
        expect(scanner.scan(body)).toBe(true);
        const br = readBidRequest(scanner, 'dsp1');
        expect(br).not.toBeNull();
        return [refusals.of(scanner, br!), personalisationRefusal(br!.signals, policy)];
      };
      fc.assert(
        fc.property(
          fc.array(signals, { minLength: 1, maxLength: 6 }),
          fc.array(consentText, { minLength: 2, maxLength: 4 }),
          fc.array(gppText, { minLength: 2, maxLength: 4 }),
          (gs, consents, gpps) => {
            // Each request, its siblings that differ only in the consent or GPP
            // string, and all of them again: the later answers may come from the memo.
            const texts = gs.flatMap((g) => [
              requestText(g),
              ...consents.map((consent) => requestText({ ...g, consent })),
              ...gpps.map((gpp) => requestText({ ...g, gpp })),
            ]);
            for (const t of [...texts, ...texts]) {
              const [remembered, fresh] = decide(t);
              expect(remembered).toBe(fresh);
            }
          },
        ),
        { numRuns: 150 },
      );
    }
  });

  it('tell apart requests whose signals differ only in the consent string', () => {
    const policy = { gvlVendorId: TEST_VENDOR, gdprApplies: true };
    const scanner = new BidRequestScanner('dmp.example');
    const refusals = new Refusals(policy);
    const answers = new Set<string | null>();
    for (const c of [...fixtureConsent, 'garbage']) {
      scanner.scan(Buffer.from(`{"id":"r","imp":[],"user":{"consent":${JSON.stringify(c)}},"regs":{"gdpr":1}}`));
      const br = readBidRequest(scanner, null)!;
      const r = refusals.of(scanner, br);
      expect(r).toBe(personalisationRefusal(br.signals, policy));
      answers.add(r);
    }
    // The fixtures hold consent that allows and consent that refuses: both answers were given.
    expect(answers.size).toBe(2);
  });
});
