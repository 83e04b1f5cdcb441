import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import {
  DEFAULT_SIDECAR_PATH,
  type ConnectorCursor,
  type ConnectorHandlers,
  type PlatformEvent,
  type PlatformHost,
  type PlatformState,
  type PlatformVm,
} from '../src/index.js';

export const sidecarBuilt = existsSync(DEFAULT_SIDECAR_PATH);

export function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-libvirt-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A stand-in sidecar: a node script that reads its configuration line and then plays the
 * script of its run number (1, 2, …; counted in a file), one entry per line: a JSON value is
 * printed as a line, a string is printed raw (for hostile output), {exit: n} exits, {wait: ms} waits.
 */
export function fakeSidecar(dir: string, runs: Array<Array<unknown>>): string {
  const path = join(dir, 'fake-sidecar.mjs');
  writeFileSync(join(dir, 'runs.json'), JSON.stringify(runs));
  writeFileSync(
    path,
    `#!/usr/bin/env node
import { readFileSync, writeFileSync, existsSync, appendFileSync } from 'node:fs';
const dir = ${JSON.stringify(dir)};
const counter = dir + '/count';
const n = existsSync(counter) ? Number(readFileSync(counter, 'utf8')) + 1 : 1;
writeFileSync(counter, String(n));
const runs = JSON.parse(readFileSync(dir + '/runs.json', 'utf8'));
const script = runs[Math.min(n, runs.length) - 1];
let config = '';
process.stdin.on('data', (b) => { config += b; });
process.stdin.on('end', () => process.exit(0));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
while (!config.includes('\\n')) await sleep(5);
appendFileSync(dir + '/configs', config);
for (const step of script) {
  if (typeof step === 'string') { await new Promise((r) => process.stdout.write(step, r)); continue; }
  if (step && typeof step === 'object' && 'exit' in step) process.exit(step.exit);
  if (step && typeof step === 'object' && 'wait' in step) { await sleep(step.wait); continue; }
  await new Promise((r) => process.stdout.write(JSON.stringify(step) + '\\n', r));
}
await sleep(1e9);
`,
  );
  chmodSync(path, 0o755);
  return path;
}

export function runCount(dir: string): number {
  const counter = join(dir, 'count');
  return existsSync(counter) ? Number(readFileSync(counter, 'utf8')) : 0;
}

/** Records everything a connector hands its handlers, in order. */
export class Recorder implements ConnectorHandlers {
  readonly calls: string[] = [];
  readonly events: PlatformEvent[] = [];
  readonly cursors: ConnectorCursor[] = [];
  readonly syncs: PlatformState[] = [];
  readonly vms = new Map<string, PlatformVm>();
  readonly hosts: PlatformHost[] = [];
  readonly statuses: Array<{ connected: boolean; error?: { code: string; message: string } }> = [];

  onSync(state: PlatformState): void {
    this.calls.push('sync');
    this.syncs.push(state);
    for (const vm of state.vms) this.vms.set(vm.id, vm);
  }
  onVm(vm: PlatformVm): void {
    this.calls.push(`vm:${vm.name}:${vm.power}`);
    this.vms.set(vm.id, vm);
  }
  onVmRemoved(id: string): void {
    this.calls.push(`removed:${id}`);
    this.vms.delete(id);
  }
  onHost(host: PlatformHost): void {
    this.calls.push(`host:${host.id}:${host.connection}`);
    this.hosts.push(host);
  }
  onEvent(ev: PlatformEvent, cursor: ConnectorCursor): void {
    this.calls.push(`event:${ev.kind}:${ev.vmName}`);
    this.events.push(ev);
    this.cursors.push(cursor);
  }
  onStatus(s: { connected: boolean; error?: { code: string; message: string } }): void {
    this.statuses.push(s);
  }
}

/** Polls `check` until it returns true or the deadline passes (then fails with `what`). */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
  everyMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
