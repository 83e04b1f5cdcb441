import type { AgentRecord, Assignment, InventoryRecord } from '@cordon/schemas';

/**
 * Network gating (the pure part): a VM whose policy says `gate` (`coordination.gate`, or
 * `vms.<vm>.gate`) has its traffic held on its host's bridge from the moment it powers on until
 * its protection is current — an assignment names its protector and that protector applies it
 * — and then released. What is held is decided here; gate-bridge.ts puts it in nftables.
 *
 * The hold is in place *before* the VM's first frame: a gated VM that is off (or just appeared
 * on this host, off) is already held, so a power-on is never seen too late. A VM that migrates
 * in while running is not held again (its protection follows it: the assignment moves with
 * it), and a VM released stays released until it powers off. After a restart of the watchdog
 * the table it left is the memory of what was still held.
 */
export interface GateVm {
  id: string;
  host: string | null;
  power: string | null;
  macs: string[];
  /** When it last powered on (the platform's record of it), µs. */
  poweredOnUs: number;
}

/** Why a VM's protection is not current yet, or null when it is. */
export function whyNotCurrent(o: {
  vm: string;
  me: string;
  assignment: Assignment | undefined;
  /** The assignment epoch this watchdog's capture applies for the VM (0: none), or null without capture. */
  watchdogEpoch: number | null;
  /** The assigned agent's newest record. */
  agent: AgentRecord | undefined;
  heartbeatTimeoutMs: number;
  nowUs: number;
}): string | null {
  const a = o.assignment;
  if (!a) return 'no assignment yet';
  if (a.mode === 'none') return 'its assignment names no protector';
  if (a.mode === 'watchdog') {
    if (a.host !== o.me) return `it is assigned to the watchdog of ${a.host ?? 'no host'}`;
    if (o.watchdogEpoch === null) return 'this watchdog does not capture (capture.enabled is off)';
    if (o.watchdogEpoch < a.epoch) return `this watchdog has not applied assignment ${a.epoch} yet`;
    return null;
  }
  const r = o.agent;
  if (!r) return `agent ${a.agent ?? '?'} has not reported`;
  let incarnation: string | null = null;
  try {
    incarnation = (JSON.parse(r.identity) as { incarnation?: string }).incarnation ?? null;
  } catch {
    // an unreadable identity is not the assigned incarnation
  }
  if (a.incarnation !== null && incarnation !== a.incarnation)
    return `the assigned start of agent ${r.agent} has not reported`;
  if (r.status === 'stopping') return `agent ${r.agent} is stopping`;
  if ((o.nowUs - r.heartbeat_us) / 1000 > o.heartbeatTimeoutMs) return `agent ${r.agent} is silent`;
  if ((r.acks[o.vm] ?? 0) < a.epoch) return `agent ${r.agent} has not applied assignment ${a.epoch} yet`;
  if (r.policy_version < a.policy_version)
    return `agent ${r.agent} applies policy ${r.policy_version}, not yet ${a.policy_version}`;
  if (!r.capture?.active) return `agent ${r.agent} does not capture`;
  return null;
}

export interface Release {
  vm: string;
  /** From its power-on to the release, ms. */
  ms: number;
}

export class GateBook {
  readonly vms = new Map<string, GateVm>();
  /** Gated VMs of this host → since when (µs). */
  readonly held = new Map<string, number>();

  constructor(
    readonly me: string,
    /** Does the policy gate this VM? */
    private readonly gates: (vm: string) => boolean,
  ) {}

  /**
   * One inventory record (null: the VM is gone). `restoring`: the table as it was at start —
   * `wasHeld` says which of its VMs the watchdog's table still held.
   */
  inventory(
    id: string,
    rec: InventoryRecord | null,
    nowUs: number,
    restoring = false,
    wasHeld: (macs: string[]) => boolean = () => false,
  ): void {
    const prev = this.vms.get(id);
    if (!rec) {
      this.vms.delete(id);
      this.held.delete(id);
      return;
    }
    const on = rec.power === 'on';
    const poweredOn = on && (!prev || prev.power !== 'on');
    const vm: GateVm = {
      id,
      host: rec.host,
      power: rec.power,
      macs: rec.nics.map((n) => n.mac.toLowerCase()),
      poweredOnUs: poweredOn ? rec.updated_us || nowUs : (prev?.poweredOnUs ?? 0),
    };
    this.vms.set(id, vm);
    if (vm.host !== this.me || !this.gates(id)) {
      this.held.delete(id);
      return;
    }
    if (restoring) {
      if (!on || wasHeld(vm.macs)) this.held.set(id, on ? vm.poweredOnUs : nowUs);
      return;
    }
    if (!on) this.held.set(id, this.held.get(id) ?? nowUs);
    // powered on here (not migrated in running): held until its protection is current
    else if (poweredOn && !(prev?.power === 'on' && prev.host !== this.me))
      this.held.set(id, this.held.get(id) ?? nowUs);
  }

  /** The policy changed: VMs no longer gated are let go; gated ones that are off are held. */
  policyChanged(nowUs: number): void {
    for (const id of [...this.held.keys()]) if (!this.gates(id)) this.held.delete(id);
    for (const vm of this.vms.values())
      if (vm.host === this.me && vm.power !== 'on' && this.gates(vm.id) && !this.held.has(vm.id))
        this.held.set(vm.id, nowUs);
  }

  /** Release the running VMs whose protection is current. */
  release(current: (vm: string) => boolean, nowUs: number): Release[] {
    const out: Release[] = [];
    for (const id of [...this.held.keys()]) {
      const vm = this.vms.get(id);
      if (vm?.power !== 'on' || !current(id)) continue;
      this.held.delete(id);
      out.push({ vm: id, ms: vm.poweredOnUs > 0 ? (nowUs - vm.poweredOnUs) / 1000 : 0 });
    }
    return out;
  }

  /** The MACs held now. */
  macs(): Set<string> {
    const out = new Set<string>();
    for (const id of this.held.keys()) for (const m of this.vms.get(id)?.macs ?? []) out.add(m);
    return out;
  }
}
