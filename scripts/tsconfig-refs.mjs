#!/usr/bin/env node
// The root tsconfig's project references are every workspace folder with a tsconfig.json
// (packages/*, services/*, test): derived, so a new package or stage is one folder, not one
// more registry to edit. Rewrites tsconfig.json only when the list changed.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const dirs = [];
for (const parent of ['packages', 'services']) {
  for (const d of readdirSync(join(root, parent)).sort())
    if (existsSync(join(root, parent, d, 'tsconfig.json'))) dirs.push(`${parent}/${d}`);
}
if (existsSync(join(root, 'test', 'tsconfig.json'))) dirs.push('test');
const want = `${JSON.stringify({ files: [], references: dirs.map((path) => ({ path })) }, null, 2)}\n`;
const file = join(root, 'tsconfig.json');
if (readFileSync(file, 'utf8') !== want) {
  writeFileSync(file, want);
  process.stderr.write(`tsconfig-refs: tsconfig.json now references ${dirs.length} projects\n`);
}
