// A small client for segd's /v1/ws lookup channel (used by the tests and the
// load test). Many lookups in flight on one connection; answers are matched
// by id, so their order does not matter.
//
//   const c = await WsLookupClient.connect('ws://127.0.0.1:8080/v1/ws', key);
//   const segments = await c.lookup({ uid: 'demo-user-1' });
//   await c.close();
import WebSocket from 'ws';
import { pack, unpack } from 'msgpackr';

export type LookupKey = { uid: string } | { puid: string } | { ifa: string };

export interface LookupAnswer {
  segments: number[];
  /** The server was overloaded and answered empty at once. */
  shed?: boolean;
}

export class WsLookupError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
    this.name = 'WsLookupError';
  }
}

interface Waiter {
  resolve: (a: LookupAnswer) => void;
  reject: (e: Error) => void;
}

export class WsLookupClient {
  private seq = 0;
  private readonly waiting = new Map<number, Waiter>();
  /** Frames that came back with `id: null` (undecodable requests), oldest first. */
  readonly orphanErrors: Array<{ code: string; message: string }> = [];
  /** Set once the socket closed: code and reason. */
  closed: { code: number; reason: string } | null = null;

  private constructor(readonly socket: WebSocket) {
    socket.binaryType = 'nodebuffer';
    socket.on('message', (data: Buffer) => this.onFrame(data));
    socket.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      const err = new Error(`connection closed (${code} ${reason.toString()})`);
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    });
  }

  /** Opens a connection; `key` is the partner's API key (sent as a Bearer header at upgrade). */
  static connect(url: string, key?: string, opts: { maxPayload?: number } = {}): Promise<WsLookupClient> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, {
        headers: key ? { authorization: `Bearer ${key}` } : {},
        perMessageDeflate: false,
        maxPayload: opts.maxPayload,
      });
      socket.once('open', () => resolve(new WsLookupClient(socket)));
      socket.once('unexpected-response', (_req, res) => {
        reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode }));
        res.resume();
        socket.terminate();
      });
      socket.once('error', reject);
    });
  }

  /** One lookup; resolves with the answer, rejects on an error frame or a closed connection. */
  lookup(key: LookupKey): Promise<LookupAnswer> {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.socket.send(pack({ id, ...key }));
    });
  }

  /** Sends raw bytes as one binary frame (for tests of bad input). */
  sendRaw(bytes: Uint8Array): void {
    this.socket.send(bytes);
  }

  get inFlight(): number {
    return this.waiting.size;
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.close(1000);
    });
  }

  private onFrame(data: Buffer): void {
    let f: { id?: unknown; segments?: number[]; shed?: boolean; error?: { code: string; message: string } };
    try {
      f = unpack(data) as typeof f;
    } catch {
      this.orphanErrors.push({ code: 'CLIENT_BAD_FRAME', message: 'the server sent a frame that is not msgpack' });
      return;
    }
    const w = typeof f.id === 'number' ? this.waiting.get(f.id) : undefined;
    if (w === undefined) {
      if (f.error) this.orphanErrors.push(f.error);
      return;
    }
    this.waiting.delete(f.id as number);
    if (f.error) w.reject(new WsLookupError(f.error.code, f.error.message));
    else w.resolve(f.shed ? { segments: f.segments ?? [], shed: true } : { segments: f.segments ?? [] });
  }
}
