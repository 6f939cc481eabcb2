// The open-loop client as its own process: the harness's open-loop driver
// (drive-http.ts) and the benches spawn it, so their heaps and GC pauses stay
// out of the figures (open-loop.ts holds the loop).
//
//   node dist/src/loadtest/open-loop-client.js --port P (--paths FILE | --requests FILE)
//        [--rate R] [--connections C] [--warmup-ms W] [--duration-ms D] [--host H] [--ok-below 300]
//
// Prints one JSON line: LoopSummary, and with --requests (whole requests
// written by `writeRequests`) also the Recorder's figures: timeline, histogram,
// errors. --rate 0 runs closed loop (each connection sends its next request
// when the answer arrives), which tells how much this client can drive;
// --rate R > 0 runs open loop on a fixed schedule. The requests (or GET paths,
// one per line) are cycled in order.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { driveLoop, readRequests, summarize, type LoopOptions } from './open-loop.js';
import { Recorder } from './recorder.js';

async function cli(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      paths: { type: 'string' },
      requests: { type: 'string' },
      'ok-below': { type: 'string', default: '300' },
      rate: { type: 'string', default: '0' },
      connections: { type: 'string', default: '50' },
      'warmup-ms': { type: 'string', default: '2000' },
      'duration-ms': { type: 'string', default: '10000' },
    },
    strict: true,
  });
  const num = (name: string, raw: string | undefined, min: number) => {
    const n = Number(raw);
    if (raw === undefined || raw.trim() === '' || !Number.isFinite(n) || n < min)
      throw new Error(`--${name} must be a number ≥ ${min}; got ${JSON.stringify(raw)}`);
    return n;
  };
  if (!values.paths && !values.requests) throw new Error('--paths FILE or --requests FILE is required');
  const paths = values.paths ? readFileSync(values.paths, 'utf8').split('\n').filter(Boolean) : [];
  const requests = values.requests ? readRequests(values.requests) : undefined;
  if (!paths.length && !requests?.length) throw new Error(`${values.paths ?? values.requests}: no requests`);
  // With --requests (the load-test harness), every answer also goes to a Recorder whose figures are printed too.
  const okBelow = num('ok-below', values['ok-below'], 200);
  const rec = requests ? new Recorder((s) => s >= 200 && s < okBelow) : null;
  const o: LoopOptions = {
    host: values.host!,
    port: num('port', values.port, 1),
    paths,
    ...(requests && rec
      ? {
          requests,
          onAnswer: (us: number, st: number) => rec.answer(us, st),
          onConnectionLost: () => rec.failure('connection'),
        }
      : {}),
    connections: num('connections', values.connections, 1),
    rate: num('rate', values.rate, 0),
    warmupMs: num('warmup-ms', values['warmup-ms'], 0),
    durationMs: num('duration-ms', values['duration-ms'], 1),
  };
  const startTimer = rec ? setTimeout(() => rec.start(), o.warmupMs) : undefined;
  const r = await driveLoop(o);
  clearTimeout(startTimer);
  if (rec) {
    rec.stop();
    if (r.lost > 0) rec.failure('timeouts', r.lost);
  }
  const out = JSON.stringify(rec ? { ...summarize(o, r), figures: rec.figures() } : summarize(o, r)) + '\n';
  // Written out before the exit: stdout to a pipe is asynchronous, and the
  // answer (with its slow answers, often hundreds of KB) was cut short.
  await new Promise<void>((resolve, reject) => process.stdout.write(out, (err) => (err ? reject(err) : resolve())));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  cli().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`open-loop-client: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
