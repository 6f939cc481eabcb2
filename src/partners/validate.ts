// The one place partner and taxonomy records are checked. Records come from
// the config file and the admin API; both go through `parsePartner` /
// `parseSegment`, so what is stored is always well formed and a bad record is
// refused with every problem named.
import { createHash } from 'node:crypto';
import {
  TTD_ID_FIELDS,
  type DataType,
  type Destination,
  type DestinationIdType,
  type Partner,
  type SegmentDef,
  type SyncSpec,
  type TtdSpec,
} from './types.js';

export const SYNC_MACROS = ['UID', 'GDPR', 'GDPR_CONSENT', 'US_PRIVACY', 'GPP', 'GPP_SID'] as const;
export const PARTNER_ID = /^[a-z0-9][a-z0-9_-]{0,39}$/;
const HOST = /^[a-z0-9.-]{1,253}(:\d{1,5})?$/;
const MIN_KEY_CHARS = 16;

type Parsed<T> = { ok: true; value: T } | { ok: false; problems: string[] };

export const keyDigest = (key: string): string => createHash('sha256').update(key).digest('hex');

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function unknownFields(raw: Record<string, unknown>, allowed: readonly string[], problems: string[]): void {
  for (const k of Object.keys(raw)) if (!allowed.includes(k)) problems.push(`unknown field "${k}"`);
}

const u32 = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffff_ffff;

/** A licence or destination segment list: "*" or segment ids, given back unique and ascending (null: refused, said in `problems`). */
function parseSegmentList(raw: unknown, problems: string[]): '*' | number[] | null {
  if (raw === '*') return '*';
  if (!Array.isArray(raw) || !raw.every(u32)) {
    problems.push('segments must be "*" or an array of segment ids (0..4294967295)');
    return null;
  }
  return [...new Set(raw)].sort((a, b) => a - b);
}

/** A sync URL template: http(s), a fixed host (macros only in path and query), only known macros. */
export function checkSyncTemplate(url: string): string | null {
  const macros = [...url.matchAll(/\$\{([^}]*)\}/g)].map((m) => m[1]!);
  const bad = macros.filter((m) => !(SYNC_MACROS as readonly string[]).includes(m));
  if (bad.length)
    return `unknown macro ${bad.map((m) => '${' + m + '}').join(', ')} (known: ${SYNC_MACROS.map((m) => '${' + m + '}').join(' ')})`;
  if (/[\s\u0000-\u001f\u007f]/.test(url)) return 'must not contain white space or control characters';
  let u: URL;
  try {
    u = new URL(url.replace(/\$\{[A-Z_]+\}/g, 'x'));
  } catch {
    return 'is not an absolute URL';
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return 'must be http(s)';
  if (u.username || u.password) return 'must not carry credentials';
  // The host must be fixed, so a macro value can never choose where the browser goes.
  const authority = url.slice(url.indexOf('//') + 2).split(/[/?#]/)[0]!;
  if (authority.includes('${')) return 'macros are not allowed in the host';
  return null;
}

function parseSync(raw: unknown, problems: string[]): SyncSpec | null {
  if (raw === undefined || raw === null) return null;
  if (!isObj(raw)) {
    problems.push('sync must be an object');
    return null;
  }
  unknownFields(raw, ['url', 'type', 'callbackHosts', 'hmacKey'], problems);
  const url = raw.url;
  if (typeof url !== 'string' || url.length > 2048)
    problems.push('sync.url must be a string of at most 2048 characters');
  else {
    const why = checkSyncTemplate(url);
    if (why) problems.push(`sync.url ${why}`);
  }
  const type = raw.type ?? 'redirect';
  if (type !== 'redirect' && type !== 'pixel' && type !== 'iframe')
    problems.push('sync.type must be redirect, pixel or iframe');
  const hosts = raw.callbackHosts ?? [];
  if (!Array.isArray(hosts) || hosts.some((h) => typeof h !== 'string' || !HOST.test(h))) {
    problems.push('sync.callbackHosts must be an array of host names (lower case, optional :port)');
  }
  const hmacKey = raw.hmacKey ?? null;
  if (hmacKey !== null && (typeof hmacKey !== 'string' || hmacKey.length < MIN_KEY_CHARS)) {
    problems.push(`sync.hmacKey must be a string of at least ${MIN_KEY_CHARS} characters`);
  }
  return {
    url: url as string,
    type: type as SyncSpec['type'],
    callbackHosts: hosts as string[],
    hmacKey: hmacKey as string | null,
  };
}

/**
 * A partner from the config file or the admin API. Plain `keys` are hashed
 * here; `keyDigests` (sha256 hex) may be given instead, so a config file need
 * not hold secrets.
 */
export function parsePartner(raw: unknown, idFromPath?: string): Parsed<Partner> {
  const problems: string[] = [];
  if (!isObj(raw)) return { ok: false, problems: ['a partner must be a JSON object'] };
  unknownFields(raw, ['id', 'name', 'keys', 'keyDigests', 'segments', 'sync', 'disabled'], problems);
  const id = raw.id ?? idFromPath;
  if (typeof id !== 'string' || !PARTNER_ID.test(id))
    problems.push('id must be 1-40 of a-z 0-9 _ - (starting with a letter or digit)');
  else if (idFromPath !== undefined && id !== idFromPath)
    problems.push(`id "${id}" does not match the path's "${idFromPath}"`);
  const name = raw.name ?? id;
  if (typeof name !== 'string' || name.length < 1 || name.length > 200)
    problems.push('name must be a string of 1-200 characters');
  const digests: string[] = [];
  const keys = raw.keys ?? [];
  if (!Array.isArray(keys) || keys.some((k) => typeof k !== 'string' || k.length < MIN_KEY_CHARS || k.length > 512)) {
    problems.push(`keys must be an array of strings of ${MIN_KEY_CHARS}-512 characters`);
  } else {
    for (const k of keys as string[]) digests.push(keyDigest(k));
  }
  const given = raw.keyDigests ?? [];
  if (!Array.isArray(given) || given.some((d) => typeof d !== 'string' || !/^[0-9a-f]{64}$/.test(d))) {
    problems.push('keyDigests must be an array of sha256 hex digests (64 lower-case hex characters)');
  } else {
    for (const d of given as string[]) if (!digests.includes(d)) digests.push(d);
  }
  const segments = parseSegmentList(raw.segments ?? [], problems);
  const sync = parseSync(raw.sync, problems);
  const disabled = raw.disabled ?? false;
  if (typeof disabled !== 'boolean') problems.push('disabled must be true or false');
  if (problems.length) return { ok: false, problems };
  return {
    ok: true,
    value: {
      id: id as string,
      name: name as string,
      keyDigests: digests,
      segments: segments!,
      sync,
      disabled: disabled as boolean,
    },
  };
}

export function parseSegment(raw: unknown, idFromPath?: number): Parsed<SegmentDef> {
  const problems: string[] = [];
  if (!isObj(raw)) return { ok: false, problems: ['a segment must be a JSON object'] };
  unknownFields(raw, ['id', 'name', 'provider', 'segtax', 'dataType', 'ttl', 'cpm', 'partners'], problems);
  const id = raw.id ?? idFromPath;
  if (!u32(id)) problems.push('id must be an integer 0..4294967295');
  else if (idFromPath !== undefined && id !== idFromPath)
    problems.push(`id ${id as number} does not match the path's ${idFromPath}`);
  const name = raw.name;
  if (typeof name !== 'string' || name.length < 1 || name.length > 200)
    problems.push('name must be a string of 1-200 characters');
  const provider = raw.provider ?? 'segd';
  if (typeof provider !== 'string' || provider.length < 1 || provider.length > 100)
    problems.push('provider must be a string of 1-100 characters');
  const segtax = raw.segtax;
  if (!Number.isInteger(segtax) || (segtax as number) < 1 || (segtax as number) > 0x7fff_ffff)
    problems.push('segtax must be a positive integer (IAB segtax registry id)');
  const dataType = raw.dataType ?? 'first';
  if (dataType !== 'first' && dataType !== 'second' && dataType !== 'third')
    problems.push('dataType must be first, second or third');
  const ttl = raw.ttl ?? null;
  if (ttl !== null && (!Number.isInteger(ttl) || (ttl as number) < 1 || (ttl as number) > 0xffff_ffff))
    problems.push('ttl must be null or whole seconds ≥ 1');
  const cpm = raw.cpm ?? null;
  if (cpm !== null && (typeof cpm !== 'number' || !Number.isFinite(cpm) || cpm < 0))
    problems.push('cpm must be null or a number ≥ 0');
  const partners = raw.partners ?? [];
  if (
    partners !== '*' &&
    (!Array.isArray(partners) || partners.some((p) => typeof p !== 'string' || !PARTNER_ID.test(p)))
  ) {
    problems.push('partners must be "*" or an array of partner ids');
  }
  if (problems.length) return { ok: false, problems };
  return {
    ok: true,
    value: {
      id: id as number,
      name: name as string,
      provider: provider as string,
      segtax: segtax as number,
      dataType: dataType as DataType,
      ttl: ttl as number | null,
      cpm: cpm as number | null,
      partners: partners === '*' ? '*' : [...new Set(partners as string[])].sort(),
    },
  };
}

/** Header names a destination may not set: segd writes them itself. */
const RESERVED_HEADERS = [
  'authorization',
  'content-type',
  'content-length',
  'idempotency-key',
  'x-segd-signature',
  'ttd-auth',
  'host',
];
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$/;
const EID_SOURCE = /^[A-Za-z0-9._-]{1,100}$/;

const intIn = (v: unknown, lo: number, hi: number): v is number =>
  Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi;

function parseTtd(raw: unknown, problems: string[]): TtdSpec | null {
  if (!isObj(raw)) {
    problems.push('ttd must be an object: {"dataProviderId": …, "idField": …, "ttlMinutes": …}');
    return null;
  }
  unknownFields(raw, ['dataProviderId', 'idField', 'ttlMinutes'], problems);
  const { dataProviderId } = raw;
  if (typeof dataProviderId !== 'string' || dataProviderId.length < 1 || dataProviderId.length > 100)
    problems.push('ttd.dataProviderId must be a string of 1-100 characters');
  const idField = raw.idField ?? 'TDID';
  if (!(TTD_ID_FIELDS as readonly unknown[]).includes(idField))
    problems.push(`ttd.idField must be one of ${TTD_ID_FIELDS.join(', ')}`);
  // The Data API keeps data at most 180 days.
  const ttlMinutes = raw.ttlMinutes ?? 43_200;
  if (!intIn(ttlMinutes, 1, 259_200)) problems.push('ttd.ttlMinutes must be an integer 1..259200 (180 days)');
  return {
    dataProviderId: dataProviderId as string,
    idField: idField as TtdSpec['idField'],
    ttlMinutes: ttlMinutes as number,
  };
}

/**
 * A destination from the config file or the admin API. Whether its partner
 * exists and licenses its segments is checked where the registry is at hand
 * (admin.ts); this checks the record itself.
 */
export function parseDestination(raw: unknown, idFromPath?: string): Parsed<Destination> {
  const problems: string[] = [];
  if (!isObj(raw)) return { ok: false, problems: ['a destination must be a JSON object'] };
  unknownFields(
    raw,
    [
      'id',
      'partner',
      'type',
      'url',
      'segments',
      'idType',
      'maxUsers',
      'maxBytes',
      'maxDelayMs',
      'maxRps',
      'concurrency',
      'minIntervalMs',
      'ttd',
      'timeoutMs',
      'headers',
      'bearer',
      'hmacSecret',
      'disabled',
    ],
    problems,
  );
  const id = raw.id ?? idFromPath;
  if (typeof id !== 'string' || !PARTNER_ID.test(id))
    problems.push('id must be 1-40 of a-z 0-9 _ - (starting with a letter or digit)');
  else if (idFromPath !== undefined && id !== idFromPath)
    problems.push(`id "${id}" does not match the path's "${idFromPath}"`);
  if (typeof raw.partner !== 'string' || !PARTNER_ID.test(raw.partner)) problems.push('partner must be a partner id');
  const type = raw.type ?? 'webhook';
  if (type !== 'webhook' && type !== 'ttd' && type !== 'file') problems.push('type must be webhook, ttd or file');
  const file = type === 'file';
  const url = raw.url;
  let u: URL | null;
  try {
    u = typeof url === 'string' && url.length <= 2048 ? new URL(url) : null;
  } catch {
    u = null;
  }
  if (file) {
    if (!u || u.protocol !== 'file:' || u.host !== '' || u.search || u.hash)
      problems.push('url of a file destination must be a file: URL of a directory (file:///var/segd/out/dsp1)');
  } else if (!u || (u.protocol !== 'https:' && u.protocol !== 'http:') || u.username || u.password)
    problems.push('url must be an absolute http(s) URL of at most 2048 characters, without credentials');
  let ttd: TtdSpec | null = null;
  if (type === 'ttd') ttd = parseTtd(raw.ttd, problems);
  else if (raw.ttd !== undefined && raw.ttd !== null) problems.push('ttd is for type ttd only');
  const segments = parseSegmentList(raw.segments ?? '*', problems);
  const idType = raw.idType ?? 'uid';
  if (
    typeof idType !== 'string' ||
    !(
      idType === 'uid' ||
      idType === 'partner' ||
      idType === 'ifa' ||
      (idType.startsWith('eid:') && EID_SOURCE.test(idType.slice(4)))
    )
  )
    problems.push('idType must be uid, partner, ifa or eid:<source>');
  const num = (name: string, dflt: number, lo: number, hi: number): number => {
    const v = raw[name] ?? dflt;
    if (!intIn(v, lo, hi)) problems.push(`${name} must be an integer ${lo}..${hi}`);
    return v as number;
  };
  // A file holds many more users than a request, and is written at most once a minute by default.
  const maxUsers = file ? num('maxUsers', 100_000, 1, 1_000_000) : num('maxUsers', 500, 1, 10_000);
  const maxBytes = num('maxBytes', file ? 64 << 20 : 4 << 20, 1024, 64 << 20);
  const minIntervalMs = num('minIntervalMs', file ? 60_000 : 0, 0, 86_400_000);
  const maxDelayMs = num('maxDelayMs', file ? minIntervalMs : 1000, 0, 3_600_000);
  const maxRps = num('maxRps', 100, 1, 100_000);
  const concurrency = num('concurrency', 1, 1, 64);
  const timeoutMs = num('timeoutMs', 5000, 100, 120_000);
  const headers = raw.headers ?? {};
  if (
    !isObj(headers) ||
    Object.entries(headers).some(
      ([k, v]) =>
        !HEADER_NAME.test(k) ||
        RESERVED_HEADERS.includes(k.toLowerCase()) ||
        typeof v !== 'string' ||
        /[\r\n]/.test(v) ||
        v.length > 4096,
    )
  )
    problems.push(`headers must map header names to strings (not ${RESERVED_HEADERS.join(', ')})`);
  const secret = (name: string): string | null => {
    const v = raw[name] ?? null;
    if (v !== null && (typeof v !== 'string' || v.length < MIN_KEY_CHARS || v.length > 512 || /[\r\n]/.test(v)))
      problems.push(`${name} must be null or a string of ${MIN_KEY_CHARS}-512 characters`);
    return v as string | null;
  };
  const bearer = secret('bearer');
  const hmacSecret = secret('hmacSecret');
  if (file && (bearer !== null || hmacSecret !== null || (isObj(headers) && Object.keys(headers).length > 0)))
    problems.push('a file destination takes no headers, bearer or hmacSecret');
  const disabled = raw.disabled ?? false;
  if (typeof disabled !== 'boolean') problems.push('disabled must be true or false');
  if (problems.length) return { ok: false, problems };
  return {
    ok: true,
    value: {
      id: id as string,
      partner: raw.partner as string,
      type: type as Destination['type'],
      url: url as string,
      ttd,
      minIntervalMs,
      segments: segments!,
      idType: idType as DestinationIdType,
      maxUsers,
      maxBytes,
      maxDelayMs,
      maxRps,
      concurrency,
      timeoutMs,
      headers: headers as Record<string, string>,
      bearer,
      hmacSecret,
      disabled: disabled as boolean,
    },
  };
}
