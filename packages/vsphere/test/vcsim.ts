/**
 * The simulator for integration tests: infra/vcsim/start.sh per test (its own name, port and CA),
 * the driver for administrator actions, a recording ConnectorHandlers, and polling with deadlines.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { TestContext } from 'node:test';
import type { ConnectorCursor, ConnectorHandlers, PlatformEvent, PlatformHost, PlatformState, PlatformVm } from '../src/index.js';

const run = promisify(execFile);
export const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const BIN = `${ROOT}infra/vcsim/bin`;

/** Why the simulator cannot run here, or null when it can. */
export function skipReason(): string | null {
  if (!existsSync(`${BIN}/vcsim`) || !existsSync(`${BIN}/vcsim-driver`)) {
    let go = false;
    try {
      execFileSync('go', ['version'], { stdio: 'ignore' });
      go = true;
    } catch {
      // no Go
    }
    return go
      ? 'infra/vcsim/bin is not built: run infra/vcsim/build.sh (scripts/setup.sh does with CORDON_SETUP_TEST=1)'
      : 'Go is not installed and infra/vcsim/bin is not built: the vSphere simulator cannot run';
  }
  return null;
}

export interface VmRow {
  instanceUuid: string;
  name: string;
  moref: string;
  host: string;
  hostName: string;
  power: 'poweredOn' | 'poweredOff' | 'suspended';
  template: boolean;
}
export interface HostRow {
  moref: string;
  name: string;
  parent: string;
  parentType: string;
  connection: string;
  maintenance: boolean;
}

export interface Sim {
  url: string;
  ca: string;
  username: string;
  password: string;
  driver<T = Record<string, unknown>>(...args: string[]): Promise<T>;
  list(): Promise<VmRow[]>;
  hosts(): Promise<HostRow[]>;
}

let counter = 0;

/** Start a simulator for this test; it is stopped when the test ends, pass or fail. */
export async function startSim(t: TestContext, args: string[]): Promise<Sim> {
  const name = `test-${process.pid}-${++counter}`;
  const env = { ...process.env, VCSIM_NAME: name };
  t.after(async () => {
    await run('bash', [`${ROOT}infra/vcsim/stop.sh`], { env }).catch(() => undefined);
  });
  const { stdout } = await run('bash', [`${ROOT}infra/vcsim/start.sh`, ...args], { env, timeout: 180_000 });
  const vars = Object.fromEntries(stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  const denv = { ...process.env, VCSIM_URL: vars.VCSIM_URL, VCSIM_CA: vars.VCSIM_CA, VCSIM_USERNAME: vars.VCSIM_USERNAME, VCSIM_PASSWORD: vars.VCSIM_PASSWORD };
  const driver = async <T>(...a: string[]): Promise<T> => {
    const { stdout: out } = await run(`${BIN}/vcsim-driver`, a, { env: denv, timeout: 120_000, maxBuffer: 64 << 20 });
    return JSON.parse(out) as T;
  };
  return {
    url: vars.VCSIM_URL!,
    ca: vars.VCSIM_CA!,
    username: vars.VCSIM_USERNAME!,
    password: vars.VCSIM_PASSWORD!,
    driver,
    list: () => driver<VmRow[]>('list'),
    hosts: () => driver<HostRow[]>('hosts'),
  };
}

/** Poll `fn` until it returns a value other than undefined/false, or fail after the deadline. */
export async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Handlers that record everything, in order. */
export class Recorder implements ConnectorHandlers {
  readonly syncs: PlatformState[] = [];
  readonly vms = new Map<string, PlatformVm>();
  readonly removed: string[] = [];
  readonly hostUpdates: PlatformHost[] = [];
  readonly events: PlatformEvent[] = [];
  readonly cursors: ConnectorCursor[] = [];
  readonly statuses: Array<{ connected: boolean; error?: { code: string; message: string } }> = [];
  /** Every handler call, for checking they never overlap. */
  private inFlight = 0;
  overlapped = false;

  private async enter(fn: () => void): Promise<void> {
    if (this.inFlight++ > 0) this.overlapped = true;
    await new Promise((r) => setImmediate(r)); // a handler that really awaits something
    fn();
    this.inFlight--;
  }
  onSync(state: PlatformState): Promise<void> {
    return this.enter(() => {
      this.syncs.push(state);
      this.vms.clear();
      for (const vm of state.vms) this.vms.set(vm.id, vm);
    });
  }
  onVm(vm: PlatformVm): Promise<void> {
    return this.enter(() => this.vms.set(vm.id, vm));
  }
  onVmRemoved(id: string): Promise<void> {
    return this.enter(() => {
      this.removed.push(id);
      this.vms.delete(id);
    });
  }
  onHost(host: PlatformHost): Promise<void> {
    return this.enter(() => this.hostUpdates.push(host));
  }
  onEvent(ev: PlatformEvent, cursor: ConnectorCursor): Promise<void> {
    return this.enter(() => {
      this.events.push(ev);
      this.cursors.push(cursor);
    });
  }
  onStatus(s: { connected: boolean; error?: { code: string; message: string } }): void {
    this.statuses.push(s);
  }
  /** The first event of that kind for that VM, once it has arrived. */
  find(kind: string, vm: string): PlatformEvent | undefined {
    return this.events.find((e) => e.kind === kind && e.vm === vm);
  }
}

/** Dedup by id, keeping the first delivery. */
export function dedup(events: PlatformEvent[]): PlatformEvent[] {
  const seen = new Set<string>();
  return events.filter((e) => (seen.has(e.id) ? false : (seen.add(e.id), true)));
}
