import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '@cordon/runtime';
import { readState, writeState } from './state.js';

/**
 * What tells the original agent from a clone or a reverted snapshot:
 * - `generation` counts the agent's starts and its checkpoints while it runs, and is kept in its
 *   state dir; a VM reverted to a snapshot comes back with an older state dir, so it reports a
 *   generation lower than the newest one already on the `agents` topic;
 * - `incarnation` is random per start: two live agents with one id and two incarnations
 *   are a clone running beside its original;
 * - `hw` fingerprints the machine (machine-id, DMI product UUID, NIC MACs): a clone gets a
 *   new UUID and new MACs from the hypervisor, so it differs while the agent id is the same.
 */
export interface AgentIdentity {
  agent: string;
  /** Moves forward only: at each start, and when the coordinator re-bases a reverted VM (adoptGeneration). */
  generation: number;
  incarnation: string;
  hw: string;
}

function readOr(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

export function hardwareFingerprint(sysRoot = '/'): string {
  const macs: string[] = [];
  const netDir = join(sysRoot, 'sys', 'class', 'net');
  try {
    for (const dev of readdirSync(netDir).sort()) {
      if (dev === 'lo') continue;
      const mac = readOr(join(netDir, dev, 'address'));
      if (mac && mac !== '00:00:00:00:00:00') macs.push(mac);
    }
  } catch {
    // no sysfs (containers): the other parts still count
  }
  const parts = [
    readOr(join(sysRoot, 'etc', 'machine-id')),
    readOr(join(sysRoot, 'sys', 'class', 'dmi', 'id', 'product_uuid')),
    ...macs,
  ];
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 32);
}

/** Load the identity from the state dir, count this start, and save it before anything is sent. */
export function startIdentity(stateDir: string, agent: string, log: Logger, sysRoot = '/'): AgentIdentity {
  const file = join(stateDir, 'identity.json');
  const prev = readState<{ agent?: string; generation?: number }>(file, {}, log);
  const generation = (prev.agent === agent ? (prev.generation ?? 0) : 0) + 1;
  const id: AgentIdentity = {
    agent,
    generation,
    incarnation: randomBytes(8).toString('hex'),
    hw: hardwareFingerprint(sysRoot),
  };
  writeState(file, { agent, generation });
  return id;
}

/**
 * The generation moves forward while the agent runs too (every `checkpointS`, kept in the state
 * dir before it is reported): a VM reverted to a snapshot comes back with the generation of the
 * snapshot, so a revert shows even when the agent was not restarted between the snapshot and the
 * revert — as long as two checkpoints passed in between.
 */
export function checkpointGeneration(stateDir: string, id: AgentIdentity): void {
  writeState(join(stateDir, 'identity.json'), { agent: id.agent, generation: id.generation + 1 });
  id.generation += 1;
}

/**
 * A reverted VM came back behind the newest generation the coordinator knows: it names the
 * next one, and the agent goes on from there (kept in the state dir), so its later restarts are
 * restarts again — not the same revert reported anew at each start.
 */
export function adoptGeneration(stateDir: string, id: AgentIdentity, generation: number): boolean {
  if (!Number.isInteger(generation) || generation <= id.generation) return false;
  id.generation = generation;
  writeState(join(stateDir, 'identity.json'), { agent: id.agent, generation });
  return true;
}
