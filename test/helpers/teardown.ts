// A vitest setup file (vitest.config.ts): after each test file, pass or fail,
// whatever process its tests started and did not stop is stopped, and named.
import { afterAll } from 'vitest';
import { stopAll } from './procs.js';

afterAll(async () => {
  const left = await stopAll();
  if (left.length) console.warn(`stopped processes the tests left running: ${left.join(', ')}`);
}, 30_000);
