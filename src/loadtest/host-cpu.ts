// How much of this machine's CPU time the hypervisor kept for itself over a
// run ("steal" in /proc/stat). On a VM whose host is busy, a vCPU that
// should be running is not, for hundreds of µs at a time: every server
// driven in that window, the bare hello-world control included, grows a tail
// that neither it nor the generator caused. The figure says why a control
// failed when nothing on the machine was busy.
import { readFileSync } from 'node:fs';

/** Per CPU ("cpu" = all of them): [total jiffies, steal jiffies]. */
export type CpuTimes = Map<string, [number, number]>;

/** The counters now, or null where /proc/stat cannot be read (not Linux). */
export function cpuTimes(): CpuTimes | null {
  let text: string;
  try {
    text = readFileSync('/proc/stat', 'utf8');
  } catch {
    return null;
  }
  const out: CpuTimes = new Map();
  for (const line of text.split('\n')) {
    if (!line.startsWith('cpu')) break; // the cpu lines come first
    const [name, ...fields] = line.split(/\s+/);
    const n = fields.filter((f) => f !== '').map(Number);
    // user nice system idle iowait irq softirq steal (guest time is inside user)
    const total = n.slice(0, 8).reduce((a, b) => a + b, 0);
    out.set(name!, [total, n[7] ?? 0]);
  }
  return out;
}

/** Steal between two readings, % of each CPU's time (rounded to 0.1). */
export function stealPct(before: CpuTimes | null, after: CpuTimes | null): Record<string, number> | undefined {
  if (!before || !after) return undefined;
  const out: Record<string, number> = {};
  for (const [name, [t1, s1]] of after) {
    const b = before.get(name);
    if (!b || t1 <= b[0]) continue;
    out[name] = Math.round(((s1 - b[1]) / (t1 - b[0])) * 1000) / 10;
  }
  return out;
}
