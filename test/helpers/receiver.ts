// A real HTTP receiver for outbound deliveries (node:http on an ephemeral
// port): records every request as it arrives and answers as the test says —
// a status (with headers and body), hang (never answer), or drop (cut the
// connection), at once or once a promise the test holds settles.
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';

export interface Received {
  /** The Idempotency-Key. */
  key: string;
  body: DeliveryBody;
  raw: Buffer;
  headers: IncomingHttpHeaders;
  /** How it was answered. */
  answered: Answer | null;
}

export interface DeliveryBody {
  version: number;
  destination: string;
  batch: string;
  resync: { id: number; done: boolean } | null;
  users: { id: string; seq: number; at: number; segments: { id: number; status: 0 | 1 }[] }[];
}

export type Answer = { status: number; headers?: Record<string, string>; body?: string } | 'hang' | 'drop';

export interface Receiver {
  url: string;
  received: Received[];
  /** How the next requests are answered (`n`: this request's index); a promise holds the answer back until it settles. */
  answer: (r: Received, n: number) => Answer | Promise<Answer>;
  /** Resolves once `pred` holds over what was received (polled on each arrival). */
  until(pred: (got: Received[]) => boolean, ms?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startReceiver(answer: Receiver['answer'] = () => ({ status: 200 })): Promise<Receiver> {
  const waiters = new Set<() => void>();
  const r: Receiver = {
    url: '',
    received: [],
    answer,
    until(pred, ms = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!pred(r.received)) return;
          waiters.delete(check);
          clearTimeout(t);
          resolve();
        };
        const t = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`receiver: condition not met in ${ms} ms (${r.received.length} requests received)`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((res) => server.close(() => res()));
    },
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const got: Received = {
        key: String(req.headers['idempotency-key'] ?? ''),
        body: JSON.parse(raw.toString('utf8')) as DeliveryBody,
        raw,
        headers: req.headers,
        answered: null,
      };
      const n = r.received.length;
      r.received.push(got);
      const reply = (a: Answer) => {
        got.answered = a;
        for (const w of [...waiters]) w();
        if (a === 'hang') return;
        if (a === 'drop') return req.socket.destroy();
        res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers });
        res.end(a.body ?? '{}');
      };
      const a = r.answer(got, n);
      if (a instanceof Promise) {
        // Seen (waiters told) before it is answered.
        for (const w of [...waiters]) w();
        void a.then(reply);
      } else reply(a);
    });
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return r;
}

/** The requests answered 2xx: what the sender may take as delivered. */
export function accepted(got: readonly Received[]): Received[] {
  return got.filter((g) => typeof g.answered === 'object' && g.answered !== null && g.answered.status < 300);
}

/** Each batch once, by Idempotency-Key, in order of first arrival: what a deduplicating receiver applies. */
export function deduplicated(got: readonly Received[]): Received[] {
  const seen = new Set<string>();
  return got.filter((g) => !seen.has(g.key) && seen.add(g.key));
}

/** Per user id, the (segment, status) pairs in the order they arrived. */
export function historyOf(got: readonly Received[]): Map<string, [number, 0 | 1][]> {
  const out = new Map<string, [number, 0 | 1][]>();
  for (const g of got)
    for (const u of g.body.users) {
      let h = out.get(u.id);
      if (!h) out.set(u.id, (h = []));
      for (const s of u.segments) h.push([s.id, s.status]);
    }
  return out;
}

/** Every segment id that arrived, whatever its user or status. */
export function segmentIdsOf(got: readonly Received[]): Set<number> {
  return new Set(got.flatMap((g) => g.body.users.flatMap((u) => u.segments.map((s) => s.id))));
}

/**
 * A feed that flips segments: each round, user i joins or leaves segment
 * `segs[(round + i) % segs.length]`, and `want` records the (segment,
 * status) history each user's destination must receive, in order — the
 * model `historyOf` what arrived is compared with.
 */
export class FlipFeed {
  readonly want = new Map<string, [number, 0 | 1][]>();
  private readonly held = new Map<string, Set<number>>();
  private round = 0;

  constructor(private readonly segs: readonly number[]) {}

  /** The next round's records for `users`, one per user. */
  next(users: readonly string[]): { op: 'add' | 'remove'; uid: string; segments: number[] }[] {
    const recs = users.map((uid, i) => {
      const seg = this.segs[(this.round + i) % this.segs.length]!;
      const h = this.held.get(uid) ?? new Set<number>();
      this.held.set(uid, h);
      const join = !h.has(seg);
      if (join) h.add(seg);
      else h.delete(seg);
      this.want.set(uid, [...(this.want.get(uid) ?? []), [seg, join ? 1 : 0]]);
      return { op: join ? ('add' as const) : ('remove' as const), uid, segments: [seg] };
    });
    this.round++;
    return recs;
  }

  /** How many changes the model holds. */
  get changes(): number {
    return [...this.want.values()].reduce((n, h) => n + h.length, 0);
  }
}

/**
 * A segd config file (in `dir`) with one partner, `dsp`, licensed `segs`,
 * those segments, the given destinations and the keys: the set-up of the
 * outbound tests. Returns its path, for SEGD_CONFIG.
 */
export function writeDspConfig(
  dir: string,
  keys: { admin: string; ingest: string },
  segs: readonly number[],
  destinations: readonly Record<string, unknown>[],
): string {
  const path = join(dir, 'segd.json');
  writeFileSync(
    path,
    JSON.stringify({
      adminKeys: [keys.admin],
      ingestKeys: [keys.ingest],
      partners: [{ id: 'dsp', segments: segs }],
      segments: segs.map((id) => ({ id, name: `s${id}`, segtax: 600 })),
      destinations,
    }),
  );
  return path;
}
