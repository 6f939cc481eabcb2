// Resolves the config once at start: defaults < config file < environment.
// Every problem is collected and reported together, then the result is frozen.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { SETTINGS, BadValue, type Config } from './schema.js';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/** Config-file keys that are not settings but records (partners, taxonomy, destinations). */
const REGISTRY_SECTIONS = ['partners', 'segments', 'destinations'];

export interface ConfigSources {
  env?: NodeJS.ProcessEnv;
  /** Path of a JSON config file; defaults to $SEGD_CONFIG. */
  file?: string;
}

export function loadConfig(sources: ConfigSources = {}): Readonly<Config> {
  const env = sources.env ?? process.env;
  const problems: string[] = [];
  const filePath = sources.file ?? env.SEGD_CONFIG;
  let fromFile: Record<string, unknown> = {};
  if (filePath) {
    try {
      const parsed: unknown = JSON.parse(readFileSync(filePath, 'utf8'));
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        problems.push(`config file ${filePath}: must hold a JSON object`);
      } else {
        fromFile = parsed as Record<string, unknown>;
      }
    } catch (err) {
      problems.push(`config file ${filePath}: ${(err as Error).message}`);
    }
    // `partners` and `segments` are the registry's sections (src/partners/admin.ts reads them).
    const known = new Set([...SETTINGS.map((s) => s.key as string), ...REGISTRY_SECTIONS]);
    for (const k of Object.keys(fromFile)) {
      if (!known.has(k))
        problems.push(`config file ${filePath}: unknown setting "${k}" (known: ${[...known].join(', ')})`);
    }
  }

  const out: Partial<Config> = {};
  for (const s of SETTINGS) {
    const rawEnv = env[s.env];
    const rawFile = fromFile[s.key];
    let value: unknown;
    try {
      if (rawEnv !== undefined) {
        value = s.parse(rawEnv);
      } else if (rawFile !== undefined) {
        value = s.parse(
          typeof rawFile === 'string' ? rawFile : Array.isArray(rawFile) ? rawFile.join(',') : JSON.stringify(rawFile),
        );
      } else {
        value = typeof s.def === 'function' ? (s.def as (c: Partial<Config>) => unknown)(out) : s.def;
      }
    } catch (err) {
      if (!(err instanceof BadValue)) throw err;
      const where = rawEnv !== undefined ? s.env : `config file key "${s.key}"`;
      problems.push(`${where}: ${err.message}`);
      continue;
    }
    (out as Record<string, unknown>)[s.key] = value;
  }
  if (problems.length) throw new ConfigError(problems);
  const cfg = out as Config;
  cfg.dataDir = resolve(cfg.dataDir);
  cfg.inbox = resolve(cfg.inbox);
  if (cfg.seed) cfg.seed = resolve(cfg.seed);
  return Object.freeze(cfg);
}
