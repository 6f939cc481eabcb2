// One registry of the errors segd answers with: stable code → HTTP status +
// message. Bodies are `{"error":{"code":…,"message":…}}`; docs/api.md lists them all
// and test/docs.test.ts fails when one is missing there.

export const ERRORS = {
  UID_MISSING: { status: 400, message: 'a user key is required (uid=…)' },
  UID_INVALID: {
    status: 400,
    message: 'the user key must be a string of at most the configured bytes (default 128) with no control characters',
  },
  UNAUTHORIZED: { status: 401, message: 'a valid bearer key is required (Authorization: Bearer …)' },
  BAD_SEGMENT: { status: 400, message: 'the segment id must be an integer 0..4294967295' },
  BAD_FP_RATE: { status: 400, message: 'fp must be a number between 0.000001 and 0.5' },
  BAD_IDEMPOTENCY_KEY: { status: 400, message: 'Idempotency-Key must be 1..200 printable ASCII characters' },
  IDEMPOTENCY_KEY_REUSED: {
    status: 422,
    message: 'this Idempotency-Key was used for a different body; nothing was applied',
  },
  ALL_REJECTED: { status: 422, message: 'every record in the batch was rejected; nothing was applied' },
  NOT_FOUND: { status: 404, message: 'no such route' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'method not allowed on this route' },
  BODY_TOO_LARGE: { status: 413, message: 'request body is over the configured limit' },
  BATCH_TOO_LARGE: { status: 413, message: 'too many keys in one batch' },
  BAD_JSON: { status: 400, message: 'the body is not valid JSON' },
  BAD_MSGPACK: { status: 400, message: 'the body is not valid msgpack' },
  BAD_BATCH: {
    status: 400,
    message: 'the body must be an object with "uids": an array of strings (or "keys": an array of ids)',
  },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'send application/json or application/msgpack' },
  BAD_FORMAT: { status: 400, message: 'unknown format (use json, msgpack or kv)' },
  BAD_PARTNER: { status: 400, message: 'the partner record is not valid' },
  BAD_SEGMENT_DEF: { status: 400, message: 'the segment definition is not valid' },
  BAD_PARTNER_ID: { status: 400, message: 'a partner id is 1-40 of a-z 0-9 _ -' },
  NO_SUCH_PARTNER: { status: 404, message: 'no partner with this id' },
  NO_SUCH_SEGMENT: { status: 404, message: 'no segment with this id in the taxonomy' },
  BAD_DESTINATION: { status: 400, message: 'the destination record is not valid' },
  BAD_DESTINATION_ID: { status: 400, message: 'a destination id is 1-40 of a-z 0-9 _ -' },
  NO_SUCH_DESTINATION: { status: 404, message: 'no destination with this id' },
  SYNC_NOT_CONFIGURED: { status: 400, message: 'no enabled partner with this id takes part in cookie sync' },
  BAD_SYNC_REQUEST: { status: 400, message: 'the outbound sync request is not valid' },
  BAD_SIGNATURE: { status: 403, message: 'the signed callback is missing, stale or does not verify' },
  BAD_ID_KEY: { status: 400, message: 'give one id: uid, partner+puid, ifa, eid_source+eid, or login (+login_source)' },
  INTERNAL: { status: 500, message: 'internal error' },
  FORBIDDEN: { status: 403, message: 'this key may not act for that partner' },
  BAD_BID_REQUEST: {
    status: 400,
    message:
      'the body must be an OpenRTB 2.6 BidRequest: a JSON object with "id" (string) and "imp" (array); user, device and regs, when present, objects',
  },
  BAD_MODE: { status: 400, message: 'unknown mode (omit it for the whole request, or mode=data)' },
  BAD_SINCE: { status: 400, message: 'since must be a wall-clock time in ms since the epoch (a non-negative number)' },
  BAD_FRAME: { status: 400, message: 'a WebSocket frame must be a msgpack map with "id" and one key: uid, puid, ifa' },
  STORE_FULL: {
    status: 503,
    message: 'the store cannot take writes (full); nothing was applied; retry later with the same Idempotency-Key',
  },
  BODY_TIMEOUT: { status: 408, message: 'the request body did not arrive in time; the connection is closed' },
  ORIGIN_NOT_ALLOWED: {
    status: 403,
    message: 'this page origin may not call /v1/rtd for that publisher (SEGD_RTD_ORIGINS)',
  },
  BAD_RTD_REQUEST: { status: 400, message: 'the /v1/rtd query is not valid' },
  BAD_INSIGHTS_QUERY: { status: 400, message: 'the insights query is not valid' },
  FORBIDDEN_SEGMENT: { status: 403, message: 'this key is not licensed for a segment the query names' },
  BAD_PIXEL: { status: 400, message: 'the exposure pixel request is not valid' },
  INSIGHTS_OFF: { status: 404, message: 'the insights index is off on this node (SEGD_INSIGHTS=off)' },
  OVERLOADED: { status: 503, message: 'too many requests of this kind under way on this worker; retry later' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  204: 'No Content',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** "404 Not Found": the status line uWS wants, for any code. */
export function statusLine(status: number): string {
  return `${status} ${STATUS_TEXT[status] ?? ''}`.trimEnd();
}

export function errorBody(code: ErrorCode, detail?: string): string {
  const e = ERRORS[code];
  return JSON.stringify({ error: { code, message: detail ? `${e.message}: ${detail}` : e.message } });
}
