import type { Assignment, AssignmentMode, CaptureStatus } from './types.js';
import type { Verdict } from './trust.js';

/**
 * The pure part of the coordinator: what protects a VM now, from what is known of the VM, its
 * agents and the current assignment. The same inputs always give the same answer, so replaying
 * the coordinator's inputs replays its decisions.
 *
 * Hand-offs split the VM's traffic by packet time (`handoffUs`): frames before it are the
 * previous protector's, frames from it on the new one's. Watchdogs and agents keep a short
 * buffer of recent frames, so the new protector starts from the boundary even when it learns
 * of the assignment later — no frame inspected twice, none by nobody:
 * - watchdog → agent: the boundary is set `handoffDelayMs` ahead, so both sides know it before
 *   it comes (make before break);
 * - agent → watchdog (the agent went silent): the boundary is the last frame the agent said it
 *   inspected — the watchdog inspects the rest from its buffer;
 * - a migration: the boundary is when the VM moved; a power-on: when nobody protected it.
 */
export interface VmState {
  id: string;
  host: string | null;
  power: string | null;
  /** When the VM last changed host (its migration), µs. */
  hostSinceUs: number;
}

export interface AgentState {
  id: string;
  vm: string;
  verdict: Verdict;
  version: string;
  policyVersion: number;
  heartbeatUs: number;
  status: 'enrolled' | 'running' | 'stopping';
  capture: CaptureStatus | null;
  /** The last heartbeat at which its frame counter had moved (µs; 0: never seen moving). */
  inspectingUs: number;
}

export interface Coordination {
  heartbeatTimeoutMs: number;
  requiredAgentVersion: string;
  handoffDelayMs: number;
  gate: boolean;
}

export interface Desired {
  mode: AssignmentMode;
  host: string | null;
  agent: string | null;
  enforcer: string | null;
  reason: string;
  handoffUs: number;
  gated: boolean;
}

/** a ≥ b for MAJOR.MINOR.PATCH versions (anything unparsable is older than everything). */
export function versionAtLeast(a: string, b: string): boolean {
  const pa = /^(\d+)\.(\d+)\.(\d+)/.exec(a);
  const pb = /^(\d+)\.(\d+)\.(\d+)/.exec(b);
  if (!pb) return true;
  if (!pa) return false;
  for (let i = 1; i <= 3; i++) {
    const d = Number(pa[i]) - Number(pb[i]);
    if (d !== 0) return d > 0;
  }
  return true;
}

/** Why this agent cannot protect its VM now, or null when it can (`promote`: it is not protecting it yet). */
export function agentUnfit(a: AgentState, c: Coordination, policyVersion: number, nowUs: number, promote: boolean): string | null {
  if (!a.verdict.trusted) return `agent ${a.id} is not trusted: ${a.verdict.detail}`;
  if (a.status === 'stopping') return `agent ${a.id} is stopping`;
  const silentMs = (nowUs - a.heartbeatUs) / 1000;
  if (silentMs > c.heartbeatTimeoutMs) return `agent ${a.id} has been silent for ${(silentMs / 1000).toFixed(1)} s`;
  if (!versionAtLeast(a.version, c.requiredAgentVersion)) return `agent ${a.id} runs ${a.version}, older than the required ${c.requiredAgentVersion}`;
  if (a.policyVersion < policyVersion) return `agent ${a.id} applies policy version ${a.policyVersion}, not yet ${policyVersion}`;
  if (!a.capture?.active) return `agent ${a.id} does not capture its VM's traffic`;
  if (promote && (a.inspectingUs === 0 || (nowUs - a.inspectingUs) / 1000 > c.heartbeatTimeoutMs)) return `agent ${a.id} has not been seen inspecting yet`;
  return null;
}

export function decide(vm: VmState | undefined, agents: readonly AgentState[], current: Assignment | undefined, c: Coordination, policyVersion: number, nowUs: number): Desired {
  const none = (reason: string): Desired => ({
    mode: 'none',
    host: vm?.host ?? null,
    agent: null,
    enforcer: null,
    reason,
    handoffUs: current?.mode === 'none' ? current.handoff_us : nowUs,
    gated: false,
  });
  if (!vm) return none('the VM is not in the inventory');
  if (vm.power !== 'on') return none(vm.power === null ? 'the VM\'s power state is not known' : `the VM is ${vm.power === 'off' ? 'powered off' : vm.power}`);

  // retention needs a fresh, current agent; promotion also needs it seen inspecting
  const keep = current?.mode === 'agent' ? agents.find((a) => a.id === current.agent) : undefined;
  const reasons: string[] = [];
  if (keep) {
    const why = agentUnfit(keep, c, policyVersion, nowUs, false);
    if (!why) return { mode: 'agent', host: vm.host, agent: keep.id, enforcer: `agent:${keep.id}`, reason: current!.reason, handoffUs: current!.handoff_us, gated: c.gate };
    reasons.push(why);
  }
  const candidates = agents
    .filter((a) => a.id !== keep?.id)
    .map((a) => ({ a, why: agentUnfit(a, c, policyVersion, nowUs, true) }))
    .sort((x, y) => y.a.heartbeatUs - x.a.heartbeatUs || (x.a.id < y.a.id ? -1 : 1));
  const fit = candidates.find((x) => x.why === null)?.a;
  if (fit) {
    return {
      mode: 'agent',
      host: vm.host,
      agent: fit.id,
      enforcer: `agent:${fit.id}`,
      reason: `agent ${fit.id} is current (${fit.version}, policy ${fit.policyVersion}) and inspecting`,
      handoffUs: nowUs + c.handoffDelayMs * 1000,
      gated: c.gate,
    };
  }
  for (const x of candidates) reasons.push(x.why!);
  if (vm.host === null) return none('the VM runs on no known host');
  const reason = reasons.length ? `watchdog: ${reasons[0]}` : 'watchdog: the VM has no agent';
  let handoffUs: number;
  if (current?.mode === 'watchdog' && current.host === vm.host) handoffUs = current.handoff_us;
  else if (current?.mode === 'agent') {
    // from the last frame the agent said it inspected: the watchdog inspects the rest from its buffer
    const lost = agents.find((a) => a.id === current.agent);
    const until = lost?.capture?.inspected_until_us ?? 0;
    handoffUs = Math.max(current.handoff_us, Math.min(until > 0 ? until + 1 : nowUs, nowUs));
  } else if (current?.mode === 'watchdog') handoffUs = Math.min(Math.max(vm.hostSinceUs, current.handoff_us), nowUs); // migrated
  else handoffUs = current ? Math.min(current.since_us, nowUs) : 0; // nobody protected it: everything the watchdog holds
  return { mode: 'watchdog', host: vm.host, agent: null, enforcer: `watchdog:${vm.host}`, reason, handoffUs, gated: c.gate };
}

/** A new assignment is written when who protects the VM changes (not for a new reason alone). */
export function changed(cur: Assignment | undefined, d: Desired): boolean {
  return !cur || cur.mode !== d.mode || cur.host !== d.host || cur.agent !== d.agent || cur.gated !== d.gated;
}
