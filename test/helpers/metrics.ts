// Reading segd's /metrics (Prometheus text) in tests: one sample by name and
// labels, so a test can wait for a counter to move instead of sleeping.

/** The value of the sample `name{labels}` in exposition `text`; NaN when there is none. Labels in exposition order. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const l = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',');
  const head = l ? `${name}{${l}} ` : `${name} `;
  const line = text.split('\n').find((x) => x.startsWith(head));
  return line === undefined ? NaN : Number(line.slice(head.length));
}

/** One sample scraped from the server at `base` (no auth). */
export async function metric(base: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  return sample(await (await fetch(`${base}/metrics`)).text(), name, labels);
}
