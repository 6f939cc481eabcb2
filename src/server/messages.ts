// Messages between the supervisor (main thread) and lookup workers.
export type ToWorker =
  | { type: 'drain' }
  | { type: 'collect'; id: number }
  | { type: 'scrape-result'; id: number; text?: string; error?: string }
  | { type: 'filter'; filter: import('../filters/known-users.js').FilterHandle | null };

export type FromWorker =
  | { type: 'listening'; port: number }
  | { type: 'listen-failed'; port: number }
  | { type: 'collected'; id: number; metrics: object }
  | { type: 'scrape'; id: number }
  | { type: 'drained' };

export interface WorkerData {
  config: import('../config/schema.js').Config;
  stateBuffer: SharedArrayBuffer;
  index: number;
  port: number;
  filter: import('../filters/known-users.js').FilterHandle | null;
}
