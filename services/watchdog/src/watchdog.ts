import { followBlocks } from '@cordon/enforce';
import { defineStage, type Stage } from '@cordon/stage';
import { codecFor, TOPICS, watchdogEnforcer, type AgentRecord, type BlockDecision } from '@cordon/schemas';
import { watchdogConfigSchema, type WatchdogConfig } from './config.js';
import { BridgeEnforcer } from './enforce-bridge.js';
import { startCapture, type CaptureHandle } from './capture.js';
import { startGating, type GatingHandle } from './gating.js';
import { enrollWatchdog, hostTokenOf, TOKEN_HEADER, type WatchdogEnrollment } from './enroll.js';
import { ERR_WATCHDOG_ENROLL } from './errors.js';

/**
 * The watchdog of one hypervisor host: its enforcer — every block addressed to
 * `watchdog:<host>` on `cordon.blocks.v1` is applied on the host bridge, restored from the
 * compacted topic at start (a restarted or rebooted host gets its active blocks back, with
 * their remaining TTL), lifted on a tombstone, and reported as `applied` or `failed` on
 * `cordon.block-status.v1`
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
  /** Its signing identity, when it enrolled with a host token (null: it does not sign). */
  readonly enrollment: WatchdogEnrollment | null;
}

export const WATCHDOG_VERSION = '0.1.0';

export const watchdogStage = defineStage({
  name: 'watchdog',
  summary: 'on a hypervisor host: captures the bridge for agentless VMs, enforces their blocks on it',
  config: watchdogConfigSchema,
  when: 'configured',
  inputs: () => [],
  outputs: () => [TOPICS.packets, TOPICS.blockStatus, TOPICS.agents, TOPICS.alerts, TOPICS.dlq],
  reads: () => [
    TOPICS.policy,
    TOPICS.inventory,
    TOPICS.assignments,
    TOPICS.agents,
    TOPICS.blocks,
    TOPICS.blockStatus,
    TOPICS.producers,
  ],
  start: (stage) => startWatchdog(stage),
});

async function startWatchdog(stage: Stage<WatchdogConfig>): Promise<WatchdogHandle> {
  const { config, ctx } = stage;
  const token = hostTokenOf(config);
  const enrollment = token ? enrollWatchdog(stage, token) : null;
  // status on the agents topic: what it inspects and the assignments it applied
  const agentCodec = codecFor(TOPICS.agents);
  const me = watchdogEnforcer(config.host);
  let capture: CaptureHandle | null = null;
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
      public_key: enrollment?.signer.publicKey ?? null,
      processes: null,
      malware: null,
    };
    const record = {
      key: Buffer.from(me),
      value: agentCodec.encode(rec),
      // the token goes with every heartbeat: the coordinator registers the key only with it, and
      // a coordinator that starts later must still see it (once a key is registered for the
      // host, the token counts for nothing: first key wins)
      ...(enrollment ? { headers: { [TOKEN_HEADER]: Buffer.from(enrollment.token) } } : {}),
    };
    // signed (by stage.send) with the key it presents: the proof of possession
    await stage.send(TOPICS.agents, [record]);
  };
  if (enrollment) await enroll(stage, enrollment, () => status('running'));
  else
    ctx.log.warn(
      { host: config.host },
      'No host token (watchdog.enroll, CORDON_HOST_TOKEN): this watchdog does not sign its records; where packets must be signed they are refused.',
    );
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
  const c = config.capture.enabled
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
  capture = c;
  if (c) stage.onStop(() => c.stop());
  // the gate needs the bridge table (enforcement) and, for the VMs it protects itself, the capture's acks
  const gating = config.enforce.enabled ? await startGating(stage, capture) : null;

  await status('running');
  stage.every(config.statusIntervalMs, 'A watchdog status', () => status('running'));
  stage.onStop(() => status('stopping'));
  return { enforcer, capture, active, gating, enrollment };
}

/**
 * Enroll before anything is produced: the first heartbeat carries the token and the public key
 * (signed by it); then wait — up to `enroll.waitMs` — for the coordinator to register the key on
 * cordon.producers.v1, so the first packets and reports are not refused as signed by an unknown
 * producer. From then on every record the watchdog produces is signed. A key registered
 * already (a restart) costs one read. Another key registered for this host is an error: its
 * records are refused until the operator withdraws that key.
 */
async function enroll(
  stage: Stage<WatchdogConfig>,
  enrollment: WatchdogEnrollment,
  heartbeat: () => Promise<void>,
): Promise<void> {
  const { config, ctx } = stage;
  stage.signRecords(enrollment.signer);
  let state = await enrollment.registered();
  if (state === 'absent') {
    await heartbeat();
    const until = ctx.clock.now() + config.enroll.waitMs;
    for (let i = 1; state === 'absent' && ctx.clock.now() < until && !stage.stopping; i++) {
      await new Promise((r) => setTimeout(r, 100));
      state = await enrollment.registered();
      // a coordinator that starts after this watchdog judges a later heartbeat
      if (state === 'absent' && i % 10 === 0) await heartbeat();
    }
  }
  if (state === 'registered') {
    ctx.log.info({ host: config.host }, "The watchdog's signing key is registered; its records are signed.");
    return;
  }
  const err =
    state === 'other-key'
      ? ERR_WATCHDOG_ENROLL(
          `another signing key is registered for host ${config.host} (first key wins); withdraw it to enroll this one`,
        )
      : ERR_WATCHDOG_ENROLL(`the coordinator did not register this host's key within ${config.enroll.waitMs} ms`);
  ctx.log.error(
    { err, host: config.host },
    'The watchdog signs its records, but stages refuse them until its key is registered; its heartbeats keep presenting the token.',
  );
}
