// Enrichment's privacy gate over the real server, for every JSON spelling a
// signal arrives in: numbers, strings, booleans, 2.5 `ext` fields, arrays and
// strings for gpp_sid, and values that mean nothing. A truthy spelling gates;
// a value segd does not understand gates too (fails closed); a request that
// says nothing about GDPR is judged by SEGD_GDPR_DEFAULT. And the parsing
// under it, on any input.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseConsent, mayStore, maySync } from '../src/privacy/consent.js';
import { stopReport, CLEAN_STOP, type Segd } from './helpers/server.js';
import { startActivation, bearer, KEYS } from './helpers/activation.js';

type Obj = Record<string, any>;
/** Consent for vendor 777 (GVL_ID) with Purposes 1 and 4 (test/fixtures/openrtb/gdpr-consent.json). */
const TCF_OK = 'CQuMEMAQuMEMAAKAAAENCWEgAPIAAAAAAAYgGEwAgAQAMJAAAAAA.IAAA.YAAAAAAAAAAA';
const GPP_USNAT_OPTOUT = 'DBABLA~CEAQAAAAAABA.QA';
const GPP_USNAT_OK = 'DBABLA~CAAiAAAAAABA.QA';
const GPP_TCF_OK = 'DBABMA~CQuMEMAQuMEMAAKAAAENCWEgAPIAAAAAAAYgGEwAgAQAMJAAAAAA.IAAA.YAAAAAAAAAAA';

/** A bid request for rtb-user-1 (who holds dsp1's segments) with these regs and user fields. */
const request = (regs: Obj | undefined, user: Obj = {}): Obj => ({
  id: 'r',
  imp: [{ id: '1', banner: { w: 300, h: 250 } }],
  user: { id: 'rtb-user-1', ...user },
  ...(regs === undefined ? {} : { regs }),
});

async function enrich(segd: Segd, body: Obj): Promise<{ status: number; reason: string | null }> {
  const r = await fetch(`${segd.url}/openrtb2/enrich?mode=data`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...bearer(KEYS.dsp1) },
    body: JSON.stringify(body),
  });
  await r.arrayBuffer();
  return { status: r.status, reason: r.headers.get('x-segd-empty') };
}

const OK = { status: 200, reason: null };
const no = (reason: string) => ({ status: 204, reason });

// [what, regs, user fields, expected] — under the default SEGD_GDPR_DEFAULT (applies).
type Row = readonly [string, Obj | undefined, Obj, { status: number; reason: string | null }];
const TABLE: readonly Row[] = [
  // GDPR applies, in every spelling, without a consent string: refused.
  ...[1, '1', true, 'true'].map(
    (v) => [`regs.gdpr = ${JSON.stringify(v)}, no consent`, { gdpr: v }, {}, no('gdpr')] as const,
  ),
  ...[1, '1', true, 'true'].map(
    (v) => [`regs.ext.gdpr = ${JSON.stringify(v)}, no consent`, { ext: { gdpr: v } }, {}, no('gdpr')] as const,
  ),
  // … and with consent for Purposes 1 and 4 and our vendor: enriched.
  ...[1, '1', true, 'true'].map(
    (v) => [`regs.gdpr = ${JSON.stringify(v)} with user.consent`, { gdpr: v }, { consent: TCF_OK }, OK] as const,
  ),
  ['regs.ext.gdpr = "1" with user.ext.consent', { ext: { gdpr: '1' } }, { ext: { consent: TCF_OK } }, OK],
  // GDPR does not apply, in every spelling.
  ...[0, '0', false, 'false'].map((v) => [`regs.gdpr = ${JSON.stringify(v)}`, { gdpr: v }, {}, OK] as const),
  // Values that mean nothing: fail closed.
  ...[2, -1, 'yes', 'TRUE ', '', {}, [1], 0.5].map(
    (v) => [`regs.gdpr = ${JSON.stringify(v)} (unrecognised)`, { gdpr: v }, { consent: TCF_OK }, no('gdpr')] as const,
  ),
  // The 2.6 field and the 2.5 ext field disagree: the stricter wins.
  ['regs.gdpr = 0 but regs.ext.gdpr = 1', { gdpr: 0, ext: { gdpr: 1 } }, {}, no('gdpr')],
  ['regs.gdpr = 1 with a consent that is not a string', { gdpr: 1 }, { consent: 12345 }, no('gdpr')],
  ['regs.gdpr = 1 with user.ext.consent not a string', { gdpr: 1 }, { ext: { consent: ['x'] } }, no('gdpr')],
  // Nothing said about GDPR: the default (applies) with no consent string refuses…
  ['no regs at all', undefined, {}, no('gdpr')],
  ['regs without gdpr', { coppa: 0 }, {}, no('gdpr')],
  ['regs.gdpr = null', { gdpr: null }, {}, no('gdpr')],
  // … and consent given for it is honoured.
  ['no regs.gdpr, consent given', undefined, { consent: TCF_OK }, OK],
  // gpp_sid says which sections apply: without 2 GDPR does not, with 2 it does.
  ['gpp_sid [7] (usnat) says GDPR does not apply', { gpp: GPP_USNAT_OK, gpp_sid: [7] }, {}, OK],
  ['gpp_sid [2] with a TCF section', { gpp: GPP_TCF_OK, gpp_sid: [2] }, {}, OK],
  // COPPA in every truthy spelling (checked first, whatever consent says).
  ...[1, '1', true, 'true'].map(
    (v) => [`regs.coppa = ${JSON.stringify(v)}`, { gdpr: 0, coppa: v }, {}, no('coppa')] as const,
  ),
  ...[0, '0', false, 'false', null].map(
    (v) => [`regs.coppa = ${JSON.stringify(v)}`, { gdpr: 0, coppa: v }, {}, OK] as const,
  ),
  ...[2, 'yes', '', {}, [1]].map(
    (v) => [`regs.coppa = ${JSON.stringify(v)} (unrecognised)`, { gdpr: 0, coppa: v }, {}, no('coppa')] as const,
  ),
  // US Privacy: the 2.6 field, the 2.5 ext field, and values that are not strings.
  ['regs.us_privacy opted out', { gdpr: 0, us_privacy: '1YYN' }, {}, no('us_privacy')],
  ['regs.ext.us_privacy opted out', { gdpr: 0, ext: { us_privacy: '1YYN' } }, {}, no('us_privacy')],
  [
    'regs.us_privacy ok but regs.ext.us_privacy opted out',
    { gdpr: 0, us_privacy: '1YNN', ext: { us_privacy: '1YYN' } },
    {},
    no('us_privacy'),
  ],
  ...[1, ['1YYN'], {}, true].map(
    (v) =>
      [
        `regs.us_privacy = ${JSON.stringify(v)} (unrecognised)`,
        { gdpr: 0, us_privacy: v },
        {},
        no('us_privacy'),
      ] as const,
  ),
  ['regs.us_privacy ok', { gdpr: 0, us_privacy: '1YNN' }, {}, OK],
  // GPP: gpp_sid as OpenRTB's array, as a string, as an array of strings; values that mean nothing.
  ['gpp opted out, gpp_sid [7]', { gdpr: 0, gpp: GPP_USNAT_OPTOUT, gpp_sid: [7] }, {}, no('gpp')],
  ['gpp opted out, gpp_sid "7"', { gdpr: 0, gpp: GPP_USNAT_OPTOUT, gpp_sid: '7' }, {}, no('gpp')],
  ['gpp opted out, gpp_sid ["7"]', { gdpr: 0, gpp: GPP_USNAT_OPTOUT, gpp_sid: ['7'] }, {}, no('gpp')],
  ['gpp ok, gpp_sid "7"', { gdpr: 0, gpp: GPP_USNAT_OK, gpp_sid: '7' }, {}, OK],
  ['gpp ok, gpp_sid ["7"]', { gdpr: 0, gpp: GPP_USNAT_OK, gpp_sid: ['7'] }, {}, OK],
  ...[{}, [[7]], 'x', [7.5], true].map(
    (v) =>
      [
        `gpp_sid = ${JSON.stringify(v)} (unrecognised)`,
        { gdpr: 0, gpp: GPP_USNAT_OK, gpp_sid: v },
        {},
        no('gpp'),
      ] as const,
  ),
  ['gpp_sid without gpp, unrecognised', { gdpr: 0, gpp_sid: { a: 1 } }, {}, no('gpp')],
  ...[123, ['DBABLA~CAAiAAAAAABA.QA'], {}, true].map(
    (v) =>
      [`regs.gpp = ${JSON.stringify(v)} (unrecognised)`, { gdpr: 0, gpp: v, gpp_sid: [7] }, {}, no('gpp')] as const,
  ),
];

describe('enrichment gates every spelling of a privacy signal (SEGD_GDPR_DEFAULT=applies, the default)', () => {
  let segd: Segd;
  beforeAll(async () => {
    // A generous budget: the outcome must not depend on how busy the machine is.
    segd = await startActivation({ SEGD_ENRICH_BUDGET_MS: '10000' });
  });
  afterAll(async () => {
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });

  for (const [what, regs, user, want] of TABLE) {
    it(`${what} → ${want.status}${want.reason ? ` ${want.reason}` : ''}`, async () => {
      expect(await enrich(segd, request(regs, user))).toEqual(want);
    });
  }
});

describe('SEGD_GDPR_DEFAULT=not-applies', () => {
  let segd: Segd;
  beforeAll(async () => {
    segd = await startActivation({ SEGD_ENRICH_BUDGET_MS: '10000', SEGD_GDPR_DEFAULT: 'not-applies' });
  });
  afterAll(async () => {
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });

  const table: readonly Row[] = [
    ['no regs at all', undefined, {}, OK],
    ['regs.gdpr = null', { gdpr: null }, {}, OK],
    // Only "unknown" changes: a signal that is sent is honoured as before.
    ['regs.gdpr = "1", no consent', { gdpr: '1' }, {}, no('gdpr')],
    ['regs.gdpr = "maybe"', { gdpr: 'maybe' }, {}, no('gdpr')],
    ['gpp_sid [2] without gdpr and without a TCF string', { gpp_sid: [2] }, {}, no('gdpr')],
    ['gpp_sid "2" without gdpr and without a TCF string', { gpp_sid: '2' }, {}, no('gdpr')],
    ['regs.coppa = true', { coppa: true }, {}, no('coppa')],
  ];
  for (const [what, regs, user, want] of table) {
    it(`${what} → ${want.status}${want.reason ? ` ${want.reason}` : ''}`, async () => {
      expect(await enrich(segd, request(regs, user))).toEqual(want);
    });
  }

  it('refuses an unknown value of the setting at start', async () => {
    let started: Segd | null = null;
    let why = '';
    try {
      started = await startActivation({ SEGD_GDPR_DEFAULT: 'sometimes' });
    } catch (err) {
      why = String(err);
    } finally {
      await started?.stop();
    }
    expect(started).toBeNull();
    expect(why).toContain('code 2');
    expect(why).toContain('SEGD_GDPR_DEFAULT: must be applies or not-applies');
  });
});

describe('consent parsing never throws and fails closed', () => {
  it('on any input', () => {
    const s = fc.option(fc.string({ maxLength: 300 }), { nil: undefined });
    fc.assert(
      fc.property(s, s, s, s, s, (gdpr, gdprConsent, usPrivacy, gpp, gppSid) => {
        const c = parseConsent({ gdpr, gdprConsent, usPrivacy, gpp, gppSid });
        if (c.malformed) expect([mayStore(c, 1), maySync(c)]).toEqual([false, false]);
        if (gdpr === '1') expect(mayStore(c, 1)).toBe(false); // random strings never carry consent
      }),
    );
  });
});
