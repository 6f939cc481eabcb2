// User keys are opaque strings (cookie ids, UUIDs, hashed emails, device ids)
// of 1..maxUidBytes UTF-8 bytes with no control characters. The same check
// guards lookups and feeds, so nothing stored can't be looked up.

type UidProblem = 'UID_MISSING' | 'UID_INVALID';

export function checkUid(uid: unknown, maxBytes: number): UidProblem | null {
  if (uid === undefined || uid === null || uid === '') return 'UID_MISSING';
  if (typeof uid !== 'string') return 'UID_INVALID';
  // A UTF-16 unit is at most 3 UTF-8 bytes: skip the byte count for short keys.
  if (uid.length * 3 > maxBytes && Buffer.byteLength(uid, 'utf8') > maxBytes) return 'UID_INVALID';
  // C0 controls and DEL would forge log lines or headers and are never real
  // ids. A char loop: ≈4x cheaper than a regex test on this hot path (bench:micro).
  for (let i = 0; i < uid.length; i++) {
    const c = uid.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return 'UID_INVALID';
  }
  return null;
}
