// `segd insights <sizes|overlap|affinity|reach>` — the audience insights of a
// running node as terminal tables, from its /v1/insights routes: the node's
// licence rule applies to the key given, so a partner key sees only its
// licensed segments. The node is the one this config describes (its host and
// SEGD_PORT, its first admin key) unless --url and --key say otherwise.
import { loadConfig } from '../config/load.js';
import { parseCommand, intFlag, type Flags, type FlagSpec } from '../terminal/flags.js';
import { table } from '../terminal/table.js';

const COMMON: FlagSpec = {
  url: 'the node, e.g. http://127.0.0.1:8080 (default: SEGD_HOST and SEGD_PORT of this config)',
  key: 'admin or partner key (default: the first of SEGD_ADMIN_KEYS)',
  json: 'print the answer as JSON',
};

const SUBCOMMANDS: Record<string, { args: number; flags: FlagSpec; help: string }> = {
  sizes: { args: 1, flags: {}, help: 'A,B,…: each segment’s size and when its members last changed' },
  overlap: { args: 1, flags: {}, help: 'A,B[,C…]: users in both of each pair, and the Jaccard index' },
  affinity: {
    args: 1,
    flags: { limit: 'segments to list (default 20)', min: 'least overlap to list (default 100)' },
    help: 'A: the segments whose members over-index among A’s',
  },
  reach: {
    args: 0,
    flags: {
      all: 'ids the users are in, each',
      any: 'ids the users are in, at least one',
      none: 'ids they are in none of',
    },
    help: '--all A,B --any C,D --none E: the users an expression reaches',
  },
};

const int = (n: number) => n.toLocaleString('en');

function usageText(): string {
  return (
    'usage: segd insights <query> [flags]\n' +
    Object.entries(SUBCOMMANDS)
      .map(([k, v]) => `  ${k.padEnd(9)} ${v.help}`)
      .join('\n') +
    '\nflags: --url URL, --key KEY, --json; affinity: --limit N, --min M'
  );
}

function ids(raw: string | undefined, what: string): number[] {
  if (raw === undefined || raw.trim() === '') return [];
  return raw.split(',').map((s) => {
    const t = s.trim();
    if (!/^\d{1,10}$/.test(t) || Number(t) > 0xffff_ffff)
      throw new Error(`${what}: ${JSON.stringify(t)} is not a segment id`);
    return Number(t);
  });
}

/** The node's base URL and the key to send. */
function target(flags: Flags): { url: string; key: string } {
  const config = loadConfig();
  let url = typeof flags.url === 'string' ? flags.url.replace(/\/+$/, '') : '';
  if (url === '') {
    if (config.port === 0) throw new Error('SEGD_PORT is 0 (a port picked at start): pass --url');
    const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
    url = `http://${host.includes(':') ? `[${host}]` : host}:${config.port}`;
  }
  const key = typeof flags.key === 'string' ? flags.key : config.adminKeys[0];
  if (key === undefined || key === '') throw new Error('no key: pass --key (no SEGD_ADMIN_KEYS in this config)');
  return { url, key };
}

/** One request; a node that cannot be reached or refuses says why, in one line. */
async function call(url: string, key: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  let res: Response;
  try {
    res = await fetch(url + path, {
      method: body === undefined ? 'GET' : 'POST',
      headers: {
        Authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`cannot reach segd at ${url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, {
      cause: err,
    });
  }
  const text = await res.text();
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(`${url}${path}: HTTP ${res.status}, not JSON: ${text.slice(0, 200)}`);
  }
  if (!res.ok) {
    const e = json.error as { code?: string; message?: string } | undefined;
    throw new Error(`${url}${path}: HTTP ${res.status} ${e?.code ?? ''}: ${e?.message ?? text.slice(0, 200)}`);
  }
  return json;
}

export async function insightsCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const spec = sub === undefined ? undefined : SUBCOMMANDS[sub];
  if (spec === undefined) {
    const help = sub === undefined || sub === 'help' || sub === '--help';
    (help ? process.stdout : process.stderr).write(
      `${help ? '' : `insights: unknown query ${JSON.stringify(sub)}\n`}${usageText()}\n`,
    );
    return help ? 0 : 2;
  }
  const { flags, args } = parseCommand(`insights ${sub}`, rest, { ...spec.flags, ...COMMON }, spec.args);
  const { url, key } = target(flags);
  const out: unknown[] = [];
  const lines: string[] = [];
  if (sub === 'sizes') {
    const list = ids(args[0], 'sizes');
    if (list.length === 0) throw new Error('sizes: name at least one segment id');
    const rows: string[][] = [];
    for (const id of list) {
      const r = await call(url, key, `/v1/insights/segments/${id}`);
      out.push(r);
      rows.push([String(r.segment), int(r.size as number), (r.updatedAt as string | null) ?? '—']);
    }
    lines.push(...table(['segment', 'size', 'members changed'], rows, new Set([0, 1])));
  } else if (sub === 'overlap') {
    const list = ids(args[0], 'overlap');
    const r = await call(url, key, `/v1/insights/overlap?segments=${list.join(',')}`);
    out.push(r);
    const segs = r.segments as number[];
    const sizes = r.sizes as number[];
    const matrix = r.matrix as number[][];
    const jaccard = r.jaccard as number[][];
    const cols = new Set(segs.map((_, i) => i + 2).concat([0, 1]));
    lines.push('users in both (the diagonal: each size)');
    lines.push(
      ...table(
        ['segment', 'size', ...segs.map(String)],
        segs.map((s, i) => [String(s), int(sizes[i]!), ...matrix[i]!.map(int)]),
        cols,
      ),
    );
    lines.push('', 'jaccard (users in both / users in either)');
    lines.push(
      ...table(
        ['segment', 'size', ...segs.map(String)],
        segs.map((s, i) => [String(s), int(sizes[i]!), ...jaccard[i]!.map((j) => j.toFixed(4))]),
        cols,
      ),
    );
  } else if (sub === 'affinity') {
    const [id] = ids(args[0], 'affinity');
    if (id === undefined) throw new Error('affinity: name a segment id');
    const q = new URLSearchParams();
    if (flags.limit !== undefined) q.set('limit', String(intFlag(flags, 'limit', { min: 1, max: 1000 })));
    if (flags.min !== undefined) q.set('min', String(intFlag(flags, 'min', { min: 1, max: 0xffff_ffff })));
    const r = await call(url, key, `/v1/insights/segments/${id}/affinity${q.size > 0 ? `?${q}` : ''}`);
    out.push(r);
    const results = r.results as Array<{
      segment: number;
      size: number;
      overlap: number;
      share: number;
      index: number;
    }>;
    lines.push(`segment ${id}: ${int(r.size as number)} users of ${int(r.base as number)}`);
    lines.push(
      ...table(
        ['segment', 'size', 'overlap', 'share', 'index'],
        results.map((x) => [
          String(x.segment),
          int(x.size),
          int(x.overlap),
          (x.share * 100).toFixed(1) + '%',
          x.index.toFixed(0),
        ]),
        new Set([0, 1, 2, 3, 4]),
      ),
    );
    if (results.length === 0) lines.push('  (no segment overlaps it by at least --min users)');
  } else {
    const expr: Record<string, number[]> = {};
    for (const part of ['all', 'any', 'none'] as const) {
      const list = ids(flags[part] as string | undefined, `--${part}`);
      if (list.length > 0) expr[part] = list;
    }
    const r = await call(url, key, '/v1/insights/reach', expr);
    out.push({ ...expr, ...r });
    const what = Object.entries(expr).map(([k, v]) => `${k} ${v.join(',')}`);
    lines.push(
      ...table(
        ['expression', 'users'],
        [[what.length > 0 ? what.join(' · ') : 'every user', int(r.users as number)]],
        new Set([1]),
      ),
    );
  }
  process.stdout.write(
    flags.json ? JSON.stringify(out.length === 1 ? out[0] : out, null, 2) + '\n' : lines.join('\n') + '\n',
  );
  return 0;
}
