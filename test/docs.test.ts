// The README is the contract ops read: every setting and every error code the
// code knows must be documented there, and nothing documented may be stale.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SETTINGS } from '../src/config/schema.js';
import { ERRORS } from '../src/errors.js';
import { ROOT } from './helpers/server.js';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

describe('README', () => {
  it('documents every setting with its env var and file key', () => {
    for (const s of SETTINGS) expect(readme).toMatch(new RegExp(`\\| \`${s.env}\` \\| \`${s.key}\` \\|`));
  });
  it('documents no setting that does not exist', () => {
    const documented = [...readme.matchAll(/^\| `(SEGD_[A-Z_]+)` \| `/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual(SETTINGS.map((s) => s.env).sort());
  });
  it('documents every error code with its status, and no others', () => {
    const documented = new Map([...readme.matchAll(/^\| (\d{3}) \| `([A-Z_]+)` \|/gm)].map((m) => [m[2], Number(m[1])]));
    expect(Object.fromEntries(documented)).toEqual(Object.fromEntries(Object.entries(ERRORS).map(([k, v]) => [k, v.status])));
  });
});
