import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readTable, type Bus } from '@cordon/bus';
import {
  codecFor,
  TOPICS,
  type BlockDecision,
  type InventoryRecord,
  type PolicyRecord,
  type ProducerKey,
} from '@cordon/schemas';

/** A requested block of one address, as a responder would write it, for enforcer tests. */
export function ipBlockDecision(opts: {
  enforcer: string;
  ip: string;
  ttlMs: number;
  now?: number;
  action?: 'drop' | 'reject';
  scope?: string;
}): BlockDecision {
  const now = opts.now ?? Date.now();
  return {
    block_id: `b-${opts.ip}-${now}`,
    enforcer: opts.enforcer,
    target: {
      kind: 'ip',
      ip: opts.ip,
      proto: null,
      src_ip: null,
      src_port: null,
      dst_ip: null,
      dst_port: null,
      vm: null,
    },
    scope: opts.scope ?? 'test',
    action: opts.action ?? 'drop',
    ttl_ms: opts.ttlMs,
    created_us: now * 1000,
    expires_us: (now + opts.ttlMs) * 1000,
    reason_alert: 'a-1',
    status: 'requested',
  };
}

/** A running VM with one NIC on the inventory topic, as a connector publishes it (what the coordinator binds agents to). */
export async function putRunningVm(bus: Bus, id: string, ips: string[], host = 'hv1'): Promise<InventoryRecord> {
  const vm: InventoryRecord = {
    kind: 'vm',
    id,
    name: id,
    host,
    power: 'on',
    guest_os: null,
    nics: [{ mac: '52:54:00:00:00:01', ips, network: null }],
    updated_us: Date.now() * 1000,
    cluster: null,
    connection: null,
    snapshot: null,
    template: false,
    connector: 'file',
    source: 'test',
  };
  await bus
    .producer()
    .send(TOPICS.inventory, [{ key: Buffer.from(`vm:${id}`), value: codecFor(TOPICS.inventory).encode(vm) }]);
  return vm;
}

/** A fresh enrollment secret in `<dir>/enroll.key` (0600): the coordinator's `enrollSecretFile`, and the key to make agents' tokens with. */
export function writeEnrollSecret(dir: string): { secret: Buffer; file: string } {
  const secret = randomBytes(32);
  const file = join(dir, 'enroll.key');
  writeFileSync(file, secret.toString('hex'), { mode: 0o600 });
  return { secret, file };
}

/**
 * What the coordinator publishes on the producers topic for an enrolled producer: its key,
 * bound to a VM (an agent) or a host (a watchdog). `signer` is a RecordSigner (@cordon/stage).
 */
export function producerRegistration(
  signer: { producer: string; publicKey: Buffer },
  bound: { vm: string } | { host: string },
  by = 'enroll-token:test',
): { key: Buffer; value: Buffer } {
  return {
    key: Buffer.from(signer.producer),
    value: codecFor(TOPICS.producers).encode({
      producer: signer.producer,
      kind: 'vm' in bound ? 'agent' : 'watchdog',
      vm: 'vm' in bound ? bound.vm : null,
      host: 'host' in bound ? bound.host : null,
      public_key: signer.publicKey,
      registered_us: Date.now() * 1000,
      registered_by: by,
    }),
  };
}

/** The key the coordinator publishes for `producer` on the producers topic (null: none, or withdrawn). */
export async function registeredKey(bus: Bus, producer: string): Promise<ProducerKey | null> {
  const r = (await readTable(bus, TOPICS.producers)).get(Buffer.from(producer).toString('base64'));
  return r?.value ? codecFor(TOPICS.producers).decode(r.value) : null;
}

/**
 * An admin's revocation of an agent or watchdog (`agent:<id>` on the policy topic, as the
 * manager's `POST /api/v1/agents/<id>/revoke` writes it); `revoked: false` lifts it.
 */
export async function setRevoked(
  bus: Bus,
  producer: string,
  revoked: boolean,
  version: number,
  reason = 'host compromised (ticket 4711)',
): Promise<void> {
  const rec: PolicyRecord = {
    kind: 'agent',
    id: producer,
    version,
    document: JSON.stringify({ revoked, reason: revoked ? reason : '', atUs: version }),
    updated_us: Date.now() * 1000,
    updated_by: 'admin',
  };
  await bus
    .producer()
    .send(TOPICS.policy, [{ key: Buffer.from(`agent:${producer}`), value: codecFor(TOPICS.policy).encode(rec) }]);
}
