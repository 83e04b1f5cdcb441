import type { Assignment, AssignmentMode, CaptureStatus } from './types.js';
import { agentSensor } from '@cordon/schemas';
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
 * - agent → watchdog: a dead agent's (silent, stopped, restarted) from the lease its last
 *   heartbeat announced — it published nothing after it, and the watchdog inspects the rest from
 *   its buffer, with what the agent left before the lease as a recovery; a live one's ahead, past
 *   its lease (see takeBackFrom); never agent → agent;
 * - a migration: the boundary is when the VM moved; a power-on: when nobody protected it (to
 *   the watchdog or straight to an agent already inspecting: a VM's power record can come
 *   after its agent's first heartbeats).
 */
export interface VmState {
  id: string;
  host: string | null;
  power: string | null;
  /** When the VM last changed host (its migration), µs. */
  hostSinceUs: number;
  /** Its host's watchdog's clock less the coordinator's, µs (`ClockOffsets`); null or absent: not measured. */
  hostClockOffsetUs?: number | null;
  /** How many separate moments `hostClockOffsetUs` is measured at (`ClockOffsets.samples`); absent: enough. */
  hostClockSamples?: number;
}

export interface AgentState {
  id: string;
  vm: string;
  /** One start of the agent (its identity's incarnation; "?" when its identity is unreadable). */
  incarnation: string;
  /** Its machine's fingerprint ("" when unknown). */
  hw: string;
  verdict: Verdict;
  version: string;
  policyVersion: number;
  heartbeatUs: number;
  /** The first heartbeat seen of this incarnation, µs. */
  firstSeenUs: number;
  status: 'enrolled' | 'running' | 'stopping';
  capture: CaptureStatus | null;
  /** The last heartbeat at which its frame counter had moved (µs; 0: never seen moving). */
  inspectingUs: number;
  /**
   * Its clock less the coordinator's, µs (`ClockOffsets`, from its heartbeats); null: not
   * measured yet (heartbeats read back at start). The stamps above are its own clock's.
   */
  clockOffsetUs: number | null;
  /** How many heartbeats `clockOffsetUs` is measured from. */
  clockSamples: number;
}

/** When the coordinator got the agent's last heartbeat, on its own clock (µs). */
export function heardUs(a: AgentState): number {
  return a.heartbeatUs - (a.clockOffsetUs ?? 0);
}

export interface Coordination {
  /**
   * Until then (µs), an assigned agent start not known yet is kept: a coordinator that just took
   * the VM over (or started) may not have read it yet, and deciding it is gone would flap.
   */
  learningUntilUs?: number;
  heartbeatTimeoutMs: number;
  requiredAgentVersion: string;
  handoffDelayMs: number;
  gate: boolean;
  /**
   * An agent whose clock is further than this from its host's watchdog's (from the
   * coordinator's while the watchdog's is not measured) does not protect its VM; to take a VM
   * over it must be within half of it.
   */
  maxClockOffsetMs: number;
}

/**
 * Heartbeats an agent's clock is measured from before it takes a VM over: the offset its
 * assignment gives it is fixed for the assignment's life, and the first few heartbeats of a start
 * are the slowest to arrive (each only lowers the estimate).
 */
export const CLOCK_SAMPLES_TO_PROMOTE = 4;

/**
 * An agent that protects its VM is not judged on a clock estimate measured at fewer moments than
 * this (its own, or its host's watchdog's): a coordinator that just started, or took the VM over,
 * has only the late records its reader caught up on, which make every sender look behind. The
 * coordinator before it measured the same clocks well and kept the agent; demoting it here and
 * promoting it again a heartbeat later would be two hand-offs for nothing.
 */
export const CLOCK_SAMPLES_TO_JUDGE = CLOCK_SAMPLES_TO_PROMOTE;

export interface Desired {
  mode: AssignmentMode;
  host: string | null;
  agent: string | null;
  /** mode agent: the incarnation of the agent that protects the VM. */
  incarnation: string | null;
  enforcer: string | null;
  reason: string;
  handoffUs: number;
  gated: boolean;
  /**
   * mode watchdog, taking the VM back from a lost agent: that agent's sensor name and the
   * oldest frame time its frames may be missing from (see `takeBackFrom`); absent otherwise.
   */
  recovery?: { of: string; fromUs: number };
  /** mode agent: the agent's clock less its host's (`Assignment.clock_offset_us`); 0 otherwise. */
  clockOffsetUs: number;
}

/**
 * Offsets this small are left alone: two senders' quickest transits to the coordinator differ by
 * about as much, so correcting them would move a boundary by noise (it matches the consumers'
 * RECOVERY_TOLERANCE_US).
 */
export const CLOCK_CORRECTION_MIN_US = 2000;

/**
 * An agent's clock (`offsetUs`, against the coordinator's) less its host's watchdog's, µs — or
 * less the coordinator's while the watchdog's is not measured (`hostClockOffsetUs` null).
 */
export function againstHostUs(offsetUs: number, hostClockOffsetUs: number | null): number {
  return offsetUs - (hostClockOffsetUs ?? 0);
}

/** What an assignment to agent `a` tells it to apply: its clock less its host's, when measured and not noise. */
export function clockOffsetFor(a: AgentState, hostClockOffsetUs: number | null): number {
  if (a.clockOffsetUs === null) return 0;
  const off = againstHostUs(a.clockOffsetUs, hostClockOffsetUs);
  return Math.abs(off) < CLOCK_CORRECTION_MIN_US ? 0 : Math.round(off);
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
export function agentUnfit(
  a: AgentState,
  c: Coordination,
  policyVersion: number,
  nowUs: number,
  promote: boolean,
  hostClockOffsetUs: number | null = null,
  hostClockSamples = CLOCK_SAMPLES_TO_JUDGE,
): string | null {
  if (!a.verdict.trusted) return `agent ${a.id} is not trusted: ${a.verdict.detail}`;
  if (a.status === 'stopping') return `agent ${a.id} is stopping`;
  const silentMs = (nowUs - heardUs(a)) / 1000;
  if (silentMs > c.heartbeatTimeoutMs) return `agent ${a.id} has been silent for ${(silentMs / 1000).toFixed(1)} s`;
  const skew = clockSkew(a, c, promote, hostClockOffsetUs, hostClockSamples);
  if (skew) return skew;
  if (!versionAtLeast(a.version, c.requiredAgentVersion))
    return `agent ${a.id} runs ${a.version}, older than the required ${c.requiredAgentVersion}`;
  if (a.policyVersion < policyVersion)
    return `agent ${a.id} applies policy version ${a.policyVersion}, not yet ${policyVersion}`;
  if (!a.capture?.active) return `agent ${a.id} does not capture its VM's traffic`;
  if (promote && (a.inspectingUs === 0 || (nowUs - a.inspectingUs) / 1000 > c.heartbeatTimeoutMs))
    return `agent ${a.id} has not been seen inspecting yet`;
  return null;
}

/**
 * Why the agent's clock is too far off to hand its VM's traffic over by time, or null. Measured
 * against its host's watchdog (whose stamps the hand-off meets), else the coordinator.
 */
function clockSkew(
  a: AgentState,
  c: Coordination,
  promote: boolean,
  hostClockOffsetUs: number | null,
  hostClockSamples: number,
): string | null {
  if (promote && a.clockSamples < CLOCK_SAMPLES_TO_PROMOTE)
    return `agent ${a.id}'s clock is being measured (${a.clockSamples} of ${CLOCK_SAMPLES_TO_PROMOTE} heartbeats)`;
  if (a.clockOffsetUs === null) return null;
  const unsettled =
    a.clockSamples < CLOCK_SAMPLES_TO_JUDGE ||
    (hostClockOffsetUs !== null && hostClockSamples < CLOCK_SAMPLES_TO_JUDGE);
  if (!promote && unsettled) return null;
  const limitMs = promote ? c.maxClockOffsetMs / 2 : c.maxClockOffsetMs;
  const offMs = againstHostUs(a.clockOffsetUs, hostClockOffsetUs) / 1000;
  if (Math.abs(offMs) <= limitMs) return null;
  const against = hostClockOffsetUs === null ? "the coordinator's" : "its host's watchdog's";
  return (
    `agent ${a.id}'s clock is ${Math.abs(offMs).toFixed(0)} ms ${offMs > 0 ? 'ahead of' : 'behind'} ${against} ` +
    `(${promote ? 'to take a VM over, within' : 'at most'} ${limitMs} ms: a hand-off meets both clocks)`
  );
}

/** A later start of the same agent on the same machine: the earlier incarnation is gone (a restart, a reverted VM). */
export function successorOf(a: AgentState, agents: readonly AgentState[]): AgentState | undefined {
  return agents.find(
    (b) => b !== a && b.id === a.id && b.verdict.trusted && b.hw === a.hw && b.firstSeenUs > a.firstSeenUs,
  );
}

/**
 * The boundary from which the watchdog takes a VM back from the agent protecting it (`keep`,
 * unfit for `why`). An agent publishes no frame stamped at or after the lease its last
 * heartbeat announced (`inspected_until_us`), so:
 * - a dead agent (silent past the timeout, stopped, or restarted — another incarnation of it
 *   runs on its machine): from its lease, which is in the past by then (or from when its
 *   successor started, if that is earlier: the dead one published nothing after it);
 * - a live agent that must hand over (not trusted any more, stale, not capturing): ahead, after
 *   both its lease and the hand-off delay — it keeps inspecting until then (make before break).
 */
function takeBackFrom(
  keep: AgentState | undefined,
  agents: readonly AgentState[],
  current: Assignment,
  c: Coordination,
  nowUs: number,
): { handoffUs: number; recovery?: { of: string; fromUs: number } } {
  // the agent's stamps (lease, heartbeats) are on its clock: on the host's, less the offset its
  // assignment told it (frames it published carry the host's already)
  const off = current.clock_offset_us;
  const lease = keep?.capture && keep.capture.inspected_until_us > 0 ? keep.capture.inspected_until_us - off : 0;
  const next = keep ? successorOf(keep, agents) : undefined;
  const dead =
    !keep ||
    keep.status === 'stopping' ||
    next !== undefined ||
    (nowUs - heardUs(keep)) / 1000 > c.heartbeatTimeoutMs ||
    !keep.capture?.active;
  if (!dead) return { handoffUs: Math.max(current.handoff_us, nowUs + c.handoffDelayMs * 1000, lease) };
  // no lease known: an agent that never published (from its own boundary on), or one whose
  // records are gone (from now: what it published is not known)
  let from = lease > 0 ? lease : keep ? current.handoff_us : nowUs;
  if (next) from = Math.min(from, next.firstSeenUs - off);
  const handoffUs = Math.max(current.handoff_us, Math.min(from, nowUs));
  // A stopped agent's lease is its newest published frame: nothing is missing. A silent or
  // restarted one delivered its frames up to when it died, somewhere between its last heartbeat
  // and its lease: the watchdog publishes what it holds from one interval before that heartbeat
  // (frames published but not yet acknowledged then) as a recovery, and the consumers drop the
  // frames of it the agent delivered (@cordon/schemas RecoveryFilter).
  if (keep?.status === 'stopping' || current.agent === null) return { handoffUs };
  const beatUs = keep ? keep.heartbeatUs - off : 0;
  const intervalUs = keep && lease > beatUs ? (lease - beatUs) / 2 : 0;
  const fromUs = keep && lease > 0 ? Math.max(current.handoff_us, beatUs - intervalUs) : current.handoff_us;
  return fromUs < handoffUs ? { handoffUs, recovery: { of: agentSensor(current.agent), fromUs } } : { handoffUs };
}

export function decide(
  vm: VmState | undefined,
  agents: readonly AgentState[],
  current: Assignment | undefined,
  c: Coordination,
  policyVersion: number,
  nowUs: number,
): Desired {
  const none = (reason: string): Desired => ({
    mode: 'none',
    host: vm?.host ?? null,
    agent: null,
    incarnation: null,
    enforcer: null,
    reason,
    handoffUs: current?.mode === 'none' ? current.handoff_us : nowUs,
    gated: false,
    clockOffsetUs: 0,
  });
  if (!vm) return none('the VM is not in the inventory');
  if (vm.power !== 'on')
    return none(
      vm.power === null
        ? "the VM's power state is not known"
        : `the VM is ${vm.power === 'off' ? 'powered off' : vm.power}`,
    );

  // the incarnation the assignment names keeps the VM while it is fit (retention needs no
  // moving counters: a new coordinator has not seen them move); an assignment without an
  // incarnation (an older coordinator's) is kept by the agent's newest trusted one
  let keep: AgentState | undefined;
  if (current?.mode === 'agent') {
    const mine = agents.filter(
      (a) => a.id === current.agent && (current.incarnation === null || a.incarnation === current.incarnation),
    );
    keep = mine.sort(
      (x, y) => Number(y.verdict.trusted) - Number(x.verdict.trusted) || y.heartbeatUs - x.heartbeatUs,
    )[0];
  }
  const reasons: string[] = [];
  if (current?.mode === 'agent') {
    const next = keep ? successorOf(keep, agents) : undefined;
    const why = !keep
      ? `agent ${current.agent} (incarnation ${current.incarnation ?? '?'}) is not known`
      : next
        ? `agent ${keep.id} restarted (incarnation ${next.incarnation} after ${keep.incarnation})`
        : agentUnfit(keep, c, policyVersion, nowUs, false, vm.hostClockOffsetUs ?? null, vm.hostClockSamples);
    if (!keep && nowUs < (c.learningUntilUs ?? 0)) {
      return {
        mode: 'agent',
        host: vm.host,
        agent: current.agent,
        incarnation: current.incarnation,
        enforcer: current.enforcer,
        reason: current.reason,
        handoffUs: current.handoff_us,
        gated: c.gate,
        clockOffsetUs: current.clock_offset_us,
      };
    }
    if (!why && keep) {
      return {
        mode: 'agent',
        host: vm.host,
        agent: keep.id,
        incarnation: current.incarnation,
        enforcer: `agent:${keep.id}`,
        reason: current.reason,
        handoffUs: current.handoff_us,
        gated: c.gate,
        clockOffsetUs: current.clock_offset_us,
      };
    }
    // never straight to another agent (or another start of this one): nobody would have the
    // frames between this one's last and that one's first; the watchdog takes it back first
    if (vm.host === null) return none('the VM runs on no known host');
    return {
      mode: 'watchdog',
      host: vm.host,
      agent: null,
      incarnation: null,
      enforcer: `watchdog:${vm.host}`,
      reason: `watchdog: ${why!}`,
      ...takeBackFrom(keep, agents, current, c, nowUs),
      gated: c.gate,
      clockOffsetUs: 0,
    };
  }
  // promotion: a current agent seen inspecting, not superseded by a later start of itself
  const candidates = agents
    .filter((a) => !successorOf(a, agents))
    .map((a) => ({ a, why: agentUnfit(a, c, policyVersion, nowUs, true, vm.hostClockOffsetUs ?? null) }))
    .sort((x, y) => y.a.heartbeatUs - x.a.heartbeatUs || (x.a.id < y.a.id ? -1 : 1));
  const fit = candidates.find((x) => x.why === null)?.a;
  if (fit && vm.host !== null) {
    return {
      mode: 'agent',
      host: vm.host,
      agent: fit.id,
      incarnation: fit.incarnation,
      enforcer: `agent:${fit.id}`,
      reason: `agent ${fit.id} is current (${fit.version}, policy ${fit.policyVersion}) and inspecting`,
      // from a watchdog (or no assignment yet: the watchdog's by default), ahead — make before
      // break; from nobody (the VM was off), from when it became nobody's, out of the frames the
      // agent holds: no watchdog inspects them, and an ahead boundary would leave them to nobody
      handoffUs:
        current?.mode === 'none'
          ? Math.min(current.since_us, nowUs)
          : Math.max(nowUs + c.handoffDelayMs * 1000, current?.handoff_us ?? 0),
      gated: c.gate,
      clockOffsetUs: clockOffsetFor(fit, vm.hostClockOffsetUs ?? null),
    };
  }
  for (const x of candidates) reasons.push(x.why!);
  if (vm.host === null) return none('the VM runs on no known host');
  const reason = reasons.length ? `watchdog: ${reasons[0]}` : 'watchdog: the VM has no agent';
  let handoffUs: number;
  if (current?.mode === 'watchdog' && current.host === vm.host) handoffUs = current.handoff_us;
  else if (current?.mode === 'watchdog')
    handoffUs = Math.min(Math.max(vm.hostSinceUs, current.handoff_us), nowUs); // migrated
  else handoffUs = current ? Math.min(current.since_us, nowUs) : 0; // nobody protected it: everything the watchdog holds
  return {
    mode: 'watchdog',
    host: vm.host,
    agent: null,
    incarnation: null,
    enforcer: `watchdog:${vm.host}`,
    reason,
    handoffUs,
    gated: c.gate,
    clockOffsetUs: 0,
  };
}

/** A new assignment is written when who protects the VM changes (not for a new reason alone). */
export function changed(cur: Assignment | undefined, d: Desired): boolean {
  return (
    !cur ||
    cur.mode !== d.mode ||
    cur.host !== d.host ||
    cur.agent !== d.agent ||
    cur.incarnation !== d.incarnation ||
    cur.gated !== d.gated
  );
}
