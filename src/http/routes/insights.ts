// /v1/insights — segment sizes, overlap, affinity and reach, from the insights
// index (src/insights/). An admin key sees every segment; a partner key only
// the segments licensed to it (lookup/licences.ts): asking about any other is
// 403, and affinity names only licensed segments, so a partner never learns a
// count for a segment it cannot see. The worker checks the request and the
// licence; the query itself runs on the writer's thread (an RPC), never on
// this loop.
import { performance } from 'node:perf_hooks';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { AppDeps } from '../deps.js';
import type { Licence } from '../../lookup/licences.js';
import type { InsightsQuery } from '../../insights/insights.js';
import type { Affinity, Overlap } from '../../insights/queries.js';
import { insightsPage } from '../../insights/page.js';
import { BearerKeys } from '../auth.js';
import { readBody } from '../body.js';
import { sendError, sendBody, JSON_TYPE } from '../respond.js';
import { pending } from '../pending.js';
import { parseJson } from '../../codec/json.js';

/** Most segments one overlap asks about (the matrix grows with the square). */
export const MAX_OVERLAP_SEGMENTS = 50;
/** Most segment ids in one reach expression, all lists together. */
export const MAX_REACH_TERMS = 100;
/** Largest reach body: 100 ids fit many times over. */
export const MAX_REACH_BYTES = 16 * 1024;
export const DEFAULT_AFFINITY_LIMIT = 20;
export const MAX_AFFINITY_LIMIT = 1000;
/** Smallest overlap affinity reports by default: small counts are not sold as insight. */
export const DEFAULT_AFFINITY_MIN = 100;
const HTML_TYPE = Buffer.from('text/html; charset=utf-8');

type Handler = (res: HttpResponse, req: HttpRequest) => void;

export interface InsightsRoutes {
  /** GET /insights: the page (admin key). */
  page: Handler;
  size: Handler;
  overlap: Handler;
  affinity: Handler;
  reach: Handler;
}

/** A segment id 0..4294967295 written as plain digits, or NaN. */
function segmentId(raw: string): number {
  return /^\d{1,10}$/.test(raw) && Number(raw) <= 0xffff_ffff ? Number(raw) : NaN;
}

/** A whole number in [min, max] written as plain digits; `def` when absent; NaN otherwise. */
function intParam(raw: string, def: number, min: number, max: number): number {
  if (raw === '') return def;
  const n = /^\d{1,10}$/.test(raw) ? Number(raw) : NaN;
  return n >= min && n <= max ? n : NaN;
}

/** The segment ids of a reach body, or why the body is not one. */
function reachExpression(body: unknown): { all: number[]; any: number[]; none: number[] } | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'the body must be a JSON object';
  const out = { all: [] as number[], any: [] as number[], none: [] as number[] };
  let terms = 0;
  for (const [k, v] of Object.entries(body)) {
    if (k !== 'all' && k !== 'any' && k !== 'none') return `unknown field "${k.slice(0, 40)}" (use all, any, none)`;
    if (!Array.isArray(v)) return `"${k}" must be an array of segment ids`;
    terms += v.length;
    if (terms > MAX_REACH_TERMS) return `at most ${MAX_REACH_TERMS} segment ids in all`;
    for (const id of v) {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 0xffff_ffff)
        return `"${k}" must hold segment ids 0..4294967295`;
      out[k].push(id);
    }
  }
  return out;
}

export function insightsRoutes(deps: AppDeps): InsightsRoutes {
  const m = deps.metrics.route('insights');
  const adminKeys = new BearerKeys(deps.config.adminKeys);

  /**
   * The caller's licence (an admin or partner key; anonymous callers are not
   * served), or null with 401 sent. `unreadBody`: close after the answer.
   */
  const begin = (res: HttpResponse, req: HttpRequest, unreadBody = false) => {
    const t0 = performance.now();
    const done = (st: number) => m.observe(st, (performance.now() - t0) / 1000);
    const auth = req.getHeader('authorization');
    const licence = auth === '' ? null : deps.callers.licence(auth);
    if (licence === null) {
      done(sendError(res, 'UNAUTHORIZED', undefined, unreadBody));
      return null;
    }
    return { licence, done };
  };

  /** The first id the licence does not cover, or null. */
  const unlicensed = (licence: Licence, ids: readonly number[]): number | null => {
    for (const id of ids) if (!licence.has(id)) return id;
    return null;
  };

  /** Runs `q` on the writer's thread and answers with its result. */
  const ask = (res: HttpResponse, done: (st: number) => void, q: InsightsQuery, p = pending(res, deps.inflight)) => {
    deps.insights(q).then(
      (answer) =>
        p.settle(() =>
          done(
            answer === null ? sendError(res, 'INSIGHTS_OFF') : sendBody(res, 200, JSON_TYPE, JSON.stringify(answer)),
          ),
        ),
      (err: unknown) => {
        deps.log.error({ err, kind: q.kind }, 'insights query failed');
        p.settle(() => done(sendError(res, 'INTERNAL', 'the query failed')));
      },
    );
  };

  /** `segments=` as 2..MAX_OVERLAP_SEGMENTS distinct ids, or null with the error sent. */
  const segmentList = (res: HttpResponse, raw: string, done: (st: number) => void): number[] | null => {
    const parts = raw === '' ? [] : raw.split(',', MAX_OVERLAP_SEGMENTS + 1);
    if (parts.length < 2 || parts.length > MAX_OVERLAP_SEGMENTS) {
      done(
        sendError(
          res,
          'BAD_INSIGHTS_QUERY',
          `segments= takes 2 to ${MAX_OVERLAP_SEGMENTS} comma-separated segment ids`,
        ),
      );
      return null;
    }
    const segments = parts.map(segmentId);
    if (segments.some(Number.isNaN)) {
      done(sendError(res, 'BAD_SEGMENT'));
      return null;
    }
    if (new Set(segments).size !== segments.length) {
      done(sendError(res, 'BAD_INSIGHTS_QUERY', 'a segment is named twice'));
      return null;
    }
    return segments;
  };

  const forbidden = (res: HttpResponse, done: (st: number) => void, id: number, unreadBody = false) =>
    done(sendError(res, 'FORBIDDEN_SEGMENT', String(id), unreadBody));

  return {
    size: (res, req) => {
      const c = begin(res, req);
      if (!c) return;
      const segment = segmentId(req.getParameter(0));
      if (Number.isNaN(segment)) return c.done(sendError(res, 'BAD_SEGMENT'));
      if (!c.licence.has(segment)) return forbidden(res, c.done, segment);
      ask(res, c.done, { kind: 'size', segment });
    },

    page: (res, req) => {
      const t0 = performance.now();
      const done = (st: number) => m.observe(st, (performance.now() - t0) / 1000);
      if (!adminKeys.allows(req.getHeader('authorization'))) return done(sendError(res, 'UNAUTHORIZED'));
      const segments = segmentList(res, req.getQuery('segments') ?? '', done);
      if (segments === null) return;
      const rawA = req.getQuery('affinity') ?? '';
      const of = rawA === '' ? segments[0]! : segmentId(rawA);
      if (Number.isNaN(of)) return done(sendError(res, 'BAD_SEGMENT'));
      const min = intParam(req.getQuery('min') ?? '', DEFAULT_AFFINITY_MIN, 1, 0xffff_ffff);
      if (Number.isNaN(min)) return done(sendError(res, 'BAD_INSIGHTS_QUERY', 'min must be a whole number ≥ 1'));
      const p = pending(res, deps.inflight);
      Promise.all([
        deps.insights({ kind: 'overlap', segments }),
        deps.insights({ kind: 'affinity', segment: of, limit: DEFAULT_AFFINITY_LIMIT, min, licensed: null }),
      ]).then(
        ([o, a]) =>
          p.settle(() => {
            if (o === null || a === null) return done(sendError(res, 'INSIGHTS_OFF'));
            const names = new Map<number, string>();
            for (const id of [...segments, ...(a as Affinity).results.map((r) => r.segment)]) {
              const name = deps.registry.segment(id)?.name;
              if (name !== undefined) names.set(id, name);
            }
            res.writeHeader('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'");
            res.writeHeader('X-Content-Type-Options', 'nosniff');
            done(sendBody(res, 200, HTML_TYPE, insightsPage(o as Overlap, a as Affinity, names)));
          }),
        (err: unknown) => {
          deps.log.error({ err }, 'insights page failed');
          p.settle(() => done(sendError(res, 'INTERNAL', 'the page failed')));
        },
      );
    },

    overlap: (res, req) => {
      const c = begin(res, req);
      if (!c) return;
      const segments = segmentList(res, req.getQuery('segments') ?? '', c.done);
      if (segments === null) return;
      const refused = unlicensed(c.licence, segments);
      if (refused !== null) return forbidden(res, c.done, refused);
      ask(res, c.done, { kind: 'overlap', segments });
    },

    affinity: (res, req) => {
      const c = begin(res, req);
      if (!c) return;
      const segment = segmentId(req.getParameter(0));
      if (Number.isNaN(segment)) return c.done(sendError(res, 'BAD_SEGMENT'));
      const limit = intParam(req.getQuery('limit') ?? '', DEFAULT_AFFINITY_LIMIT, 1, MAX_AFFINITY_LIMIT);
      if (Number.isNaN(limit))
        return c.done(sendError(res, 'BAD_INSIGHTS_QUERY', `limit must be a whole number 1..${MAX_AFFINITY_LIMIT}`));
      const min = intParam(req.getQuery('min') ?? '', DEFAULT_AFFINITY_MIN, 1, 0xffff_ffff);
      if (Number.isNaN(min)) return c.done(sendError(res, 'BAD_INSIGHTS_QUERY', 'min must be a whole number ≥ 1'));
      if (!c.licence.has(segment)) return forbidden(res, c.done, segment);
      const licensed = c.licence.all ? null : Array.from(c.licence.ids);
      ask(res, c.done, { kind: 'affinity', segment, limit, min, licensed });
    },

    reach: (res, req) => {
      const c = begin(res, req, true);
      if (!c) return;
      if (!req.getHeader('content-type').startsWith('application/json'))
        return c.done(sendError(res, 'UNSUPPORTED_MEDIA_TYPE', 'a reach expression is application/json', true));
      const p = pending(res, deps.inflight);
      readBody(res, req.getHeader('content-length'), MAX_REACH_BYTES, (r) => {
        if (!r.ok) return p.settle(() => c.done(sendError(res, 'BODY_TOO_LARGE', undefined, true)));
        let body: unknown;
        try {
          body = parseJson(r.body);
        } catch (err) {
          return p.settle(() => c.done(sendError(res, 'BAD_JSON', (err as Error).message.slice(0, 200))));
        }
        const expr = reachExpression(body);
        if (typeof expr === 'string') return p.settle(() => c.done(sendError(res, 'BAD_INSIGHTS_QUERY', expr)));
        const refused = unlicensed(c.licence, [...expr.all, ...expr.any, ...expr.none]);
        if (refused !== null) return p.settle(() => forbidden(res, c.done, refused));
        ask(res, c.done, { kind: 'reach', expr }, p);
      });
    },
  };
}
