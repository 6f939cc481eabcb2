// `segd serve`: load config, start the node, stop gracefully on SIGTERM/SIGINT.
import { loadConfig, ConfigError } from '../config/load.js';
import { createLogger } from '../log.js';
import { serve } from '../server/supervisor.js';
import { SchemaError } from '../store/env.js';
import { readRegistrySeed } from '../partners/admin.js';
import { cookieSettings, largestSetCookieBytes } from '../identity/cookie.js';

export async function serveCommand(argv: string[]): Promise<number> {
  if (argv.length) throw new Error(`serve takes no arguments (configure with SEGD_* env vars or SEGD_CONFIG); got ${argv.join(' ')}`);
  let config;
  let seed;
  try {
    config = loadConfig();
    seed = readRegistrySeed(process.env.SEGD_CONFIG);
    const cookieBytes = largestSetCookieBytes(cookieSettings(config));
    if (cookieBytes > config.cookieMaxBytes) {
      throw new ConfigError([`SEGD_COOKIE_MAX_BYTES: the cookie settings make answers with ${cookieBytes} bytes of Set-Cookie headers, over the limit of ${config.cookieMaxBytes} (shorten SEGD_COOKIE_DOMAIN or the cookie names, or raise the limit)`]);
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`segd: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  let server;
  try {
    server = await serve(config, log, seed);
  } catch (err) {
    if (err instanceof SchemaError) {
      log.fatal({ dataDir: config.dataDir }, err.message);
      return 3;
    }
    log.fatal({ err }, 'could not start');
    return 1;
  }
  let stopping = false;
  const stop = (signal: string) => {
    // Repeated signals (orchestrators send more than one) do not cut the drain short.
    if (stopping) {
      log.info({ signal }, 'already shutting down');
      return;
    }
    stopping = true;
    server.shutdown(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  return new Promise<number>(() => {}); // runs until a signal
}
