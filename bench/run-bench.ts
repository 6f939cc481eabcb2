// How a benchmark ends: an error is reported and sets the exit status, then
// everything the run started is stopped and the process exits (autocannon and
// the drivers can leave timers behind; nothing of ours is still running).
import { cleanup } from '../src/loadtest/processes.js';

export function runBench(
  main: () => Promise<unknown>,
  onError: (err: unknown) => void = (err) => {
    console.error(err);
    process.exitCode = 1;
  },
): void {
  main()
    .catch(onError)
    .finally(async () => {
      await cleanup();
      process.exit();
    });
}
