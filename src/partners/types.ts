// The partners and taxonomy records, as stored and as every thread reads them.
// validate.ts is the one place they are checked.

export interface SyncSpec {
  /** URL template; macros ${UID} ${GDPR} ${GDPR_CONSENT} ${US_PRIVACY} ${GPP} ${GPP_SID}. */
  url: string;
  type: 'redirect' | 'pixel' | 'iframe';
  /** Hosts allowed to send the browser to segd's inbound sync (Referer/Origin), and the template's own host. */
  callbackHosts: string[];
  /** Secret for signed inbound callbacks; null = unsigned callbacks allowed. */
  hmacKey: string | null;
}

export interface Partner {
  id: string;
  name: string;
  /** sha256 hex of each active API key; several while a key is rotated. Plain keys are never stored. */
  keyDigests: string[];
  /** Segments licensed to this partner, beside those whose SegmentDef.partners names it. */
  segments: number[] | '*';
  sync: SyncSpec | null;
  disabled: boolean;
}

export type DataType = 'first' | 'second' | 'third';

export interface SegmentDef {
  id: number;
  name: string;
  provider: string;
  /** IAB segtax id of the taxonomy the id belongs to (4 = Audience 1.1; 500+ vendor/private). */
  segtax: number;
  dataType: DataType;
  /** Default TTL in seconds for memberships that carry none; null = no expiry. */
  ttl: number | null;
  /** Price of sold data (CPM, in the account's currency); null = not sold. */
  cpm: number | null;
  /** Partners that may receive it. */
  partners: string[] | '*';
}

/**
 * Which id a destination receives for a user: the segd uid, the partner's own
 * uid from the ID graph, the device advertising id, or a universal id by eid
 * source (`eid:liveramp.com`).
 */
export type DestinationIdType = 'uid' | 'partner' | 'ifa' | `eid:${string}`;

/** The Trade Desk's id fields an item may be keyed by (its Data API). */
export const TTD_ID_FIELDS = ['TDID', 'DAID', 'UID2', 'EUID', 'RampID', 'ID5', 'DataProviderUserId'] as const;

/** What a `ttd` destination adds: the Data API's envelope and item shape. */
export interface TtdSpec {
  dataProviderId: string;
  /** The item field the id sent for a user (idType) goes in. */
  idField: (typeof TTD_ID_FIELDS)[number];
  /** TtlInMinutes of a segment a user holds (a removal is sent as 0). */
  ttlMinutes: number;
}

/** Where membership changes are pushed (src/outbound/; docs/outbound.md). */
export interface Destination {
  id: string;
  /** Whose licence and ids apply. */
  partner: string;
  /** The adapter: a JSON webhook, The Trade Desk's Data API shape, or gzip NDJSON files in a directory. */
  type: 'webhook' | 'ttd' | 'file';
  /** http(s) for webhook and ttd; a file: URL of a directory for file. */
  url: string;
  /** For type ttd; null otherwise. */
  ttd: TtdSpec | null;
  /** Between two requests (files) at least this long (file: Xandr-style uploads at most once a minute). */
  minIntervalMs: number;
  /** A subset of the partner's licence, or every segment it is licensed. */
  segments: number[] | '*';
  idType: DestinationIdType;
  /** A batch is sent when it holds this many users, or this many bytes, or its oldest change is this old. */
  maxUsers: number;
  maxBytes: number;
  maxDelayMs: number;
  /** Requests per second at most. */
  maxRps: number;
  /** Requests in flight at once at most (never two holding the same user: each user's changes stay in order). */
  concurrency: number;
  /** A request not answered within this is retried. */
  timeoutMs: number;
  /** Extra request headers (not Authorization, Content-Type or the signature). */
  headers: Record<string, string>;
  /** Sent as `Authorization: Bearer …`; null = none. */
  bearer: string | null;
  /** Signs each body: `X-Segd-Signature: sha256=<hex HMAC of the body>`; null = unsigned. */
  hmacSecret: string | null;
  disabled: boolean;
}
