/**
 * Record keys that more than one service must agree on. A key decides the partition and,
 * on compacted topics, which records replace each other — so it is defined once, here.
 */

/** The enforcer address of an in-guest agent. */
export const agentEnforcer = (agentId: string): string => `agent:${agentId}`;

/** The enforcer address of the watchdog on a hypervisor host. */
export const watchdogEnforcer = (host: string): string => `watchdog:${host}`;

/** The sensor name (PacketBatch.sensor) of an in-guest agent's capture. */
export const agentSensor = (agentId: string): string => `agent:${agentId}`;

/** The sensor name (PacketBatch.sensor) of the watchdog's capture on a hypervisor host. */
export const watchdogSensor = (host: string): string => `watchdog:${host}`;

/** `cordon.blocks.v1` key: enforcer + target, so the newest decision per target wins compaction and a tombstone lifts it. */
export const blockKey = (enforcer: string, target: string): Buffer => Buffer.from(`${enforcer}|${target}`);

/** The target part of a block key, for an enforcer reading a tombstone (null when the key is not for it). */
export function blockKeyTarget(key: Buffer | null, enforcer: string): string | null {
  const k = key?.toString() ?? '';
  return k.startsWith(`${enforcer}|`) ? k.slice(enforcer.length + 1) : null;
}

/** The key of a stage's checkpoint for one input partition on `cordon.state.v1` (see StageState). */
export function stageStateKey(stage: string, inputTopic: string, partition: number): string {
  return `${stage}|${inputTopic}|${partition}`;
}
