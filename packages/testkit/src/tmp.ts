import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What `tempDir` needs of a test (node:test's TestContext, or a suite's `after`). */
export interface AfterHook {
  after(fn: () => void | Promise<void>): void;
}

/**
 * A fresh directory under the OS temp dir, removed when `t` ends — on every path, a failed
 * assertion included — so a test run leaves no `cordon-*` directories behind.
 */
export function tempDir(t: AfterHook, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `cordon-${prefix}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
