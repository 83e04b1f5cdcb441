import { followBlocks } from '@cordon/enforce';
import { defineStage, type Stage } from '@cordon/stage';
import { codecFor, TOPICS, watchdogEnforcer, type AgentRecord, type BlockDecision } from '@cordon/schemas';
import { watchdogConfigSchema, type WatchdogConfig } from './config.js';
import { BridgeEnforcer } from './enforce-bridge.js';
import { startCapture, type CaptureHandle } from './capture.js';
import { startGating, type GatingHandle } from './gating.js';

/**
 * The watchdog of one hypervisor host: its enforcer — every block addressed to
 * `watchdog:<host>` on `cordon.blocks.v1` is applied on the host bridge, restored from the
 * compacted topic at start (a restarted or rebooted host gets its active blocks back, with
 * their remaining TTL), lifted on a tombstone, and reported back as `applied` or `failed`
 * (see @cordon/enforce's followBlocks) — and its live capture (capture.ts).
 */
export interface WatchdogHandle {
  readonly enforcer: BridgeEnforcer | null;
  /** The live capture, when enabled. */
  readonly capture: CaptureHandle | null;
  /** Blocks in force as the watchdog knows them (target → decision). */
  readonly active: ReadonlyMap<string, BlockDecision>;
  /** Network gating (with enforcement). */
  readonly gating: GatingHandle | null;
}

export const WATCHDOG_VERSION = '0.1.0';

export const watchdogStage = defineStage({
  name: 'watchdog',
  summary: 'on a hypervisor host: captures the bridge for agentless VMs, enforces their blocks on it',
  config: watchdogConfigSchema,
  when: 'configured',
  inputs: () => [],
  outputs: () => [TOPICS.packets, TOPICS.blocks, TOPICS.agents, TOPICS.alerts, TOPICS.dlq],
  reads: () => [TOPICS.policy, TOPICS.inventory, TOPICS.assignments, TOPICS.agents, TOPICS.blocks],
  start: (stage) => startWatchdog(stage),
});

async function startWatchdog(stage: Stage<WatchdogConfig>): Promise<WatchdogHandle> {
  const { config, ctx } = stage;
  let enforcer: BridgeEnforcer | null = null;
  let active: ReadonlyMap<string, BlockDecision> = new Map();
  if (config.enforce.enabled) {
    const e = new BridgeEnforcer({
      ctx,
      bridge: config.bridge,
      table: config.enforce.table,
      ...(config.enforce.netns ? { netns: config.enforce.netns } : {}),
    });
    enforcer = e;
    await e.setup();
    // The nft table stays on stop: blocks keep being enforced (until their TTL) while the
    // watchdog restarts or is upgraded.
    stage.onStop(() => e.close());
    ctx.log.info(
      { host: config.host, bridge: config.bridge, ...e.capabilities },
      'Watchdog enforcer is set up on the bridge.',
    );
    const { neverBlock, maxBlocks, maxNewPerMinute, netns } = config.enforce;
    ({ active } = await followBlocks(stage, {
      enforcer: watchdogEnforcer(config.host),
      guards: { neverBlock, maxBlocks, maxNewPerMinute },
      ...(netns ? { netns } : {}),
      applier: {
        targetOf: (d) => BridgeEnforcer.targetOf(d).ip,
        apply: (d, now) => e.apply(d, now),
        lift: (ip) => e.lift(ip),
        reconcile: (keep) => e.reconcile(new Set(keep)),
      },
    }));
  }
  const capture = config.capture.enabled
    ? await startCapture({
        stage,
        host: config.host,
        bridge: config.bridge,
        pollMs: config.capture.pollMs,
        holdMs: config.capture.holdMs,
        holdMaxMiB: config.capture.holdMaxMiB,
        ...(config.capture.netns ? { netns: config.capture.netns } : {}),
      })
    : null;
  if (capture) stage.onStop(() => capture.stop());
  // the gate needs the bridge table (enforcement) and, for the VMs it protects itself, the capture's acks
  const gating = config.enforce.enabled ? await startGating(stage, capture) : null;

  // status on the agents topic: what it inspects and the assignments it applied
  const agentCodec = codecFor(TOPICS.agents);
  const me = watchdogEnforcer(config.host);
  const status = async (state: AgentRecord['status']) => {
    const s = capture?.stats();
    const rec: AgentRecord = {
      agent: me,
      vm: '',
      version: WATCHDOG_VERSION,
      config_hash: '',
      identity: JSON.stringify({ host: config.host, bridge: config.bridge }),
      heartbeat_us: ctx.clock.now() * 1000,
      status: state,
      kind: 'watchdog',
      host: config.host,
      policy_version: 0,
      capture: s ? { active: true, frames: s.captured, published: s.published, inspected_until_us: s.newestUs } : null,
      acks: capture?.acks() ?? {},
      heartbeat_interval_ms: config.statusIntervalMs,
      public_key: null,
      malware: null,
    };
    await stage.send(TOPICS.agents, [{ key: Buffer.from(me), value: agentCodec.encode(rec) }]);
  };
  await status('running');
  stage.every(config.statusIntervalMs, 'A watchdog status', () => status('running'));
  stage.onStop(() => status('stopping'));
  return { enforcer, capture, active, gating };
}
