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

describe('freshness of hot answers', () => {
  // One worker and a tiny cache: it stands aside only while commits come closer than 8 lookups, so with
  // 12 lookups per change it is in use for every change below.
  let segd: Segd;
  beforeAll(async () => {
    segd = await startSegd({ env: { SEGD_INGEST_KEYS: KEY, SEGD_WORKERS: '1', SEGD_HOT_ANSWERS: '4' } });
  });
  afterAll(async () => {
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });

  it('a hot user (its answer kept by the worker) is answered anew after each pushed change', async () => {
    const hitsSoFar = async () => {
      const text = await (await fetch(`${segd.url}/metrics`)).text();
      return Number(/^segd_lookups_total\{result="hit"\} (\d+)/m.exec(text)?.[1]);
    };
    const hits0 = await hitsSoFar();
    const stale: string[] = [];
    for (let i = 0; i < 40; i++) {
      const r = await push(segd, `{"op":"add","uid":"hot-user","segments":[${100 + i}]}\n`);
      expect(r.status).toBe(200);
      await r.arrayBuffer();
      // Several lookups per change in every format: kept on the second, served from the third.
      for (let k = 0; k < 6; k++) {
        if (!(await segmentsOf(segd, 'uid=hot-user')).includes(100 + i)) stale.push(`json ${i}`);
        const kv = await (await fetch(`${segd.url}/v1/segments?uid=hot-user&format=kv`)).text();
        if (
          !kv
            .slice(kv.indexOf('=') + 1)
            .split(',')
            .includes(String(100 + i))
        )
          stale.push(`kv ${i}`);
      }
    }
    expect(stale).toEqual([]);
    // Every lookup counted as a hit, remembered answers too: 40 changes × 6 rounds × 2 formats.
    expect((await hitsSoFar()) - hits0).toBe(40 * 6 * 2);
  });
});
