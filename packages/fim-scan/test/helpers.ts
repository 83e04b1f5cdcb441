import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, Metrics, silentLogger, type Context } from '@cordon/runtime';
import type { FileEvent } from '@cordon/schemas';
import { attrValue, FILE_ATTRIBUTES, type FileAttribute } from '../src/index.js';

export interface Sandbox {
  dir: string;
  tree: string;
  state: string;
  ctx: Context;
  metrics: Metrics;
  cleanup(): void;
}

/** A temp dir with a small watched tree (tree/etc/*.conf, tree/bin/*) and a state dir. */
export function sandbox(prefix = 'cordon-fim-'): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const tree = join(dir, 'tree');
  const state = join(dir, 'state');
  mkdirSync(join(tree, 'etc'), { recursive: true });
  mkdirSync(join(tree, 'bin'), { recursive: true });
  for (let i = 0; i < 5; i++) writeFileSync(join(tree, 'etc', `app${i}.conf`), `setting=${i}\n`);
  for (let i = 0; i < 3; i++)
    writeFileSync(join(tree, 'bin', `tool${i}`), Buffer.alloc(3000 + i, i + 1), { mode: 0o755 });
  const metrics = new Metrics();
  return {
    dir,
    tree,
    state,
    metrics,
    ctx: createContext({ log: silentLogger, metrics }),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The attributes that differ between an event's before and after. */
export function diffOf(e: FileEvent): FileAttribute[] {
  if (!e.before || !e.after) return [];
  return FILE_ATTRIBUTES.filter(
    (a) => JSON.stringify(attrValue(e.before!, a)) !== JSON.stringify(attrValue(e.after!, a)),
  );
}

export function byPath(events: FileEvent[], path: string): FileEvent[] {
  return events.filter((e) => e.path === path);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
