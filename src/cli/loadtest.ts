// `segd loadtest …`: the harness (src/loadtest/) drives load with generators
// that are dev dependencies (autocannon, hdr-histogram-js, fastify, redis), so
// it is loaded only when this command runs: `segd serve` never depends on it,
// and a production install without dev dependencies still starts.
export async function loadtestCommand(argv: string[]): Promise<number> {
  let mod: typeof import('../loadtest/cli.js');
  try {
    mod = await import('../loadtest/cli.js');
  } catch (err) {
    const e = err as { code?: string; message: string };
    if (e.code === 'ERR_MODULE_NOT_FOUND') {
      throw new Error(
        `the load-test harness's dev dependencies are missing (${e.message.split('\n')[0]}): run it from a checkout after \`npm ci && npm run build\``,
        { cause: err },
      );
    }
    throw err;
  }
  return mod.loadtestMain(argv);
}
