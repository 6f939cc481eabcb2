// The native open-loop client (native/openloop) on short real runs: against
// the real uWebSockets.js hello-world it keeps its rate and prints the same
// JSON shape as the Node client; against a server that drops connections it
// counts the losses, reconnects and still ends on time. Also `segd loadtest`
// with it: each open-loop run comes with its hello-world control and the
// generator-bound verdict. Speed is not asserted beyond "plausible".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { ROOT, runSegd, tempDir } from './helpers/server.js';
import { spawnTracked } from './helpers/procs.js';
import { nativeClientPath, realtimeRefused } from '../src/loadtest/native-client.js';
import { rawRequest, writeRequests } from '../src/loadtest/open-loop.js';
import { generatorBoundWhy } from '../src/loadtest/control.js';
import { cpuTimes, stealPct } from '../src/loadtest/host-cpu.js';
import type { Results } from '../src/loadtest/runner.js';

const HELLO_JS = join(ROOT, 'dist/src/loadtest/hello-world.js');
const NODE_CLIENT_JS = join(ROOT, 'dist/src/loadtest/open-loop-client.js');

let bin: string;
let work: string;
let helloPort: number;
let hello: ChildProcess;

interface Run {
  code: number | null;
  out: Record<string, unknown> & {
    completed: number;
    errors: number;
    lost: number;
    latencyUs: Record<string, number>;
    sendLagUs: Record<string, number>;
    ownLagUs: Record<string, number>;
    connWaits: number;
    figures: {
      requests: number;
      errorCount: number;
      errors: { connection: number; timeouts: number; other: number; status: Record<string, number> };
      latencyUs: Record<string, number>;
      timeline: Array<Record<string, number>>;
      histogram: Array<Record<string, number>>;
      counts: Array<[number, number]>;
    };
  };
  stderr: string;
  ms: number;
}

function runClient(cmd: string, args: string[]): Promise<Run> {
  return new Promise((ok) => {
    const t0 = performance.now();
    const p = spawnTracked(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    p.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    p.on('exit', (code) =>
      ok({
        code,
        out: stdout ? (JSON.parse(stdout) as Run['out']) : ({} as Run['out']),
        stderr,
        ms: performance.now() - t0,
      }),
    );
  });
}

beforeAll(async () => {
  // Finds the binary, or builds it (gcc is in the image and in .ci/setup-system.sh).
  execFileSync('bash', [join(ROOT, 'native/build.sh'), '--require'], { stdio: 'inherit' });
  bin = nativeClientPath()!;
  work = tempDir('segd-native-client-');
  writeFileSync(join(work, 'paths.txt'), '/a\n/b?x=1\n');
  hello = spawnTracked(process.execPath, [HELLO_JS, '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  helloPort = await new Promise<number>((ok, fail) => {
    let buf = '';
    hello.stdout!.setEncoding('utf8').on('data', (c: string) => {
      buf += c;
      const line = buf.split('\n').find((l) => l.includes('"listening"'));
      if (line) ok((JSON.parse(line) as { port: number }).port);
    });
    hello.once('exit', () => fail(new Error('hello-world exited')));
  });
});

afterAll(async () => {
  if (hello?.exitCode === null) {
    const exited = new Promise((r) => hello.once('exit', r));
    hello.kill('SIGTERM');
    await exited;
  }
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('native open-loop client', () => {
  it('keeps 2k req/s for 1 s against the hello-world: every request answered, µs latencies, the Node client’s JSON shape', async () => {
    expect(bin).toBeTruthy();
    const common = ['--port', String(helloPort), '--rate', '2000', '--connections', '8'];
    const window = ['--warmup-ms', '200', '--duration-ms', '1000'];
    const r = await runClient(bin, [...common, ...window, '--paths', join(work, 'paths.txt')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.out.completed).toBeGreaterThanOrEqual(1900);
    expect(r.out.completed).toBeLessThanOrEqual(2100);
    expect(r.out.errors).toBe(0);
    expect(r.out.lost).toBe(0);
    expect(r.out.figures.errorCount).toBe(0);
    expect(r.out.figures.requests).toBe(r.out.completed);
    const l = r.out.latencyUs;
    expect(l.p50).toBeGreaterThan(0);
    expect(l.p50).toBeLessThanOrEqual(l.p99!);
    expect(l.p99).toBeLessThanOrEqual(l.max!);
    expect(l.max).toBeLessThan(100_000);
    expect(r.out.sendLagUs.max).toBeLessThan(100_000);
    // The send lag split: requests that had a free connection (the generator's own lateness), and the rest.
    expect(r.out.ownLagUs.max).toBeLessThanOrEqual(r.out.sendLagUs.max!);
    expect(r.out.connWaits).toBeGreaterThanOrEqual(0);
    expect(r.out.connWaits).toBeLessThan(r.out.completed);
    const timeline = r.out.figures.timeline;
    expect(timeline.length).toBeGreaterThanOrEqual(1);
    expect(timeline.reduce((n, s) => n + s.requests!, 0)).toBe(r.out.completed);
    expect(r.out.figures.histogram.reduce((n, b) => n + b.count!, 0)).toBe(r.out.completed);
    // The fine histogram (what rounds pool): every answer once, ascending, its top the max.
    const fine = r.out.figures.counts;
    expect(fine.reduce((n, [, c]) => n + c, 0)).toBe(r.out.completed);
    expect(fine.every(([v], i) => i === 0 || v > fine[i - 1]![0])).toBe(true);
    expect(fine[fine.length - 1]![0]).toBeGreaterThanOrEqual(l.max!);

    // The same flags through the Node client, with whole requests from a file: the same keys at every level.
    const file = join(work, 'requests.bin');
    writeRequests(file, [rawRequest('127.0.0.1', 'GET', '/c', {}), rawRequest('127.0.0.1', 'POST', '/d', {}, 'x')]);
    const [native, node] = await Promise.all([
      runClient(bin, [...common, '--warmup-ms', '0', '--duration-ms', '300', '--requests', file]),
      runClient(process.execPath, [
        NODE_CLIENT_JS,
        ...common,
        '--warmup-ms',
        '0',
        '--duration-ms',
        '300',
        '--requests',
        file,
      ]),
    ]);
    expect([native.code, node.code]).toEqual([0, 0]);
    expect(native.out.figures.errorCount).toBe(0);
    const keys = (o: object) => Object.keys(o).sort();
    expect(keys(native.out)).toEqual(expect.arrayContaining(keys(node.out)));
    expect(keys(native.out.figures)).toEqual(keys(node.out.figures));
    expect(keys(native.out.figures.errors)).toEqual(keys(node.out.figures.errors));
    expect(keys(native.out.figures.latencyUs)).toEqual(keys(node.out.figures.latencyUs));
    expect(keys(native.out.figures.timeline[0]!)).toEqual(keys(node.out.figures.timeline[0]!));
    expect(keys(native.out.sendLagUs)).toEqual(keys(node.out.sendLagUs));
  });

  describe('against a server that drops connections', () => {
    let server: Server;
    let port: number;
    const sockets = new Set<Socket>();
    let dropped = 0;

    beforeAll(async () => {
      // Answers each request, and resets every connection on its 50th request (which is never answered).
      server = createServer((sock) => {
        sockets.add(sock);
        sock.on('close', () => sockets.delete(sock));
        sock.on('error', () => {});
        let seen = 0;
        let buf = '';
        sock.setEncoding('latin1').on('data', (c: string) => {
          buf += c;
          let end: number;
          while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
            buf = buf.slice(end + 4);
            if (++seen === 50) {
              dropped++;
              sock.resetAndDestroy();
              return;
            }
            sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
          }
        });
      });
      port = await new Promise<number>((ok) =>
        server.listen(0, '127.0.0.1', () => ok((server.address() as { port: number }).port)),
      );
    });

    afterAll(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    });

    it('counts each lost connection and its request, reconnects, carries on and ends on time', async () => {
      const r = await runClient(bin, [
        '--port',
        String(port),
        '--rate',
        '2000',
        '--connections',
        '4',
        '--warmup-ms',
        '0',
        '--duration-ms',
        '1000',
        '--paths',
        join(work, 'paths.txt'),
      ]);
      expect(r.code).toBe(0);
      // About 2000 / 50 connections dropped, each under a request.
      expect(dropped).toBeGreaterThan(20);
      expect(r.out.errors).toBeGreaterThan(20);
      expect(r.out.errors).toBeLessThanOrEqual(dropped);
      expect(r.out.lost).toBe(r.out.figures.errors.connection);
      expect(r.out.lost).toBeGreaterThan(20);
      // It carried on: every other request was answered.
      expect(r.out.completed + r.out.lost).toBeGreaterThanOrEqual(1900);
      expect(r.out.completed).toBeGreaterThan(1800);
      expect(r.out.figures.errorCount).toBe(r.out.lost);
      // 1 s of schedule: it exits well before the 5 s grace after the window.
      expect(r.ms).toBeLessThan(4000);
    });

    it('ends by itself when the server stops answering: whatever is unanswered counts as lost', async () => {
      const silent = createServer((sock) => sock.on('error', () => {}));
      const silentPort = await new Promise<number>((ok) =>
        silent.listen(0, '127.0.0.1', () => ok((silent.address() as { port: number }).port)),
      );
      try {
        const r = await runClient(bin, [
          ...['--port', String(silentPort), '--rate', '1000', '--connections', '2'],
          ...['--warmup-ms', '0', '--duration-ms', '300', '--timeout-ms', '200'],
          ...['--paths', join(work, 'paths.txt')],
        ]);
        expect(r.code).toBe(0);
        expect(r.out.completed).toBe(0);
        expect(r.out.lost).toBe(300);
        expect(r.out.figures.errors.timeouts).toBe(300);
        // The window (0.3 s) plus min(timeout, 5 s) of grace, and no more.
        expect(r.ms).toBeLessThan(2000);
      } finally {
        silent.close();
      }
    });
  });
});

describe('the generator-bound rule', () => {
  const lat = (p99: number) => ({ p50: 1, p90: 1, p99, p999: p99, max: p99, mean: 1 });
  it('accepts a run whose control p99 ≤ 0.3 ms and whose send lags p99 ≤ 0.1 ms', () => {
    const ok = { figures: { latencyUs: lat(300) }, drive: { sendLagUs: lat(100) } };
    expect(generatorBoundWhy({ drive: { sendLagUs: lat(100) } }, ok)).toEqual([]);
  });
  it('rejects a slow control, a late control, a late run and a missing control, each with its reason', () => {
    const run = { drive: { sendLagUs: lat(5) } };
    expect(generatorBoundWhy(run, { figures: { latencyUs: lat(301) } })[0]).toMatch(/control’s p99 is 0\.301 ms/);
    expect(generatorBoundWhy(run, { figures: { latencyUs: lat(50) }, drive: { sendLagUs: lat(101) } })[0]).toMatch(
      /control’s send lag p99/,
    );
    expect(generatorBoundWhy({ drive: { sendLagUs: lat(2000) } }, { figures: { latencyUs: lat(50) } })[0]).toMatch(
      /this run’s send lag p99 is 2\.000 ms/,
    );
    expect(generatorBoundWhy(run, undefined)[0]).toMatch(/no control/);
    // The native client's split says whether the server or the generator made requests late.
    const slowServer = {
      figures: { latencyUs: lat(3000), requests: 100 },
      drive: { sendLagUs: lat(2000), ownLagUs: lat(20), connWaits: 7 },
    };
    expect(generatorBoundWhy(slowServer, { figures: { latencyUs: lat(50) } })).toEqual([
      expect.stringMatching(/7 of 100 requests waited for a free connection .*own lateness p99 was 0\.020 ms/),
    ]);
  });
  it('names the host’s steal as a cause of a failed control, and only then', () => {
    const slowControl = { figures: { latencyUs: lat(3000) }, stealPct: { cpu: 6.5 } };
    const run = { drive: { sendLagUs: lat(5) }, stealPct: { cpu: 0.4 } };
    expect(generatorBoundWhy(run, slowControl)[1]).toMatch(/kept 6\.5% .* during the control and 0\.4% during the run/);
    expect(generatorBoundWhy(run, { ...slowControl, stealPct: { cpu: 0.4 } })).toHaveLength(1);
    expect(generatorBoundWhy(run, { figures: { latencyUs: lat(50) }, stealPct: { cpu: 9 } })).toEqual([]);
  });
  it('reads steal from /proc/stat as a share of each CPU’s time', () => {
    const before = cpuTimes();
    if (before === null) return; // not Linux: nothing to read
    expect(before.get('cpu')![0]).toBeGreaterThan(0);
    const fake = new Map([...before].map(([k, [t, st]]) => [k, [t + 1000, st + 25] as [number, number]]));
    expect(stealPct(before, fake)).toMatchObject({ cpu: 2.5, cpu0: 2.5 });
    expect(stealPct(null, fake)).toBeUndefined();
  });
});

describe('segd loadtest --client native', () => {
  it('measures the hello-world control at the same rate and records the generator verdict', async () => {
    // The hello-world stands in for the target: it answers /healthz and every lookup with 200.
    const out = tempDir('segd-native-lt-');
    try {
      const r = await runSegd([
        'loadtest',
        ...['--target', `http://127.0.0.1:${helloPort}`, '--scenario', 'lookup', '--client', 'native'],
        ...['--rate', '1000', '--duration', '1', '--warmup', '0', '--connections', '4', '--keys', '100'],
        ...['--users', '1000', '--out', out, '--quiet'],
      ]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results;
      expect(res.settings.client).toBe('native');
      const [run, control] = res.results;
      expect(run!.target).toBe('segd');
      expect(run!.drive!.generator).toMatch(/native\/openloop/);
      expect(control!.target).toBe('hello-world');
      expect(control!.control).toBe(true);
      expect(control!.figures!.requests).toBeGreaterThan(900);
      expect(typeof run!.generatorBound).toBe('boolean');
      expect(res.generatorBound).toBe(run!.generatorBound);
      // Bound or not, the summary says which, with the reason.
      if (run!.generatorBound) expect(r.stdout).toMatch(/GENERATOR-BOUND: lookup → segd: .*limit/);
      else expect(r.stdout).not.toMatch(/GENERATOR-BOUND/);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('--rt drives the target and its control with the client at SCHED_FIFO, or says why it cannot', async () => {
    const out = tempDir('segd-native-rt-');
    try {
      const args = [
        'loadtest',
        ...['--target', `http://127.0.0.1:${helloPort}`, '--scenario', 'lookup', '--client', 'native', '--rt'],
        ...['--rate', '1000', '--duration', '1', '--warmup', '0', '--connections', '4', '--keys', '100'],
        ...['--users', '1000', '--out', out, '--quiet'],
      ];
      const r = await runSegd(args);
      const refused = realtimeRefused();
      if (refused !== null) {
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/--rt: cannot run at SCHED_FIFO here/);
        return;
      }
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results;
      const [run, control] = res.results;
      expect(run!.drive!.generator).toMatch(/native\/openloop at SCHED_FIFO/);
      expect(control!.drive!.generator).toMatch(/native\/openloop at SCHED_FIFO/);
      expect(control!.figures!.requests).toBeGreaterThan(900);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('--rt refuses the Node client', async () => {
    const out = tempDir('segd-rt-');
    const r = await runSegd([
      'loadtest',
      ...['--target', 'http://127.0.0.1:9', '--scenario', 'lookup', '--client', 'node', '--rt'],
      ...['--rate', '10', '--duration', '1', '--out', out],
    ]);
    rmSync(out, { recursive: true, force: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--rt runs the native client/);
  });
});
