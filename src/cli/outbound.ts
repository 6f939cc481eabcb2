// `segd outbound replay|resync DESTINATION`, through the running server's
// admin API (the server's sender owns the outbox sequence, so the store is
// not written from here): `replay` moves a destination's dead letters back
// into its outbox; `resync` queues it the whole current state.
import { loadConfig } from '../config/load.js';
import { parseCommand } from '../terminal/flags.js';

const USAGE = 'usage: segd outbound replay|resync DESTINATION [--url URL] [--key ADMIN_KEY]\n';

export async function outboundCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'replay' && sub !== 'resync') {
    process.stderr.write(USAGE);
    return 2;
  }
  const { flags, args } = parseCommand(
    `outbound ${sub}`,
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
  const res = await fetch(`${url}/v1/admin/destinations/${encodeURIComponent(dest)}/${sub}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}` },
  });
  const text = await res.text();
  if (!res.ok) {
    process.stderr.write(`segd outbound ${sub}: ${res.status} ${text}\n`);
    return 1;
  }
  if (sub === 'resync') process.stdout.write(`resync of ${dest} queued (after what is queued before it)\n`);
  else {
    const { replayed } = JSON.parse(text) as { replayed: number };
    process.stdout.write(`${replayed} dead letter(s) of ${dest} queued again\n`);
  }
  return 0;
}
