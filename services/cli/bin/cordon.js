#!/usr/bin/env node
import { main } from '../dist/src/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`cordon: ${err?.code ? `${err.code}: ` : ''}${err?.message ?? err}\n`);
    process.exitCode = 1;
  },
);
