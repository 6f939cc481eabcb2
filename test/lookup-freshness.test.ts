// Read your acknowledged writes: once segd has answered a push, the very next
// lookup on any worker finds it. (A worker's LMDB read snapshot used to live
// until a setTimeout(0) after it began, so lookups inside that millisecond
// answered from before a commit the caller had already seen acknowledged.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSegd, stopReport, CLEAN_STOP, type Segd } from './helpers/server.js';

const KEY = 'fresh-ingest-key-0123456789';
const push = (segd: Segd, body: string) =>
  fetch(`${segd.url}/v1/ingest`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-ndjson', Authorization: `Bearer ${KEY}` },
    body,
  });
const segmentsOf = async (segd: Segd, q: string) =>
  ((await (await fetch(`${segd.url}/v1/segments?${q}`)).json()) as { segments: number[] }).segments;

describe('freshness', () => {
  let segd: Segd;
  beforeAll(async () => {
    segd = await startSegd({ env: { SEGD_INGEST_KEYS: KEY, SEGD_WORKERS: '2' } });
  });
  afterAll(async () => {
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });

  it('a pushed user, and an id matched to it, are found by the first lookup after the ack', async () => {
    const missed: string[] = [];
    for (let i = 0; i < 300; i++) {
      const r = await push(
        segd,
        `{"op":"add","uid":"fresh-${i}","segments":[7]}\n{"op":"match","ifa":"00000000-0000-4000-8000-${String(i).padStart(12, '0')}","uid":"fresh-${i}"}\n`,
      );
      expect(r.status).toBe(200);
      await r.arrayBuffer();
      // Two lookups, so both workers (SO_REUSEPORT spreads connections) are likely asked.
      for (const q of [`uid=fresh-${i}`, `ifa=00000000-0000-4000-8000-${String(i).padStart(12, '0')}`]) {
        if (!(await segmentsOf(segd, q)).includes(7)) missed.push(q);
      }
    }
    expect(missed).toEqual([]);
  });
});
