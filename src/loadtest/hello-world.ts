// The same-run baseline for `npm run bench`: a bare uWebSockets.js hello-world
// on one thread, so segd's figures can be quoted as a ratio of what uWS itself
// does on this machine with the same generator.
//
//   node dist/src/loadtest/hello-world.js [port]      (or HELLO_PORT / HELLO_HOST; HELLO_CALLS below)
//
// Port 0 (the default) picks a free port. Prints one JSON line when listening:
//   {"msg":"listening","port":12345,"host":"127.0.0.1","pid":…}
// Stops on SIGTERM / SIGINT.
import uWS, { type us_listen_socket } from 'uWebSockets.js';

const rawPort = process.argv[2] ?? process.env.HELLO_PORT ?? '0';
const port = Number(rawPort);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`hello-world: bad port ${JSON.stringify(rawPort)}\n`);
  process.exit(2);
}
const host = process.env.HELLO_HOST ?? '127.0.0.1';

// HELLO_CALLS=1: a GET makes the uWS calls segd's `GET /v1/segments?uid=`
// makes (two headers and the query read, a Content-Type written, a JSON body
// of bytes) and nothing else, so `bench:cpu --calls` tells what uWS costs
// segd's lookups from what segd's own JS does.
const CT = Buffer.from('Content-Type');
const JSON_TYPE = Buffer.from('application/json');
const ANSWER = Buffer.from('{"uid":"7d3f1c2a-9b8e-4f6a-a1b2-c3d4e5f60718","segments":[101,2044,3107,48812,5]}');
const app = uWS.App();
if (process.env.HELLO_CALLS === '1') {
  app.get('/*', (res, req) => {
    // Each read makes its string, as segd's do; the strings are dropped.
    req.getHeader('authorization');
    req.getQuery();
    req.getHeader('accept');
    res.writeHeader(CT, JSON_TYPE).end(ANSWER, false);
  });
} else {
  app.get('/*', (res) => {
    res.end('Hello World!');
  });
}
// Baselines for bench:activation: a POST whose body is read and dropped (the
// enrichment's bytes on the wire), and a WebSocket that echoes each frame.
app.post('/*', (res) => {
  res.onAborted(() => {});
  res.onData((_chunk, last) => {
    if (last) res.end('Hello World!');
  });
});
app.ws('/*', { maxPayloadLength: 16 * 1024, message: (ws, msg, isBinary) => void ws.send(msg, isBinary) });

let listenSocket: us_listen_socket | null = null;
app.listen(host, port, (ls) => {
  if (!ls) {
    process.stderr.write(`hello-world: could not listen on ${host}:${port}\n`);
    process.exit(1);
  }
  listenSocket = ls;
  process.stdout.write(
    JSON.stringify({ msg: 'listening', port: uWS.us_socket_local_port(ls), host, pid: process.pid }) + '\n',
  );
});

const stop = () => {
  if (listenSocket) uWS.us_listen_socket_close(listenSocket);
  listenSocket = null;
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
