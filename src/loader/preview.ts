// A short JSON-like preview of a decoded value, for reject reasons. Records
// come from outside, so the value may be nested 100,000 deep, hold millions
// of elements, or be a BigInt: the preview walks it with an explicit stack
// and stops at `max` characters, so its cost is bounded by `max` whatever
// the value, and it never throws.

type Item = { text: string } | { value: unknown };

export function preview(v: unknown, max = 40): string {
  if (v === undefined) return 'nothing';
  let out = '';
  const todo: Item[] = [{ value: v }];
  while (todo.length > 0 && out.length <= max) {
    const item = todo.pop()!;
    if ('text' in item) {
      out += item.text;
      continue;
    }
    const x = item.value;
    if (x === null || x === undefined) out += 'null';
    else if (typeof x === 'string') out += JSON.stringify(x.length > max ? x.slice(0, max) : x);
    else if (typeof x === 'number' || typeof x === 'boolean' || typeof x === 'bigint') out += String(x);
    else if (Array.isArray(x)) {
      // Each element adds at least one character: more than `max` of them cannot show.
      const n = Math.min(x.length, max + 1);
      todo.push({ text: ']' });
      for (let i = n - 1; i >= 0; i--) {
        todo.push({ value: x[i] });
        if (i > 0) todo.push({ text: ',' });
      }
      out += '[';
    } else if (typeof x === 'object') {
      const entries: Item[] = [];
      let n = 0;
      for (const k in x) {
        if (!Object.prototype.hasOwnProperty.call(x, k)) continue;
        if (n > 0) entries.push({ text: ',' });
        entries.push(
          { text: `${JSON.stringify(k.length > max ? k.slice(0, max) : k)}:` },
          { value: (x as Record<string, unknown>)[k] },
        );
        if (++n > max) break;
      }
      todo.push({ text: '}' });
      for (let i = entries.length - 1; i >= 0; i--) todo.push(entries[i]!);
      out += '{';
    } else out += typeof x;
  }
  return out.length > max ? `${out.slice(0, max)}…` : out;
}
