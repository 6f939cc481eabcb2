// What the admin API asks of the sender, answered on the writer's thread:
// destinations with their delivery state, a replay of dead letters, a resync.
import { publicDestination } from '../partners/admin.js';
import type { OutboundSender } from './sender.js';
import type { DestinationStatus } from './status.js';

export type OutboundQuery =
  { op: 'list' } | { op: 'get'; id: string } | { op: 'replay'; id: string } | { op: 'resync'; id: string };

export type OutboundAnswer =
  | { destinations: object[] }
  | { destination: object }
  | { replayed: number }
  | { resync: 'queued' }
  /** No destination with that id. */
  | null;

export function answerOutbound(sender: OutboundSender, q: OutboundQuery): OutboundAnswer {
  if (q.op === 'replay') {
    const n = sender.replay(q.id);
    return n === null ? null : { replayed: n };
  }
  if (q.op === 'resync') return sender.resync(q.id) ? { resync: 'queued' } : null;
  const status = new Map<string, DestinationStatus>(sender.status().map((s) => [s.id, s]));
  const view = (id: string) => {
    const d = sender.registry.destination(id)!;
    const { id: _id, ...delivery } = status.get(id)!;
    return { ...publicDestination(d), delivery };
  };
  if (q.op === 'get') return sender.registry.destination(q.id) ? { destination: view(q.id) } : null;
  return { destinations: sender.registry.destinations().map((d) => view(d.id)) };
}
