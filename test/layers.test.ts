// The layer table in README.md ("Source map") is the rule for imports in src/:
// a module imports only from its own layer or lower, folders import each other
// in one direction only, a standalone folder imports only layer 0 and nothing
// imports it, and nothing in src/ reaches outside src/. This test reads the
// table (so the README is the one place the rule is written), scans every
// static, type-only and dynamic import in src/, and names each offence.
import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { ROOT } from './helpers/server.js';

/**
 * Imports the table does not allow yet, each with why it stands (from → to,
 * paths from the repository root). Remove an entry once its import is gone.
 */
const ALLOWED_EXCEPTIONS: ReadonlyArray<{ from: string; to: string; why: string }> = [];

const SRC = join(ROOT, 'src');
const STANDALONE = 'alone';

interface Row {
  layer: number | typeof STANDALONE;
  path: string;
}

/** The rows of the Source map table: `| layer | \`path\` | what it holds |`. */
function readTable(): Row[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Source map\n');
  if (start < 0) throw new Error('README.md has no "## Source map" section');
  const rest = readme.slice(start + 1);
  const next = rest.indexOf('\n## ', 1);
  const section = next < 0 ? rest : rest.slice(0, next);
  const rows: Row[] = [];
  for (const m of section.matchAll(/^\| *(\d+|alone) *\| *`([^`]+)` *\|/gm)) {
    rows.push({ layer: m[1] === STANDALONE ? STANDALONE : Number(m[1]), path: m[2]!.replace(/\/$/, '') });
  }
  return rows;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return name.endsWith('.ts') ? [p] : [];
  });
}

/** The top-level entry of src/ a path belongs to (`http` for src/http/routes/ws.ts), or null outside src/. */
function unitOf(file: string): string | null {
  const rel = relative(SRC, file);
  if (rel.startsWith('..') || rel === '') return null;
  return rel.split(sep)[0]!;
}

interface Edge {
  from: string;
  to: string;
  line: number;
}

/** Every relative import of src/ (static, `export … from`, type-only, `import()`), resolved to a .ts path. */
function importsOf(file: string): Edge[] {
  const text = readFileSync(file, 'utf8');
  return ts
    .preProcessFile(text, true, true)
    .importedFiles.filter((f) => f.fileName.startsWith('.'))
    .map((f) => ({
      from: file,
      to: resolve(dirname(file), f.fileName.replace(/\.js$/, '.ts')),
      line: text.slice(0, f.pos).split('\n').length,
    }));
}

const repo = (p: string) => relative(ROOT, p).split(sep).join('/');
const excepted = (e: Edge) => ALLOWED_EXCEPTIONS.some((x) => x.from === repo(e.from) && x.to === repo(e.to));
const describeEdge = (e: Edge) => `${repo(e.from)}:${e.line} → ${repo(e.to)}`;

/** Folder groups that import each other (strongly connected, more than one folder). */
function cycles(graph: Map<string, Set<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const out: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (stack.includes(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const group: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        group.push(w);
      } while (w !== v);
      if (group.length > 1) out.push(group.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

/** One shortest cycle inside a group of folders, as a list of folders ending where it starts. */
function shortestCycle(graph: Map<string, Set<string>>, group: string[]): string[] {
  const start = group[0]!;
  const cameFrom = new Map<string, string>();
  const queue = [start];
  while (queue.length) {
    const v = queue.shift()!;
    for (const w of graph.get(v) ?? []) {
      if (w === start) {
        const path = [start];
        for (let u = v; u !== start; u = cameFrom.get(u)!) path.unshift(u);
        return [start, ...path];
      }
      if (group.includes(w) && !cameFrom.has(w)) {
        cameFrom.set(w, v);
        queue.push(w);
      }
    }
  }
  return group;
}

describe('layers (README "Source map")', () => {
  const rows = readTable();
  const layerOf = new Map(rows.map((r) => [r.path, r.layer]));
  const files = sourceFiles(SRC);
  const edges = files.flatMap(importsOf);

  it('lists every folder and file at the top of src/', () => {
    const units = [...new Set(files.map((f) => unitOf(f)!))].sort();
    expect(rows.length).toBeGreaterThan(0);
    expect(units.filter((u) => !layerOf.has(u))).toEqual([]);
  });

  it('lists its exceptions only while they are still needed', () => {
    const stale = ALLOWED_EXCEPTIONS.filter((x) => !edges.some((e) => x.from === repo(e.from) && x.to === repo(e.to)));
    expect(stale.map((x) => `${x.from} → ${x.to}`)).toEqual([]);
  });

  it('imports nothing from outside src/', () => {
    const outside = edges.filter((e) => unitOf(e.to) === null && !excepted(e));
    expect(outside.map(describeEdge)).toEqual([]);
  });

  it('imports only from the same layer or lower', () => {
    const offences: string[] = [];
    for (const e of edges) {
      const a = unitOf(e.from)!;
      const b = unitOf(e.to);
      if (b === null || a === b || excepted(e)) continue;
      const la = layerOf.get(a);
      const lb = layerOf.get(b);
      if (la === undefined || lb === undefined) continue; // reported by the first test
      const ok = la === STANDALONE ? lb === 0 : lb !== STANDALONE && lb <= la;
      if (!ok) offences.push(`${describeEdge(e)} (${a} is layer ${la}, ${b} is layer ${lb})`);
    }
    expect(offences).toEqual([]);
  });

  it('has no cycles between folders', () => {
    const graph = new Map<string, Set<string>>();
    const example = new Map<string, Edge>();
    for (const e of edges) {
      const a = unitOf(e.from)!;
      const b = unitOf(e.to);
      if (b === null || a === b || excepted(e)) continue;
      if (!graph.has(a)) graph.set(a, new Set());
      graph.get(a)!.add(b);
      if (!example.has(`${a}>${b}`)) example.set(`${a}>${b}`, e);
    }
    const found = cycles(graph).map((group) => {
      const path = shortestCycle(graph, group);
      return path
        .slice(0, -1)
        .map((a, i) => describeEdge(example.get(`${a}>${path[i + 1]}`)!))
        .join(', then ');
    });
    expect(found).toEqual([]);
  });
});
