#!/usr/bin/env node
// Thin launcher: the CLI is compiled from src/cli/main.ts (`npm run build`).
import('../dist/src/cli/main.js')
  .then((m) => m.main(process.argv.slice(2)))
  .catch((err) => {
    if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/src/cli/main.js')) {
      console.error('segd: not built yet — run `npm run build` (npm start does it for you)');
    } else {
      console.error(err);
    }
    process.exit(1);
  });
