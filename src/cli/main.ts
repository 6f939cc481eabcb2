// The `segd` command: serve, gen, import, status, insights, backup, outbound, loadtest. Each subcommand owns its flags.
import { genCommand } from './gen.js';
import { serveCommand } from './serve.js';
import { importCommand } from './import.js';
import { statusCommand } from './status.js';
import { insightsCommand } from './insights.js';
import { backupCommand } from './backup.js';
import { loadtestCommand } from './loadtest.js';
import { outboundCommand } from './outbound.js';

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<number>; help: string }> = {
  serve: { run: serveCommand, help: 'start the server (config from SEGD_* env vars / SEGD_CONFIG file)' },
  gen: { run: genCommand, help: 'write a synthetic NDJSON feed: --users N --out FILE' },
  import: { run: importCommand, help: 'apply a feed file or directory to the store (server stopped): PATH' },
  status: { run: statusCommand, help: 'the store and each source: checkpoint, backlog, last commit (--json)' },
  insights: {
    run: insightsCommand,
    help: 'sizes, overlap, affinity and reach from a running node, as tables: sizes|overlap|affinity|reach …',
  },
  backup: {
    run: backupCommand,
    help: 'hot copy of the store (LMDB compacting copy, checkpoints, filter) beside a running server: --out DIR',
  },
  outbound: {
    run: outboundCommand,
    help: 'through the running server: replay DESTINATION (its dead letters queued again), resync DESTINATION (its whole state)',
  },
  loadtest: {
    run: loadtestCommand,
    help: 'load-test a segd with a rollout gate and an HTML report: --target URL --scenario S --duration S --out DIR',
  },
};

export async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  const c = cmd ? COMMANDS[cmd] : undefined;
  if (!c) {
    const list = Object.entries(COMMANDS)
      .map(([k, v]) => `  ${k.padEnd(9)} ${v.help}`)
      .join('\n');
    process.stderr.write(
      `${cmd && cmd !== 'help' && cmd !== '--help' ? `segd: unknown command "${cmd}"\n` : ''}usage: segd <command>\n${list}\n`,
    );
    process.exitCode = cmd && cmd !== 'help' && cmd !== '--help' ? 2 : 0;
    return;
  }
  try {
    const code = await c.run(rest);
    if (code !== 0) process.exitCode = code;
  } catch (err) {
    process.stderr.write(`segd ${cmd}: ${(err as Error).message}\n`);
    process.exitCode = 2;
  }
}
