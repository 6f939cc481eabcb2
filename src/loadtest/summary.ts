// The one-screen terminal summary of a run: a line per scenario and target,
// the comparison ratios, the gate table and the verdict.
import { fmtPct, fmtUs, fmtInt as int } from './gate.js';
import { countedByPool, pooledLine, scenarioLabel, type Results } from './runner.js';
import { table } from '../terminal/table.js';

export function summaryText(res: Results, files: { html: string; json: string }): string {
  const out: string[] = [];
  const s = res.settings;
  out.push(`segd loadtest — ${s.target} — ${s.mode}, ${s.durationS} s (+${s.warmupS} s warm-up) per scenario`);
  out.push(
    `keys: ${int(s.users)} users (seed ${s.seed}), ${(res.keyMix.knownShare * 100).toFixed(1)}% known, Zipf s=${s.zipf}, ${int(res.keyMix.distinct)} distinct of ${int(res.keyMix.draws)} draws; ${res.pinning.why}`,
  );
  if (res.dataCheck && !res.dataCheck.ok) out.push(`WARNING: ${res.dataCheck.note}`);
  for (const r of res.results)
    if (r.generatorBound && !countedByPool(r, res.pooled))
      out.push(
        `GENERATOR-BOUND: ${scenarioLabel(r)} → ${r.target}: its tail figures do not count (${r.generatorBoundWhy!.join('; ')})`,
      );
  out.push('');
  const rows = res.results.map((r) => {
    if (!r.figures)
      return [
        scenarioLabel(r),
        r.round ? `${r.target} #${r.round}` : r.target,
        r.status.toUpperCase(),
        '',
        '',
        '',
        '',
        '',
        '',
        'see below',
      ];
    const f = r.figures;
    const l = f.latencyUs;
    const hit = r.server?.view.hitShare;
    return [
      scenarioLabel(r),
      r.round ? `${r.target} #${r.round}` : r.target,
      int(f.rps),
      fmtUs(l.p50),
      fmtUs(l.p90),
      fmtUs(l.p99),
      fmtUs(l.p999),
      fmtUs(l.max),
      f.errorCount ? `${int(f.errorCount)} (${fmtPct(f.errorRate)})` : '0',
      [
        hit !== undefined ? `server hit ${(hit * 100).toFixed(0)}%` : '',
        r.keysPerS && r.keysPerS !== f.rps ? `${int(r.keysPerS)} keys/s` : '',
        r.control ? 'control' : '',
        r.generatorBound ? 'GENERATOR-BOUND' : '',
        r.background?.short ?? '',
      ]
        .filter(Boolean)
        .join(', '),
    ];
  });
  out.push(
    ...table(
      ['scenario', 'target', 'req/s', 'p50', 'p90', 'p99', 'p99.9', 'max', 'errors', 'notes'],
      rows,
      new Set([2, 3, 4, 5, 6, 7, 8]),
    ),
  );
  const skipped = res.results.filter((r) => r.status !== 'ran');
  for (const r of skipped) out.push(`  ${r.scenario}: ${r.reason}`);
  for (const r of res.results) for (const w of r.warnings ?? []) out.push(`  ${scenarioLabel(r)} → ${r.target}: ${w}`);
  for (const r of res.results) {
    const a = r.attribution;
    if (!a) continue;
    const kinds = a.kinds
      .filter((k) => k.samples > 0)
      .slice(0, 5)
      .map((k) => `${k.kind} ${(k.share * 100).toFixed(0)}% (lift ${k.lift.toFixed(1)}×)`);
    kinds.push(`unexplained ${(a.unexplained.share * 100).toFixed(0)}%`);
    out.push(
      `  ${scenarioLabel(r)}: of ${int(a.samples)} answers slower than p99 ${fmtUs(a.thresholdUs)}, ±${a.windowMs} ms of: ${kinds.join(', ')}`,
    );
  }
  for (const p of res.pooled ?? []) {
    out.push(`  ${pooledLine(p)}`);
    for (const l of p.leftOut)
      out.push(`    round ${l.round} left out: ${l.why[0]}${l.why.length > 1 ? ` (+${l.why.length - 1} more)` : ''}`);
  }
  for (const c of res.comparisons) {
    const parts = [
      c.vsHello !== undefined ? `segd / hello-world ${c.vsHello.toFixed(2)}×` : '',
      c.vsFastify !== undefined ? `segd / fastify+redis ${c.vsFastify.toFixed(2)}×` : '',
    ].filter(Boolean);
    out.push(`  compare ${c.scenario}: ${parts.join(', ')} (req/s, same run, same settings)`);
  }
  out.push('');
  if (res.gates.length) {
    out.push(
      ...table(
        ['gate', 'scenario', 'measured', 'result'],
        res.gates.map((g) => [g.gate, g.scenario, g.measured, g.pass ? 'PASS' : 'FAIL']),
        new Set([2]),
      ),
    );
    out.push('');
  }
  out.push(`verdict: ${res.verdict.toUpperCase()}   report: ${files.html}   json: ${files.json}`);
  return out.join('\n') + '\n';
}
