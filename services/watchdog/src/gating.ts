import { describeError } from '@cordon/runtime';
import { PolicyView } from '@cordon/policy';
import type { Stage } from '@cordon/stage';
import { codecFor, TOPICS, type AgentRecord, type Assignment } from '@cordon/schemas';
import type { WatchdogConfig } from './config.js';
import type { CaptureHandle } from './capture.js';
import { GateBook, whyNotCurrent, type Release } from './gate.js';
import { BridgeGate } from './gate-bridge.js';

export interface GatingHandle {
  /** VMs held now. */
  held(): string[];
  /** The last RELEASES_KEPT releases, oldest first (what tests and diagnostics read; the metrics count them all). */
  readonly releases: ReadonlyArray<GateRelease>;
}

/** Releases remembered: a watchdog runs for months and releases a VM at every power-on. */
export const RELEASES_KEPT = 256;

/** A release and the protection that made the VM current: its enforcer and assignment epoch. */
export interface GateRelease extends Release {
  atUs: number;
  enforcer: string | null;
  epoch: number;
}

/**
 * The gate's adapter: follows the policy (who is gated), the inventory (what powers on here),
 * the assignments and the agents' heartbeats (is the protection current), and keeps the
 * bridge's gate set in step — at every change and on a short tick (agents fall silent).
 */
export async function startGating(stage: Stage<WatchdogConfig>, capture: CaptureHandle | null): Promise<GatingHandle> {
  const { config, ctx } = stage;
  const { log, metrics, clock } = ctx;
  const nowUs = () => clock.now() * 1000;
  const bridgeGate = new BridgeGate({
    ctx,
    table: config.enforce.table,
    ...(config.enforce.netns ? { netns: config.enforce.netns } : {}),
    managerAddresses: config.gate.managerAddresses,
  });
  const wasHeld = await bridgeGate.setup();
  stage.onStop(() => bridgeGate.close());
  const policy = new PolicyView();
  const doc = () => policy.policies.get(config.gate.policyId)?.doc;
  const book = new GateBook(config.host, (vm) => doc()?.vms[vm]?.gate ?? doc()?.coordination.gate ?? false);
  const assignments = new Map<string, Assignment>();
  const agents = new Map<string, AgentRecord>();
  const releases: GateRelease[] = [];
  const codec = {
    inventory: codecFor(TOPICS.inventory),
    assignments: codecFor(TOPICS.assignments),
    agents: codecFor(TOPICS.agents),
  };

  const current = (vm: string): boolean =>
    (assignments.get(vm)?.mode !== 'watchdog' ||
      (policy.policies.get(config.gate.policyId)?.version ?? 0) >= assignments.get(vm)!.policy_version) &&
    whyNotCurrent({
      vm,
      me: config.host,
      assignment: assignments.get(vm),
      watchdogEpoch: capture ? (capture.acks()[vm] ?? 0) : null,
      agent: (() => {
        const a = assignments.get(vm);
        return a?.agent ? agents.get(a.agent) : undefined;
      })(),
      heartbeatTimeoutMs: doc()?.coordination.heartbeatTimeoutMs ?? 5000,
      nowUs: nowUs(),
    }) === null;

  // one change of the set at a time, always to the newest wanted state
  let syncing: Promise<void> | null = null;
  let again = false;
  const evaluate = (): void => {
    if (syncing) {
      again = true;
      return;
    }
    syncing = (async () => {
      do {
        again = false;
        for (const r of book.release(current, nowUs())) {
          const a = assignments.get(r.vm);
          const rel = { ...r, atUs: nowUs(), enforcer: a?.enforcer ?? null, epoch: a?.epoch ?? 0 };
          releases.push(rel);
          if (releases.length > RELEASES_KEPT) releases.splice(0, releases.length - RELEASES_KEPT);
          metrics.inc('gate_released');
          metrics.set('gate_last_release_ms', Math.round(r.ms));
          log.info(
            { vm: r.vm, msSincePowerOn: Math.round(r.ms), enforcer: rel.enforcer, epoch: rel.epoch },
            'A gated VM is released: its protection is current.',
          );
        }
        await bridgeGate.sync(book.macs());
      } while (again);
    })()
      .catch((err: unknown) =>
        log.error(
          { err: describeError(err) },
          'The gate on the bridge could not be changed; the next look tries again.',
        ),
      )
      .finally(() => {
        syncing = null;
      });
  };

  // a VM handed back from a silent agent is inspected from the agent's lease on, out of the
  // frames held meanwhile: the hold must outlast the timeout and the lease
  let warnedFor = -1;
  const checkHold = (): void => {
    const p = policy.policies.get(config.gate.policyId);
    if (!p || !config.capture.enabled || p.version === warnedFor) return;
    const needMs = p.doc.coordination.heartbeatTimeoutMs + 2 * p.doc.coordination.heartbeatIntervalMs + 1000;
    if (config.capture.holdMs >= needMs) return;
    warnedFor = p.version;
    log.warn(
      { holdMs: config.capture.holdMs, needMs },
      "capture.holdMs is shorter than the policy's heartbeat timeout and lease: frames of a VM whose agent goes silent can be dropped before the watchdog takes it back. Raise capture.holdMs.",
    );
  };
  await stage.follow(TOPICS.policy, (r, restoring) => {
    try {
      policy.apply(r.key, r.value);
    } catch (err) {
      log.warn({ err: describeError(err) }, 'A policy record is unusable; it was skipped.');
      return;
    }
    if (!restoring) {
      book.policyChanged(nowUs());
      evaluate();
    }
    checkHold();
  });
  await stage.follow(TOPICS.inventory, (r, restoring) => {
    const k = r.key?.toString() ?? '';
    if (!k.startsWith('vm:')) return;
    try {
      book.inventory(k.slice(3), r.value ? codec.inventory.decode(r.value) : null, nowUs(), restoring, (macs) =>
        macs.some((m) => wasHeld.has(m)),
      );
    } catch (err) {
      log.warn({ err: describeError(err), key: k }, 'An inventory record is unusable; it was skipped.');
    }
    if (!restoring) evaluate();
  });
  await stage.follow(TOPICS.assignments, (r, restoring) => {
    const vm = r.key?.toString() ?? '';
    try {
      if (!r.value) assignments.delete(vm);
      else assignments.set(vm, codec.assignments.decode(r.value));
    } catch (err) {
      log.warn({ err: describeError(err), vm }, 'An assignment record is unusable; it was skipped.');
    }
    if (!restoring) evaluate();
  });
  await stage.follow(TOPICS.agents, (r, restoring) => {
    if (!r.value) return;
    try {
      const rec = codec.agents.decode(r.value);
      if (rec.kind === 'agent') agents.set(rec.agent, rec);
    } catch {
      return; // the coordinator dead-letters it
    }
    if (!restoring) evaluate();
  });
  evaluate();
  stage.every(50, 'Looking at the gated VMs', () => {
    if (book.held.size) evaluate();
  });
  stage.onStop(async () => {
    await syncing;
  });
  log.info(
    { held: [...book.held.keys()], managerAddresses: config.gate.managerAddresses },
    'Gating is set up on the bridge.',
  );
  return { held: () => [...book.held.keys()], releases };
}
