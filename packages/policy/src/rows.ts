/**
 * VM rows with their protection (cordon vms, the manager's inventory) and a VM's assignments
 * (cordon assignments): read from the topics here, or computed by vmRows() from tables a
 * service follows.
 */
import { readRange, readTable, type Bus } from '@cordon/bus';
import {
  codecFor,
  TOPICS,
  type AgentRecord,
  type Assignment,
  type InventoryRecord,
  type TopicName,
  type TopicValues,
} from '@cordon/schemas';

/** One VM, as the commands print it (JSON lines or a table). */
export interface VmRow {
  id: string;
  name: string;
  host: string | null;
  power: string | null;
  guest_os: string | null;
  macs: string[];
  ips: string[];
  snapshot: string | null;
  source: string;
  /** From the coordinator's assignment (the inventory topic only: a platform snapshot has none). */
  protection?: string | null;
  enforcer?: string | null;
  agent_state?: string | null;
  policy_version?: number | null;
  /** How long a running VM has had no protector acknowledging its assignment (ms; 0: protected). */
  gap_ms?: number | null;
}

/** The current records of a compacted topic, decoded; a record that does not decode is left out. */
async function decodedTable<N extends TopicName>(bus: Bus, topic: N): Promise<Array<TopicValues[N]>> {
  const codec = codecFor(topic);
  const out: Array<TopicValues[N]> = [];
  for (const [, r] of await readTable(bus, topic)) {
    if (!r.value) continue;
    try {
      out.push(codec.decode(r.value));
    } catch {
      // left out: what a command shows must not stop at one bad record
    }
  }
  return out;
}

/** The inventory topic's VMs (what the running pipeline knows), host names resolved from its host records. */
export async function rowsOfTopic(bus: Bus): Promise<VmRow[]> {
  const recs = await decodedTable(bus, TOPICS.inventory);
  // an unreadable assignment shows as none, an unreadable heartbeat counts as none
  const assignments = new Map((await decodedTable(bus, TOPICS.assignments)).map((a) => [a.vm, a] as const));
  const sensors = new Map((await decodedTable(bus, TOPICS.agents)).map((a) => [a.agent, a] as const));
  return vmRows(recs, assignments, sensors, Date.now() * 1000);
}

/**
 * The VM rows of an inventory, with their protection from the coordinator's assignments and
 * the sensors' heartbeats (by agent id): pure, so the manager computes the same rows from the
 * tables it follows.
 */
export function vmRows(
  recs: Iterable<InventoryRecord>,
  assignments: ReadonlyMap<string, Assignment>,
  sensors: ReadonlyMap<string, AgentRecord>,
  nowUs: number,
): VmRow[] {
  const all = [...recs];
  const hostName = new Map(all.filter((r) => r.kind === 'host').map((r) => [r.id, r.name]));
  return all.filter((r) => r.kind === 'vm').map((r) => vmRow(r, hostName, assignments, sensors, nowUs));
}

/** One VM's row (see vmRows); `hostName` maps host ids to names. */
export function vmRow(
  r: InventoryRecord,
  hostName: ReadonlyMap<string, string>,
  assignments: ReadonlyMap<string, Assignment>,
  sensors: ReadonlyMap<string, AgentRecord>,
  nowUs: number,
): VmRow {
  const protectionOf = (vm: InventoryRecord) => {
    const a = assignments.get(vm.id);
    if (!a)
      return {
        protection: null,
        enforcer: null,
        agent_state: null,
        policy_version: null,
        gap_ms: vm.power === 'on' ? null : 0,
      };
    const agentRec = a.agent
      ? sensors.get(a.agent)
      : [...sensors.values()].find((s) => s.vm === vm.id && s.kind === 'agent');
    const agentState = agentRec
      ? `${agentRec.status}, heard ${Math.max(0, Math.round((nowUs - agentRec.heartbeat_us) / 1000))} ms ago`
      : null;
    const protector = a.enforcer
      ? (sensors.get(a.enforcer.replace(/^agent:/, '')) ?? sensors.get(a.enforcer))
      : undefined;
    const acked = protector !== undefined && (protector.acks[vm.id] ?? 0) >= a.epoch;
    const gap = a.mode === 'none' || vm.power !== 'on' ? 0 : acked ? 0 : Math.round((nowUs - a.since_us) / 1000);
    return {
      protection: a.mode,
      enforcer: a.enforcer,
      agent_state: agentState,
      policy_version: a.policy_version,
      gap_ms: gap,
    };
  };
  return {
    id: r.id,
    name: r.name,
    host: r.host === null ? null : (hostName.get(r.host) ?? r.host),
    power: r.power,
    guest_os: r.guest_os,
    macs: r.nics.map((n) => n.mac),
    ips: r.nics.flatMap((n) => n.ips),
    snapshot: r.snapshot ?? null,
    source: r.source ?? 'inventory file (cordon inventory apply)',
    ...protectionOf(r),
  };
}

/** One assignment of a VM, as `cordon assignments --history` prints it. */
export interface AssignmentRow {
  epoch: number;
  since: string;
  mode: string;
  host: string | null;
  agent: string | null;
  enforcer: string | null;
  handoff: string;
  /** mode agent: the agent's clock less its host's, which it was told to correct by ('-': none). */
  clock: string;
  /** Taking the VM back from a lost agent: whose frames the watchdog recovered, from when ('-': none). */
  recovery: string;
  reason: string;
}

const iso = (us: number) => (us > 0 ? new Date(Math.floor(us / 1000)).toISOString() : '-');

/** A VM's assignments, oldest first (the topic is compacted: history is what compaction left). */
export async function assignmentsOf(bus: Bus, vm: string, history: boolean): Promise<AssignmentRow[]> {
  const out: Assignment[] = [];
  await readRange(bus, TOPICS.assignments, (r) => {
    if (r.key?.toString() !== vm || !r.value) return;
    try {
      out.push(codecFor(TOPICS.assignments).decode(r.value));
    } catch {
      // skipped: an unreadable record
    }
  });
  out.sort((a, b) => a.epoch - b.epoch || a.since_us - b.since_us);
  const rows = out.map((a) => ({
    epoch: a.epoch,
    since: iso(a.since_us),
    mode: a.mode,
    host: a.host,
    agent: a.agent,
    enforcer: a.enforcer,
    handoff: iso(a.handoff_us),
    clock: a.clock_offset_us ? `${a.clock_offset_us > 0 ? '+' : ''}${(a.clock_offset_us / 1000).toFixed(1)} ms` : '-',
    recovery: a.recovery_of ? `${a.recovery_of} from ${iso(a.recovery_from_us)}` : '-',
    reason: a.reason,
  }));
  return history ? rows : rows.slice(-1);
}
