// The docs are the contract ops read: every setting and every error code the
// code knows must be documented, nothing documented may be stale, and every
// link between the pages must lead somewhere that exists.
import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { SETTINGS } from '../src/config/schema.js';
import { ERRORS } from '../src/errors.js';
import { ROOT } from './helpers/server.js';

const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

describe('docs/configuration.md', () => {
  const doc = read('docs/configuration.md');
  it('documents every setting with its env var and file key', () => {
    for (const s of SETTINGS) expect(doc).toMatch(new RegExp(`\\| \`${s.env}\` \\| \`${s.key}\` \\|`));
  });
  it('documents no setting that does not exist', () => {
    const documented = [...doc.matchAll(/^\| `(SEGD_[A-Z_]+)` \| `/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual(SETTINGS.map((s) => s.env).sort());
  });
});

describe('docs/api.md', () => {
  it('documents every error code with its status, and no others', () => {
    const doc = read('docs/api.md');
    const documented = new Map([...doc.matchAll(/^\| (\d{3}) \| `([A-Z_]+)` \|/gm)].map((m) => [m[2], Number(m[1])]));
    expect(Object.fromEntries(documented)).toEqual(
      Object.fromEntries(Object.entries(ERRORS).map(([k, v]) => [k, v.status])),
    );
  });
});

/** README.md and every Markdown file under docs/, as paths from the repository root. */
function markdownFiles(): string[] {
  const out = ['README.md'];
  const walk = (dir: string) => {
    for (const name of readdirSync(join(ROOT, dir))) {
      const path = join(dir, name);
      if (statSync(join(ROOT, path)).isDirectory()) walk(path);
      else if (name.endsWith('.md')) out.push(path);
    }
  };
  walk('docs');
  return out;
}

/** The text a reader sees: fenced blocks and inline code hold no links. */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');
}

/** GitHub's anchor for each heading of a Markdown file (github-slugger's rules, duplicates numbered). */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of markdown.replace(/^```[\s\S]*?^```/gm, '').matchAll(/^#{1,6} +(.+?) *#* *$/gm)) {
    const text = (m[1] ?? '').replace(/\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/[`*_]{1,2}([^`*_]+)[`*_]{1,2}/g, '$1');
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

describe('links in README.md and docs/', () => {
  const files = markdownFiles();
  const links = files.flatMap((file) =>
    [...prose(read(file)).matchAll(/\]\(([^)\s]+)(?: "[^"]*")?\)/g)].map((m) => ({ file, target: m[1] ?? '' })),
  );

  it('finds the pages and their links', () => {
    expect(files).toContain('docs/api.md');
    expect(links.length).toBeGreaterThan(50);
  });

  it('stay inside the repository', () => {
    const outside = links.filter(({ file, target }) => {
      if (/^[a-z]+:/i.test(target)) return !/^https?:/i.test(target);
      if (target.startsWith('/')) return true;
      const path = resolve(ROOT, dirname(file), target.split('#')[0] ?? '');
      return path !== ROOT && !path.startsWith(ROOT + sep);
    });
    expect(outside).toEqual([]);
  });

  it('lead to files that exist, and to headings that exist', () => {
    const broken = links
      .filter(({ file, target }) => {
        if (/^[a-z]+:/i.test(target)) return false;
        const [path = '', anchor] = target.split('#');
        const to = path === '' ? join(ROOT, file) : resolve(ROOT, dirname(file), path);
        if (!existsSync(to)) return true;
        if (anchor === undefined) return false;
        return !to.endsWith('.md') || !anchors(readFileSync(to, 'utf8')).has(anchor);
      })
      .map(({ file, target }) => `${file} → ${target}`);
    expect(broken).toEqual([]);
  });

  it('reach every page under docs/ from the README', () => {
    const reached = new Set<string>();
    const visit = (file: string) => {
      if (reached.has(file)) return;
      reached.add(file);
      for (const { target } of links.filter((l) => l.file === file)) {
        if (/^[a-z]+:/i.test(target)) continue;
        const path = target.split('#')[0] ?? '';
        const to = relative(ROOT, resolve(ROOT, dirname(file), path === '' ? file : path));
        if (to.endsWith('.md') && files.includes(to)) visit(to);
      }
    };
    visit('README.md');
    expect(files.filter((f) => !reached.has(f))).toEqual([]);
  });
});
