// A seeded audience whose every count is known, for the insights tests: user
// `u<i>` (i < n) is in 1001 every 2nd, 1002 every 3rd, 2001 every 5th, and
// 3005 when i < in3005 (3005 is licensed to no partner of helpers/activation.ts).
import { feedLine } from './server.js';

export function insightsAudience(n: number, in3005: number) {
  const segmentsOf = (i: number): number[] => {
    const s: number[] = [];
    if (i % 2 === 0) s.push(1001);
    if (i % 3 === 0) s.push(1002);
    if (i % 5 === 0) s.push(2001);
    if (i < in3005) s.push(3005);
    return s;
  };
  const users = Array.from({ length: n }, (_, i) => i);
  /** Users whose segments satisfy `pred`. */
  const count = (pred: (s: number[]) => boolean) => users.filter((i) => pred(segmentsOf(i))).length;
  /** Users in every one of `ids`. */
  const inAll = (...ids: number[]) => count((s) => ids.every((id) => s.includes(id)));
  /** The audience as an NDJSON seed feed (users in no segment left out). */
  const seed = () =>
    users
      .map((i) => ({ i, s: segmentsOf(i) }))
      .filter(({ s }) => s.length > 0)
      .map(({ i, s }) => feedLine({ op: 'add', uid: `u${i}`, segments: s }))
      .join('');
  return { count, inAll, seed };
}
