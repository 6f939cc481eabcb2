// Enrichment reads a BidRequest with a bounded scanner and splices segd's
// user.data into the request's own bytes (src/openrtb/scan.ts, user-data.ts).
// The specification is what parse → modify → stringify gives: over a corpus
// of real OpenRTB 2.5/2.6 requests and generated hostile ones (duplicate keys,
// escaped keys, unicode, wrong types, deep ext, our own Data objects already
// present), the scanner accepts exactly what JSON.parse accepts, reads the same
// keys and signals, and the spliced answer parses to the same value.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BidRequestScanner } from '../src/openrtb/scan.js';
import { readBidRequest } from '../src/openrtb/bid-request.js';
import { UserData } from '../src/openrtb/user-data.js';
import { AnswerBuffer } from '../src/http/format.js';
import { ROOT } from './helpers/server.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

// ---- The specification: the document parsed, read, modified and stringified. ----

/** What enrichment reads from a parsed BidRequest, or null when it is not one. */
function referenceView(doc: unknown, partner: string | null) {
  if (!isObj(doc) || typeof doc.id !== 'string' || !Array.isArray(doc.imp)) return null;
  const { user, device, regs } = doc;
  if (
    (user !== undefined && !isObj(user)) ||
    (device !== undefined && !isObj(device)) ||
    (regs !== undefined && !isObj(regs))
  )
    return null;
  if (user !== undefined && user.data !== undefined && !Array.isArray(user.data)) return null;
  const u = user ?? {};
  const r = regs ?? {};
  const uExt = isObj(u.ext) ? u.ext : {};
  const rExt = isObj(r.ext) ? r.ext : {};
  return {
    keys: { partner, uid: u.id, buyeruid: u.buyeruid, eids: u.eids, ifa: device?.ifa },
    signals: {
      gdpr: r.gdpr,
      extGdpr: rExt.gdpr,
      consent: u.consent ?? uExt.consent,
      usPrivacy: r.us_privacy,
      extUsPrivacy: rExt.us_privacy,
      gpp: r.gpp,
      gppSid: r.gpp_sid,
      coppa: r.coppa,
    },
    tmax: typeof doc.tmax === 'number' && doc.tmax > 0 ? doc.tmax : null,
  };
}

interface Def {
  provider: string;
  segtax: number;
}

function referenceData(taxonomy: Map<number, Def>, domain: string, ids: number[]) {
  const out: Array<{ id: string; name: string; segment: Array<{ id: string }>; ext: { segtax: number } }> = [];
  for (const id of ids) {
    const def = taxonomy.get(id);
    if (def === undefined) continue;
    let d = out.find((g) => g.id === def.provider && g.ext.segtax === def.segtax);
    if (d === undefined) out.push((d = { id: def.provider, name: domain, segment: [], ext: { segtax: def.segtax } }));
    d.segment.push({ id: String(id) });
  }
  return out;
}

function referenceApply(doc: Obj, domain: string, data: unknown[]): Obj {
  const user = (doc.user ?? (doc.user = {})) as Obj;
  const before = Array.isArray(user.data) ? (user.data as unknown[]) : [];
  user.data = [...before.filter((d) => !(isObj(d) && d.name === domain)), ...data];
  return doc;
}

// ---- The implementation under test, as the route runs it. ----

function run(domain: string, taxonomy: Map<number, Def>) {
  const scanner = new BidRequestScanner(domain);
  const userData = new UserData({ segment: (id) => taxonomy.get(id) }, domain);
  const out = new AnswerBuffer();
  return (text: string, ids: number[], dataOnly = false) => {
    const body = Buffer.from(text);
    if (!scanner.scan(body)) return { ok: false as const };
    const ascii = scanner.ascii;
    const view = readBidRequest(scanner, 'dsp1');
    if (view === null) return { ok: true as const, ascii, view };
    const groups = userData.group(Uint32Array.from(ids), ids.length);
    if (groups === 0) return { ok: true as const, ascii, view, groups };
    if (dataOnly) userData.writeData(out);
    else userData.writeEnriched(out, body, scanner);
    return { ok: true as const, ascii, view, groups, answer: out.view().toString('utf8') };
  };
}

/** Parses like the route did: JSON.parse, or the error. */
function parse(text: string): { ok: true; doc: unknown } | { ok: false } {
  try {
    return { ok: true, doc: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

function check(text: string, ids: number[], domain: string, taxonomy: Map<number, Def>) {
  const got = run(domain, taxonomy)(text, ids);
  // The route reads bytes: the reference parses them as it did (a lone surrogate in `text` is U+FFFD on the wire).
  const want = parse(Buffer.from(text).toString('utf8'));
  expect(got.ok, text).toBe(want.ok);
  if (!want.ok || !got.ok) return;
  // An accepted document said to be ASCII needs no UTF-8 check (the route relies on it).
  expect(got.ascii, text).toBe(!/[^\u0000-\u007f]/.test(text));
  const view = referenceView(want.doc, 'dsp1');
  expect(got.view, text).toEqual(view);
  if (view === null) return;
  const data = referenceData(taxonomy, domain, ids);
  expect(got.groups ?? 0).toBe(data.length);
  if (data.length === 0) return;
  expect(JSON.parse(got.answer!), text).toEqual(referenceApply(want.doc as Obj, domain, data));
  // mode=data: the Data objects alone, byte for byte as JSON.stringify writes them.
  expect(run(domain, taxonomy)(text, ids, true).answer).toBe(JSON.stringify(data));
}

const DOMAIN = 'dmp.example';
const TAXONOMY = new Map<number, Def>([
  [1, { provider: 'segd', segtax: 4 }],
  [2, { provider: 'segd', segtax: 4 }],
  [3, { provider: 'segd', segtax: 600 }],
  [5, { provider: 'acme-"data"', segtax: 4 }],
  [8, { provider: 'dätä', segtax: 7 }],
  [4_000_000_000, { provider: 'segd', segtax: 4 }],
]);
const someIds = fc
  .uniqueArray(fc.constantFrom(1, 2, 3, 4, 5, 6, 8, 4_000_000_000), { maxLength: 6 })
  .map((a) => a.sort((x, y) => x - y));

// ---- The corpus: real requests, and what can be built from them. ----

const fixtures = readdirSync(join(ROOT, 'test/fixtures/openrtb')).map((f) =>
  readFileSync(join(ROOT, 'test/fixtures/openrtb', f), 'utf8'),
);
const ours = { id: 'segd', name: DOMAIN, segment: [{ id: '1' }], ext: { segtax: 4 } };
const video26 = {
  id: 'v-1',
  imp: [
    {
      id: '1',
      video: { mimes: ['video/mp4'], minduration: 5, maxduration: 30, protocols: [2, 3, 7], w: 1920, h: 1080 },
      rwdd: 0,
    },
  ],
  site: { page: 'https://v.example/watch?v=1&t=30', content: { title: 'Épisode 3 — « Le retour »' } },
  user: { id: 'rtb-user-1', data: [ours, { id: 'pub', name: 'v.example', segment: [] }] },
  regs: { gdpr: 1, ext: { gdpr: 1 } },
  tmax: 250,
};
const ctv = {
  id: 'ctv-1',
  imp: [{ id: '1', video: { mimes: ['video/mp4'], podid: 'pod-1', slotinpod: 1, mincpmpersec: 0.02 } }],
  app: { bundle: 'com.example.tv', storeurl: 'https://s.example/app?id=1', content: { livestream: 1 } },
  device: { devicetype: 3, ifa: 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee', lmt: 0, ext: { ifa_type: 'rida' } },
  regs: { coppa: 0, us_privacy: '1YNN', gpp: 'DBABLA~BVQqAAAAAgA.QA', gpp_sid: [7] },
};
const native = {
  id: 'n\u2028\u00e9\ud83d\ude00',
  imp: [{ id: '1', native: { request: '{"ver":"1.2","assets":[{"id":1,"title":{"len":90}}]}', ver: '1.2' } }],
  user: { buyeruid: 'b\\u"q', eids: [{ source: 'id5-sync.com', uids: [{ id: 'ID5*x', atype: 1 }] }] },
  ext: { deep: [[[{ a: [[[{ b: { c: [1, -0.5e-3, 1e21, true, null] } }]]] }]]] },
};
const corpus = [...fixtures, JSON.stringify(video26), JSON.stringify(ctv, null, 2), JSON.stringify(native, null, '\t')];

describe('enrichment by splicing', () => {
  it('agrees with parse → modify → stringify on every request of the corpus', () => {
    for (const text of corpus)
      for (const ids of [[1], [1, 2, 3, 5, 8, 4_000_000_000], [4, 6], []]) {
        check(text, ids, DOMAIN, TAXONOMY);
      }
  });

  it('agrees on requests built from the corpus with any user, device, regs, duplicates and escapes', () => {
    fc.assert(
      fc.property(bidRequest, someIds, fc.constantFrom(DOMAIN, 'dmp.ex\u00e4mple'), (text, ids, domain) =>
        check(text, ids, domain, TAXONOMY),
      ),
      { numRuns: 3_000 },
    );
  });

  it('accepts exactly the JSON that JSON.parse accepts (damaged requests, arbitrary JSON-ish text)', () => {
    const damaged = fc
      .tuple(fc.oneof(fc.constantFrom(...corpus), bidRequest), fc.nat(), fc.constantFrom(...DAMAGE))
      .map(([text, at, [kind, ch]]) => {
        const i = at % (text.length + 1);
        if (kind === 'cut') return text.slice(0, i);
        if (kind === 'drop') return text.slice(0, i) + text.slice(i + 1);
        if (kind === 'insert') return text.slice(0, i) + ch + text.slice(i);
        return text.slice(0, i) + ch + text.slice(i + 1);
      });
    const jsonish = fc
      .array(fc.constantFrom(...'{}[]":,\\ \n\t0123456789-+.eEtrufalsn"xu\u0001\u00e9'.split(''), 'true', 'null'), {
        maxLength: 40,
      })
      .map((a) => a.join(''));
    fc.assert(
      fc.property(fc.oneof(damaged, jsonish, fc.json({ maxDepth: 4 })), someIds, (text, ids) =>
        check(text, ids, DOMAIN, TAXONOMY),
      ),
      { numRuns: 5_000 },
    );
  });

  it('refuses every request of the corpus cut short, wherever the cut falls (mid-string, mid-number, after a key)', () => {
    // The scan's inner loops read on to the byte that stops them, not to a length check: a body that ends inside
    // a string, a number or whitespace must still be refused, never read past.
    const scanner = new BidRequestScanner(DOMAIN);
    for (const text of corpus) {
      const body = Buffer.from(text);
      for (let i = 0; i < body.length; i++) {
        const cut = body.subarray(0, i);
        expect(scanner.scan(cut), text.slice(0, i)).toBe(parse(cut.toString('utf8')).ok);
      }
      expect(scanner.scan(body)).toBe(true);
    }
  });

  it('tells objects from arrays at every level of a skipped container, below and past the levels kept in bits', () => {
    // A mixed nesting in `ext` (skipped), closed right or with one closer swapped at each level in turn.
    for (let d = 1; d <= 70; d++) {
      const opens = Array.from({ length: d }, (_, k) => (k % 3 === 1 ? '[' : '{"k":'));
      const closers = opens.map((o) => (o === '[' ? ']' : '}')).reverse();
      const doc = (cl: string[]) => `{"id":"n","imp":[],"user":{"id":"u"},"ext":${opens.join('')}1${cl.join('')}}`;
      check(doc(closers), [1], DOMAIN, TAXONOMY);
      for (let i = 0; i < d; i++) {
        const swapped = [...closers];
        swapped[i] = swapped[i] === ']' ? '}' : ']';
        check(doc(swapped), [1], DOMAIN, TAXONOMY);
      }
    }
  });

  it('keeps the whitespace and items of a user.data that holds nothing of ours, byte for byte', () => {
    const data = JSON.stringify(referenceData(TAXONOMY, DOMAIN, [1]));
    const enrich = run(DOMAIN, TAXONOMY);
    for (const items of [' ', ' {"name":"x"} ,\n\t[1] ', '{"name":"dmp"}']) {
      const text = `{"id":"w","imp":[],"user":{"data":[${items}]}}`;
      const sep = items.trim() === '' ? '' : ',';
      expect(enrich(text, [1]).answer).toBe(text.replace(`[${items}]`, `[${items}${sep}${data.slice(1, -1)}]`));
    }
  });

  it('walks strings full of brackets, quotes, escapes and unicode, in containers it skips and ones it reads, as JSON.parse does', () => {
    // Strings the scanner walks inline (values and keys, skipped or read), around every kind of byte that ends a plain run.
    const tricky = jsonString(
      fc.string({
        unit: fc.constantFrom(...'{}[]":,\\/ abc\u00e9\u2028\u20ac\ud83d\ude00\t\n\u0001'.split('')),
        maxLength: 40,
      }),
    ).map((n) => n as string);
    const nest = (d: number, v: string) => `${'[{"k":'.repeat(d)}${v}${'}]'.repeat(d)}`;
    const doc = fc
      .tuple(fc.array(tricky, { minLength: 12, maxLength: 12 }), fc.nat({ max: 30 }))
      .map(
        ([t, d]) =>
          `{"id":${t[0]},"imp":[{"id":${t[1]},${t[2]}:[${t[3]},{${t[4]}:${t[5]}}]}],"site":{${t[6]}:${t[7]}},` +
          `"user":{"id":${t[8]},${t[9]}:${t[10]}},"device":{"ifa":${t[11]}},"ext":${nest(d, t[2]!)}}`,
      );
    // The same with one byte changed into what a string may not hold raw, or a lone backslash or quote.
    const damaged = fc
      .tuple(doc, fc.nat(), fc.constantFrom('\u0000', '\u001f', '\n', '\\', '"', '\\u12', '\\x'))
      .map(([text, at, ch]) => {
        const i = at % text.length;
        return text.slice(0, i) + ch + text.slice(i + 1);
      });
    fc.assert(
      fc.property(fc.oneof(doc, damaged), someIds, (text, ids) => check(text, ids, DOMAIN, TAXONOMY)),
      { numRuns: 3_000 },
    );
  });

  it('takes any nesting depth without recursion and keeps the bytes it does not touch', () => {
    const deep = `{"id":"d","imp":[],"user":{"id":"u"},"ext":${'['.repeat(200_000)}${']'.repeat(200_000)}}`;
    const data = JSON.stringify(referenceData(TAXONOMY, DOMAIN, [1]));
    const enrich = run(DOMAIN, TAXONOMY);
    expect(enrich(deep, [1]).answer).toBe(deep.replace('{"id":"u"}', `{"id":"u","data":${data}}`));
    const many = `{"id":"m","imp":[],"user":{"data":[${'{"name":"x"},'.repeat(20_000)}{}]}}`;
    expect(enrich(many, [1]).answer).toBe(many.replace('{}]', `{},${data.slice(1, -1)}]`));
    // The same scanner, its stacks grown and let go, reads the next requests as a fresh one does.
    for (const text of corpus) expect(enrich(text, [1, 3])).toEqual(run(DOMAIN, TAXONOMY)(text, [1, 3]));
    expect(run(DOMAIN, TAXONOMY)(deep.slice(0, -1), [1]).ok).toBe(false);
  });
});

// ---- Generated requests: members as text, so keys may repeat and be escaped. ----

const DAMAGE: Array<[string, string]> = [
  ['cut', ''],
  ['drop', ''],
  ...[...'{}[]",:\\ \u0000\u001fa0-.eE+'].flatMap((c): Array<[string, string]> => [
    ['insert', c],
    ['replace', c],
  ]),
];

type Node = string | { members: Array<[string, Node]>; escapeKeys: boolean } | Node[];

/** JSON text of a node; escaped keys spell their first letter as \u00XX. */
function render(n: Node, pad: string): string {
  if (typeof n === 'string') return n;
  if (Array.isArray(n)) return `[${pad}${n.map((x) => render(x, pad)).join(`,${pad}`)}${pad}]`;
  const key = (k: string) =>
    n.escapeKeys && k !== ''
      ? `"\\u${k.charCodeAt(0).toString(16).padStart(4, '0')}${JSON.stringify(k).slice(2)}`
      : JSON.stringify(k);
  return `{${pad}${n.members.map(([k, v]) => `${key(k)}${pad}:${pad}${render(v, pad)}`).join(`,${pad}`)}${pad}}`;
}

/** A string in JSON, sometimes with every non-ASCII char (or every char) as \u escapes. */
const jsonString = (s: fc.Arbitrary<string>): fc.Arbitrary<Node> =>
  fc.tuple(s, fc.constantFrom('plain', 'nonascii', 'all')).map(([v, how]) => {
    if (how === 'plain') return JSON.stringify(v);
    const u = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
    return `"${[...v].map((c) => (how === 'all' || c.charCodeAt(0) > 0x7e || c === '"' || c === '\\' || c < ' ' ? [...c].map(u).join('') : c === '/' ? '\\/' : c)).join('')}"`;
  });

const anyJson: fc.Arbitrary<Node> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  jsonString(fc.string({ unit: 'grapheme', maxLength: 8 })),
);
const flagValue: fc.Arbitrary<Node> = fc.oneof(
  fc.constantFrom('1', '0', '"1"', '"0"', 'true', 'false', 'null', '2', '1.0', '1e0', '-0', '{}', '[]'),
  anyJson,
);
const obj = (member: fc.Arbitrary<[string, Node]>, maxLength = 6): fc.Arbitrary<Node> =>
  fc.record({ members: fc.array(member, { maxLength }), escapeKeys: fc.boolean() });
const member = (key: string, value: fc.Arbitrary<Node>) => value.map((v): [string, Node] => [key, v]);
const someKey = fc.constantFrom('kw', 'yob', '__proto__', 'Id', 'user ', 'dat\u0061', '');
const other = fc.tuple(someKey, anyJson);

const uidish = jsonString(fc.constantFrom('rtb-user-1', 'only-dsp1', 'x', '', 'üser', 'a"b\\c'));
const dataItem: fc.Arbitrary<Node> = fc.oneof(
  fc.constant(JSON.stringify(ours)),
  jsonString(fc.constantFrom(DOMAIN, 'dmp.ex\u00e4mple', 'other.example')).map(
    (name) => `{"id":"x","name":${name as string},"segment":[]}`,
  ),
  fc.constant(`{"name":"${DOMAIN}","name":"other"}`),
  fc.constant(`{"name":"other","name":"${DOMAIN}"}`),
  fc.constant(`["${DOMAIN}"]`),
  anyJson,
);
const userExt = obj(fc.oneof(member('consent', fc.oneof(uidish, anyJson)), other), 3);
const user = obj(
  fc.oneof(
    member('id', fc.oneof(uidish, anyJson)),
    member('buyeruid', uidish),
    member('eids', fc.oneof(fc.constant('[{"source":"id5-sync.com","uids":[{"id":"ID5*x"}]}]'), anyJson)),
    member('consent', fc.oneof(uidish, anyJson)),
    member('data', fc.oneof(fc.array(dataItem, { maxLength: 4 }), anyJson)),
    member('ext', fc.oneof(userExt, anyJson)),
    other,
  ),
);
const device = obj(fc.oneof(member('ifa', fc.oneof(uidish, anyJson)), member('ext', anyJson), other), 3);
const regsExt = obj(fc.oneof(member('gdpr', flagValue), member('us_privacy', fc.oneof(uidish, anyJson)), other), 3);
const regs = obj(
  fc.oneof(
    member('gdpr', flagValue),
    member('coppa', flagValue),
    member('us_privacy', jsonString(fc.constantFrom('1YNN', '1YYN', '1---'))),
    member('gpp', anyJson),
    member('gpp_sid', fc.oneof(fc.constant('[7]'), fc.constant('"2,6"'), anyJson)),
    member('ext', fc.oneof(regsExt, anyJson)),
    other,
  ),
  4,
);
const deepExt = fc.nat({ max: 40 }).map((d) => `${'{"e":['.repeat(d)}1${']}'.repeat(d)}`);
const rootMember = fc.oneof(
  { weight: 3, arbitrary: member('user', fc.oneof({ weight: 5, arbitrary: user }, { weight: 1, arbitrary: anyJson })) },
  {
    weight: 2,
    arbitrary: member('device', fc.oneof({ weight: 5, arbitrary: device }, { weight: 1, arbitrary: anyJson })),
  },
  { weight: 2, arbitrary: member('regs', fc.oneof({ weight: 5, arbitrary: regs }, { weight: 1, arbitrary: anyJson })) },
  { weight: 1, arbitrary: member('tmax', fc.oneof(fc.constantFrom('120', '0', '-5', '1e3', '"100"'), anyJson)) },
  { weight: 1, arbitrary: member('id', fc.oneof(uidish, anyJson)) },
  { weight: 1, arbitrary: member('imp', fc.oneof(fc.constant('[{"id":"1","banner":{"w":300,"h":250}}]'), anyJson)) },
  { weight: 1, arbitrary: member('ext', deepExt) },
  { weight: 1, arbitrary: other },
);
/** A BidRequest as text: a real one's members first, then generated ones (which may repeat them). */
const bidRequest: fc.Arbitrary<string> = fc
  .tuple(
    fc.constantFrom(...corpus.map((t) => JSON.parse(t) as Obj)),
    fc.array(rootMember, { maxLength: 5 }),
    fc.boolean(),
    fc.constantFrom('', ' ', '\n  ', '\t', '\r\n'),
  )
  .map(([base, extra, escapeKeys, pad]) =>
    render(
      {
        members: [...Object.entries(base).map(([k, v]): [string, Node] => [k, JSON.stringify(v)]), ...extra],
        escapeKeys,
      },
      pad,
    ),
  );
