// WebSocket lookup load: C connections, each keeping W frames `{id, uid}` in
// flight, for D seconds; prints one JSON line with answers/s and per-frame
// latency in µs (hdr-histogram). Used by bench:activation against segd's
// /v1/ws and the hello-world's echo (same client, same frames).
//
//   node dist/bench/ws-load.js <ws url> <uids file> [--key K] [--connections 8] [--window 64] [--seconds 5]
import WebSocket from 'ws';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pack } from 'msgpackr';
import hdr from 'hdr-histogram-js';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { key: { type: 'string' }, connections: { type: 'string', default: '8' }, window: { type: 'string', default: '64' }, seconds: { type: 'string', default: '5' }, warmup: { type: 'string', default: '1' } },
});
const [url, uidsFile] = positionals;
if (!url || !uidsFile) {
  process.stderr.write('usage: ws-load <ws url> <uids file> [--key K] [--connections N] [--window W] [--seconds S]\n');
  process.exit(2);
}
const uids = readFileSync(uidsFile, 'utf8').split('\n').filter(Boolean);
// Frames encoded up front: the generator's cost is the same for every server.
const frames = uids.map((uid, i) => pack({ id: i, uid }));
const C = Number(values.connections);
const W = Number(values.window);
const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 10_000_000, numberOfSignificantValueDigits: 3 });
let answered = 0;
let measuring = false;
let stopping = false;

async function conn(n: number): Promise<void> {
  const ws = new WebSocket(url!, { headers: values.key ? { authorization: `Bearer ${values.key}` } : {}, perMessageDeflate: false });
  await new Promise<void>((res, rej) => {
    ws.once('open', () => res());
    ws.once('error', rej);
  });
  // Frames go out in order and come back in order (one uWS thread per connection): a FIFO of send times.
  const sentAt: number[] = [];
  let head = 0;
  let next = n * 7919;
  const send = () => {
    sentAt.push(performance.now());
    ws.send(frames[next++ % frames.length]!);
  };
  ws.on('message', () => {
    const t = sentAt[head++]!;
    if (head > 4096) {
      sentAt.splice(0, head);
      head = 0;
    }
    if (measuring) {
      answered++;
      hist.recordValue(Math.max(1, Math.round((performance.now() - t) * 1000)));
    }
    if (!stopping) send();
  });
  for (let i = 0; i < W; i++) send();
  await new Promise<void>((res) => {
    const t = setInterval(() => {
      if (stopping && head >= sentAt.length) {
        clearInterval(t);
        ws.close();
        res();
      }
    }, 20);
  });
}

const runs = Array.from({ length: C }, (_, i) => conn(i));
await new Promise((r) => setTimeout(r, Number(values.warmup) * 1000));
measuring = true;
const t0 = performance.now();
await new Promise((r) => setTimeout(r, Number(values.seconds) * 1000));
measuring = false;
const seconds = (performance.now() - t0) / 1000;
stopping = true;
await Promise.all(runs);
process.stdout.write(JSON.stringify({ answered, seconds, rps: answered / seconds, p50: hist.getValueAtPercentile(50), p99: hist.getValueAtPercentile(99), p999: hist.getValueAtPercentile(99.9), max: hist.maxValue }) + '\n');
process.exit(0);
