#!/usr/bin/env node
import { main } from '../dist/src/main.js';

// Everything Cordon writes (the data dir, the embedded ClickHouse and bus, rule sets, agent
// state) holds tokens, log lines and detections: the owner's alone, whatever the caller's umask.
process.umask(0o077);

// `cordon alerts tail | head`: a reader that went away ends the command, quietly
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`cordon: ${err?.code ? `${err.code}: ` : ''}${err?.message ?? err}\n`);
    process.exitCode = 1;
  },
);
