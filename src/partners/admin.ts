// Changes to partners, the taxonomy and destinations, made on the writer's thread (the
// supervisor's main thread) from the admin API and the config file. Each
// change is one synchronous LMDB transaction; callers tell the workers to
// reload their Registry afterwards.
import { readFileSync } from 'node:fs';
import type { Store } from '../store/env.js';
import { ConfigError } from '../config/load.js';
import type { Destination, Partner, SegmentDef } from './types.js';
import { parseDestination, parsePartner, parseSegment } from './validate.js';

export type RegistryOp =
  | { kind: 'putPartner'; id: string; body: unknown }
  | { kind: 'deletePartner'; id: string }
  | { kind: 'putSegment'; id: number; body: unknown }
  | { kind: 'deleteSegment'; id: number }
  | { kind: 'putDestination'; id: string; body: unknown }
  | { kind: 'deleteDestination'; id: string };

export type RegistryResult =
  | { ok: true; created: boolean; value: object | null }
  | {
      ok: false;
      code:
        | 'BAD_PARTNER'
        | 'BAD_SEGMENT_DEF'
        | 'BAD_DESTINATION'
        | 'NO_SUCH_PARTNER'
        | 'NO_SUCH_SEGMENT'
        | 'NO_SUCH_DESTINATION';
      problems: string[];
    };

export function applyRegistryOp(store: Store, op: RegistryOp): RegistryResult {
  /** Writes one record; true when it is new. */
  const upsert = <K extends string | number>(
    db: { doesExist(k: K): boolean; putSync(k: K, v: unknown): void },
    key: K,
    value: unknown,
  ) =>
    store.env.transactionSync(() => {
      const had = db.doesExist(key);
      db.putSync(key, value);
      return !had;
    });
  switch (op.kind) {
    case 'putPartner': {
      const p = parsePartner(op.body, op.id);
      if (!p.ok) return { ok: false, code: 'BAD_PARTNER', problems: p.problems };
      return { ok: true, created: upsert(store.partners, op.id, p.value), value: publicPartner(p.value) };
    }
    case 'deletePartner': {
      const gone = store.env.transactionSync(() => store.partners.removeSync(op.id));
      return gone
        ? { ok: true, created: false, value: null }
        : { ok: false, code: 'NO_SUCH_PARTNER', problems: [op.id] };
    }
    case 'putSegment': {
      const s = parseSegment(op.body, op.id);
      if (!s.ok) return { ok: false, code: 'BAD_SEGMENT_DEF', problems: s.problems };
      return { ok: true, created: upsert(store.segments, op.id, s.value), value: s.value };
    }
    case 'deleteSegment': {
      const gone = store.env.transactionSync(() => store.segments.removeSync(op.id));
      return gone
        ? { ok: true, created: false, value: null }
        : { ok: false, code: 'NO_SUCH_SEGMENT', problems: [String(op.id)] };
    }
    case 'putDestination': {
      const d = parseDestination(op.body, op.id);
      if (!d.ok) return { ok: false, code: 'BAD_DESTINATION', problems: d.problems };
      if (!store.partners.doesExist(d.value.partner))
        return { ok: false, code: 'BAD_DESTINATION', problems: [`no partner "${d.value.partner}"`] };
      return { ok: true, created: upsert(store.destinations, op.id, d.value), value: publicDestination(d.value) };
    }
    case 'deleteDestination': {
      // Its undelivered changes and dead letters go with it: nothing may be sent for a destination that is gone.
      const gone = store.env.transactionSync(() => {
        if (!store.destinations.removeSync(op.id)) return false;
        for (const db of [store.outbox, store.outboundDead])
          for (const key of db.getKeys({ start: [op.id, 0], end: [op.id, Number.MAX_SAFE_INTEGER], snapshot: false }))
            db.removeSync(key);
        store.outbound.removeSync(op.id);
        return true;
      });
      return gone
        ? { ok: true, created: false, value: null }
        : { ok: false, code: 'NO_SUCH_DESTINATION', problems: [op.id] };
    }
  }
}

/** A destination as the admin API shows it: secrets hidden. */
export function publicDestination(d: Destination): object {
  return { ...d, bearer: d.bearer ? '(set)' : null, hmacSecret: d.hmacSecret ? '(set)' : null };
}

/**
 * The config file's `partners`, `segments` and `destinations`, written at start-up: the file
 * wins for the ids it lists; records made through the admin API stay.
 */
export function upsertFromConfig(store: Store, seed: RegistrySeed): void {
  store.env.transactionSync(() => {
    for (const p of seed.partners) store.partners.putSync(p.id, p);
    for (const s of seed.segments) store.segments.putSync(s.id, s);
    for (const d of seed.destinations) store.destinations.putSync(d.id, d);
  });
}

export interface RegistrySeed {
  partners: Partner[];
  segments: SegmentDef[];
  destinations: Destination[];
}

/** Checks the config file's registry sections; every problem is named with its place. */
function parseRegistrySeed(file: Record<string, unknown>, where: string): { seed: RegistrySeed; problems: string[] } {
  const problems: string[] = [];
  const seed: RegistrySeed = { partners: [], segments: [], destinations: [] };
  const section = <T>(
    name: 'partners' | 'segments' | 'destinations',
    parse: (raw: unknown) => { ok: true; value: T } | { ok: false; problems: string[] },
    out: T[],
    idOf: (t: T) => string | number,
  ) => {
    const raw = file[name];
    if (raw === undefined) return;
    if (!Array.isArray(raw)) {
      problems.push(`${where}: "${name}" must be an array`);
      return;
    }
    const seen = new Set<string | number>();
    raw.forEach((r, i) => {
      const p = parse(r);
      if (!p.ok) for (const why of p.problems) problems.push(`${where}: ${name}[${i}]: ${why}`);
      else if (seen.has(idOf(p.value)))
        problems.push(`${where}: ${name}[${i}]: id ${JSON.stringify(idOf(p.value))} is listed twice`);
      else {
        seen.add(idOf(p.value));
        out.push(p.value);
      }
    });
  };
  section(
    'partners',
    (r) => parsePartner(r),
    seed.partners,
    (p) => p.id,
  );
  section(
    'segments',
    (r) => parseSegment(r),
    seed.segments,
    (s) => s.id,
  );
  section(
    'destinations',
    (r) => parseDestination(r),
    seed.destinations,
    (d) => d.id,
  );
  for (const d of seed.destinations)
    if (!seed.partners.some((p) => p.id === d.partner))
      problems.push(`${where}: destination "${d.id}": partner "${d.partner}" is not in the file's partners`);
  return { seed, problems };
}

/** The registry sections of the JSON config file at `path` (none when no file is configured). */
export function readRegistrySeed(path: string | undefined): RegistrySeed {
  if (!path) return { partners: [], segments: [], destinations: [] };
  let file: unknown;
  try {
    file = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError([`config file ${path}: ${(err as Error).message}`]);
  }
  if (file === null || typeof file !== 'object' || Array.isArray(file))
    return { partners: [], segments: [], destinations: [] };
  const { seed, problems } = parseRegistrySeed(file as Record<string, unknown>, `config file ${path}`);
  if (problems.length) throw new ConfigError(problems);
  return seed;
}

/** A partner as the admin API shows it: key digests shortened, the HMAC secret hidden. */
export function publicPartner(p: Partner): object {
  return {
    ...p,
    keyDigests: p.keyDigests.map((d) => d.slice(0, 16)),
    sync: p.sync ? { ...p.sync, hmacKey: p.sync.hmacKey ? '(set)' : null } : null,
  };
}
