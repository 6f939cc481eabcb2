// The sender's figures in /metrics, read from its status when scraped.
import { Gauge, type Registry } from 'prom-client';
import type { DestinationStatus } from './status.js';

export function registerOutboundMetrics(registry: Registry, status: () => DestinationStatus[]): void {
  const registers = [registry];
  const labelNames = ['destination'] as const;
  const gauge = (name: string, help: string, pick: (s: DestinationStatus) => number) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.reset();
        for (const s of status()) this.labels(s.id).set(pick(s));
      },
    });
  gauge('segd_outbound_backlog', 'Membership changes queued for a destination and not yet delivered', (s) => s.backlog);
  gauge(
    'segd_outbound_lag_seconds',
    'Age of the oldest undelivered change of a destination (0: none)',
    (s) => s.lagSeconds,
  );
  gauge(
    'segd_outbound_sent_lines',
    'User lines a destination acknowledged (2xx, not named failed), since it was made',
    (s) => s.sent,
  );
  gauge(
    'segd_outbound_failed_lines',
    'User lines a destination refused (named failed, or a 4xx), since it was made',
    (s) => s.failed,
  );
  gauge(
    'segd_outbound_retried_requests',
    'Requests to a destination tried again (429, 5xx, timeout, connection lost)',
    (s) => s.retried,
  );
  gauge(
    'segd_outbound_dead_letters',
    'Lines a destination kept refusing, held for `segd outbound replay`',
    (s) => s.deadLetters,
  );
  gauge(
    'segd_outbound_last_error_timestamp_seconds',
    'When delivery to a destination last failed (0: never); the message is in GET /v1/admin/destinations',
    (s) => (s.lastError ? s.lastError.at / 1000 : 0),
  );
  gauge('segd_outbound_running', '1 while a sender delivers to the destination', (s) => (s.running ? 1 : 0));
}
