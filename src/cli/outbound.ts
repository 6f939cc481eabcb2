// `segd outbound replay DESTINATION` — moves a destination's dead letters back
// into its outbox, through the running server's admin API (the server's
// sender owns the outbox sequence, so the store is not written from here).
import { loadConfig } from '../config/load.js';
import { parseCommand } from '../terminal/flags.js';

export async function outboundCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'replay') {
    process.stderr.write('usage: segd outbound replay DESTINATION [--url URL] [--key ADMIN_KEY]\n');
    return 2;
  }
  const { flags, args } = parseCommand(
    'outbound replay',
    rest,
    {
      url: 'the running segd (default http://127.0.0.1:<SEGD_PORT>)',
      key: 'an admin key (default: the first of SEGD_ADMIN_KEYS)',
    },
    1,
  );
  const config = loadConfig();
  const url = (flags.url as string | undefined) ?? `http://127.0.0.1:${config.port}`;
  const key = (flags.key as string | undefined) ?? config.adminKeys[0];
  if (!key) throw new Error('no admin key: pass --key or set SEGD_ADMIN_KEYS');
  const dest = args[0]!;
  const res = await fetch(`${url}/v1/admin/destinations/${encodeURIComponent(dest)}/replay`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}` },
  });
  const text = await res.text();
  if (!res.ok) {
    process.stderr.write(`segd outbound replay: ${res.status} ${text}\n`);
    return 1;
  }
  const { replayed } = JSON.parse(text) as { replayed: number };
  process.stdout.write(`${replayed} dead letter(s) of ${dest} queued again\n`);
  return 0;
}
