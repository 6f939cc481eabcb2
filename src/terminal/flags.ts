// A small `--name value` / `--name=value` / `--flag` parser with one message
// for every mistake; each command declares its flags with a line of help.
import { parseArgs } from 'node:util';

export type FlagSpec = Record<string, string>;
export type Flags = Record<string, string | boolean | undefined>;

/** `booleans`: flags that take no value, beyond quiet, help and json. */
export function parseFlags(cmd: string, argv: string[], spec: FlagSpec, booleans: string[] = []): Flags {
  return parseCommand(cmd, argv, spec, 0, booleans).flags;
}

/** Flags plus exactly `positionals` positional arguments. */
export function parseCommand(
  cmd: string,
  argv: string[],
  spec: FlagSpec,
  positionals: number,
  booleans: string[] = [],
): { flags: Flags; args: string[] } {
  const boolFlags = new Set(['quiet', 'help', 'json', ...booleans]);
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const name of Object.keys(spec)) options[name] = { type: boolFlags.has(name) ? 'boolean' : 'string' };
  let values: Flags;
  let args: string[];
  try {
    ({ values, positionals: args } = parseArgs({
      args: argv,
      options,
      allowPositionals: positionals > 0,
      strict: true,
    }) as { values: Flags; positionals: string[] });
  } catch (err) {
    throw new Error(`${cmd}: ${(err as Error).message}\n${usage(cmd, spec)}`, { cause: err });
  }
  if (values.help) {
    process.stdout.write(usage(cmd, spec) + '\n');
    process.exit(0);
  }
  if (args.length !== positionals)
    throw new Error(`${cmd}: expected ${positionals} argument(s), got ${args.length}\n${usage(cmd, spec)}`);
  return { flags: values, args };
}

export function usage(cmd: string, spec: FlagSpec): string {
  // A bench names itself by its npm script (`npm run bench --`), a command by its name.
  return (
    `usage: ${cmd.startsWith('npm ') ? cmd : `segd ${cmd}`} [flags]\n` +
    Object.entries(spec)
      .map(([k, v]) => `  --${k.padEnd(12)} ${v}`)
      .join('\n')
  );
}

export function numFlag(f: Flags, name: string, o: { min: number; max: number; def?: number }): number {
  const raw = f[name];
  if (raw === undefined) {
    if (o.def === undefined) throw new Error(`--${name} is required`);
    return o.def;
  }
  const n = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(n) || n < o.min || n > o.max) {
    throw new Error(`--${name} must be a number from ${o.min} to ${o.max}; got ${JSON.stringify(raw)}`);
  }
  return n;
}

export function intFlag(f: Flags, name: string, o: { min: number; max: number; def?: number }): number {
  const raw = f[name];
  if (typeof raw === 'string' && /^\d+[kKmM]$/.test(raw)) {
    // 10M, 500k: the sizes people type for data sets.
    const mult = /[kK]$/.test(raw) ? 1e3 : 1e6;
    return numFlag({ [name]: String(Number(raw.slice(0, -1)) * mult) }, name, o);
  }
  const n = numFlag(f, name, o);
  if (!Number.isInteger(n)) throw new Error(`--${name} must be a whole number; got ${JSON.stringify(raw)}`);
  return n;
}

/** `--name A=1,B=2`: the pairs in order, each split at its first `=`; none when the flag is absent. */
export function pairsFlag(f: Flags, name: string): Array<[string, string]> {
  const raw = f[name];
  if (raw === undefined) return [];
  if (typeof raw !== 'string') throw new Error(`--${name} takes NAME=VALUE[,NAME=VALUE]`);
  return raw.split(',').map((kv) => {
    const at = kv.indexOf('=');
    if (at <= 0) throw new Error(`--${name}: ${JSON.stringify(kv)} is not NAME=VALUE`);
    return [kv.slice(0, at).trim(), kv.slice(at + 1).trim()];
  });
}
