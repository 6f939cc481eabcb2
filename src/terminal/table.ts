// A plain-text table for the terminal: a header, a rule, one line per row,
// each column as wide as its widest cell; the columns in `right` (numbers)
// are right-aligned so their digits line up.
export function table(head: string[], rows: string[][], right: ReadonlySet<number> = new Set()): string[] {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    '  ' +
    w
      .map((n, i) => (right.has(i) ? (cells[i] ?? '').padStart(n) : (cells[i] ?? '').padEnd(n)))
      .join('  ')
      .trimEnd();
  return [line(head), line(w.map((n) => '─'.repeat(n))), ...rows.map(line)];
}
