// `segd serve`: load config, start the node, stop gracefully on SIGTERM/SIGINT.
import { loadConfig, ConfigError } from '../config/load.js';
import { createLogger } from '../log.js';
import { serve, ShutdownTimeout } from '../server/supervisor.js';
import { SchemaError } from '../store/env.js';
import { readRegistrySeed } from '../partners/admin.js';
import { cookieSettings, largestSetCookieBytes } from '../identity/cookie.js';

/** Exit status when the shutdown ran out of SEGD_SHUTDOWN_TIMEOUT_MS or a second signal cut it short. */
const EXIT_UNFINISHED_SHUTDOWN = 4;

export async function serveCommand(argv: string[]): Promise<number> {
  if (argv.length)
    throw new Error(`serve takes no arguments (configure with SEGD_* env vars or SEGD_CONFIG); got ${argv.join(' ')}`);
  let config;
  let seed;
  try {
    config = loadConfig();
    seed = readRegistrySeed(process.env.SEGD_CONFIG);
    const cookieBytes = largestSetCookieBytes(cookieSettings(config));
    if (cookieBytes > config.cookieMaxBytes) {
      throw new ConfigError([
        `SEGD_COOKIE_MAX_BYTES: the cookie settings make answers with ${cookieBytes} bytes of Set-Cookie headers, over the limit of ${config.cookieMaxBytes} (shorten SEGD_COOKIE_DOMAIN or the cookie names, or raise the limit)`,
      ]);
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`segd: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  let server: Awaited<ReturnType<typeof serve>> | undefined;
  let stopping = false;
  /** A signal that came while the server was starting: acted on once it has started. */
  let signalledWhileStarting: string | null = null;
  // Exiting joins libuv's thread pool, which waits for a file operation stuck
  // in the kernel (a hung NFS mount, a FIFO): before an exit that may follow
  // such a hang, the signal handlers go, so a further SIGTERM ends the process
  // by its default action instead of being caught by a loop that never runs.
  const exitUnfinished = () => {
    process.removeAllListeners('SIGTERM');
    process.removeAllListeners('SIGINT');
    process.exit(EXIT_UNFINISHED_SHUTDOWN);
  };
  const stop = (signal: string) => {
    if (server === undefined) {
      // Still starting (opening the store, loading the filter, starting
      // workers): a second signal exits now, the first stops once started.
      if (signalledWhileStarting !== null) {
        log.error({ signal }, 'second signal while starting: exiting');
        exitUnfinished();
      }
      signalledWhileStarting = signal;
      log.info({ signal }, 'signal while starting: stopping once started');
      return;
    }
    // A second signal means "now": exit without finishing the drain. Every
    // committed batch is already durable in LMDB, so nothing committed is lost.
    if (stopping) {
      log.error({ signal, waitingFor: server.waitingFor() }, 'second signal: exiting without finishing the shutdown');
      void server.closeNow().finally(exitUnfinished);
      return;
    }
    stopping = true;
    server.shutdown(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        if (!(err instanceof ShutdownTimeout)) {
          log.error({ err }, 'shutdown failed');
          process.exit(1);
        }
        log.fatal({ waitingFor: err.waitingFor }, 'exiting with the shutdown unfinished');
        exitUnfinished();
      },
    );
  };
  // Before start-up: a signal with no handler would end the process by its
  // default action, mid-write, without the shutdown's store close.
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
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
  if (signalledWhileStarting !== null) stop(signalledWhileStarting);
  return new Promise<number>(() => {}); // runs until a signal
}
