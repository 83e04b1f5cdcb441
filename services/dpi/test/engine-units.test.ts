import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// The native engine's own unit tests (Rust: HTTP parser, rule matching, the response stream
// scan that finds file_data patterns across packets) run inside the suite, so CI exercises
// them too, with the same prefilter (Hyperscan when libhs is installed) as the built addon.
const here = dirname(fileURLToPath(import.meta.url));
// services/dpi/dist/test → repo root → native
const native = resolve(here, '../../../../native');
const haveCargo = spawnSync('cargo', ['--version'], { encoding: 'utf8' }).status === 0;
const haveHs = existsSync('/usr/include/hs/hs.h') || spawnSync('pkg-config', ['--exists', 'libhs']).status === 0;

test(
  'native engine unit tests pass (cargo test)',
  { skip: !haveCargo && 'cargo not installed', timeout: 20 * 60_000 },
  () => {
    const args = [
      'test',
      '--release',
      '--locked',
      '--lib',
      '--no-default-features',
      ...(haveHs ? ['--features', 'hyperscan'] : []),
    ];
    const r = spawnSync('cargo', args, {
      cwd: native,
      encoding: 'utf8',
      env: { ...process.env, CARGO_BUILD_JOBS: process.env.CARGO_BUILD_JOBS ?? '2' },
      maxBuffer: 64 << 20,
    });
    const out = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.status, 0, out.slice(-4000));
    const m = /test result: ok\. (\d+) passed; 0 failed/.exec(out);
    assert.ok(m, out.slice(-2000));
    assert.ok(Number(m[1]) >= 20, `only ${m[1]} native tests ran`);
  },
);
