// Attach to segd's first worker over the inspector and sample allocations (incl. collected ones).
import WebSocket from 'ws';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
const [inspectPort, segdPort, ms, pathKind] = process.argv.slice(2);
const list = await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json();
const ws = new WebSocket(list[0].webSocketDebuggerUrl);
await new Promise((r) => ws.on('open', r));
let id = 0; const waits = new Map(); let workerSession; const wwaits = new Map(); let wid = 0;
ws.on('message', (m) => {
  const msg = JSON.parse(m);
  if (msg.id && waits.has(msg.id)) { waits.get(msg.id)(msg); waits.delete(msg.id); }
  if (msg.method === 'NodeWorker.attachedToWorker' && !workerSession) workerSession = msg.params.sessionId;
  if (msg.method === 'NodeWorker.receivedMessageFromWorker') {
    const inner = JSON.parse(msg.params.message);
    if (inner.id && wwaits.has(inner.id)) { wwaits.get(inner.id)(inner); wwaits.delete(inner.id); }
  }
});
const call = (method, params = {}) => new Promise((r) => { const i = ++id; waits.set(i, r); ws.send(JSON.stringify({ id: i, method, params })); });
const wcall = (method, params = {}) => new Promise((r) => { const i = ++wid; wwaits.set(i, r); call('NodeWorker.sendMessageToWorker', { sessionId: workerSession, message: JSON.stringify({ id: i, method, params }) }); });
await call('NodeWorker.enable', { waitForDebuggerOnStart: false });
for (let i = 0; i < 50 && !workerSession; i++) await new Promise((r) => setTimeout(r, 100));
console.error('worker session', workerSession);
await wcall('HeapProfiler.enable');
console.error(await wcall('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMinorGC: true, includeObjectsCollectedByMajorGC: true }));
const out = execFileSync('node', ['/tmp/alloc/drive.mjs', segdPort, ms, pathKind ?? 'uid'], { encoding: 'utf8' });
console.error(out.trim());
const prof = await wcall('HeapProfiler.stopSampling');
writeFileSync('/tmp/alloc/worker.heapprofile', JSON.stringify(prof.result.profile));
// Flat self-size by function+url:line.
const agg = new Map(); let total = 0;
(function walk(n) { const k = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}`; agg.set(k, (agg.get(k) ?? 0) + n.selfSize); total += n.selfSize; n.children.forEach(walk); })(prof.result.profile.head);
const completed = +out.match(/completed (\d+)/)[1];
console.log('total sampled bytes', total, 'per measured request ~', (total / completed).toFixed(0));
for (const [k, v] of [...agg].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(String(v).padStart(12), (v / completed).toFixed(1).padStart(7), k);
ws.close();
