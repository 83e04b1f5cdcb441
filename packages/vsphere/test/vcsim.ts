/**
 * The simulator for integration tests: infra/vcsim/start.sh per test (its own name, port and CA),
 * the driver for administrator actions, a recording ConnectorHandlers, and polling with deadlines.
 */
import type {
  ConnectorCursor,
  ConnectorHandlers,
  PlatformEvent,
  PlatformHost,
  PlatformState,
  PlatformVm,
} from '../src/index.js';

export { ROOT, skipReason, startSim, type HostRow, type Sim, type VmRow } from '@cordon/testkit';

/** Poll `fn` until it returns a value other than undefined/false, or fail after the deadline. */
export async function until<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
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
