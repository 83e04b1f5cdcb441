import { agentIdFor, verifyEnrollToken, verifyHostToken } from '@cordon/agent';
import { describeError } from '@cordon/runtime';
import type { AgentRecord } from '@cordon/schemas';

/**
 * Agent trust: which agent may protect which VM. An agent enrolls with a token signed by the
 * cluster's secret (`cordon agents token --vm VM`): the token names the VM, and the agent id is
 * derived from the token's id, so one token enrolls one agent. The first record of a new agent
 * carries the token (header `cordon-enroll-token`); the coordinator verifies it and binds the
 * agent id to that VM and to the machine it ran on (the hardware fingerprint of its heartbeat).
 * From then on a heartbeat is trusted only when it claims the bound VM from the bound machine:
 *
 * - another VM, or a token that does not verify  → forged: never trusted, an alert;
 * - another machine (a clone: the hypervisor gives clones a new UUID and new MACs, the agent's
 *   state dir and token come along) → the clone is not trusted, an alert, and the clone is told
 *   to enroll again (`reenroll`, addressed to its incarnation);
 * - an older generation (each start counts one; a VM reverted to a snapshot comes back with an
 *   older state dir) → the VM was reverted: still trusted, reported once, and its file baseline
 *   is re-based (`rebaseline`) so the revert's file changes are not an attack storm.
 *
 * Kafka does not say who produced a record, so records are signed (@cordon/stage record-sign):
 * the enrollment record carries the agent's Ed25519 public key and is signed by it, and the
 * binding keeps the key (first key wins; published on `cordon.producers.v1`, where every stage's
 * runtime checks the agent's telemetry against it). From then on a heartbeat counts only when it
 * is signed by that key, and another key for the same agent is refused: a new key comes only
 * with a fresh enrollment — a new token, which is a new agent id. An agent bound before it had a
 * key registers one with its token, while the token is still valid.
 *
 * An agent the manager revoked (kind `agent` on the policy topic) is trusted no more, whatever it
 * presents: its VM goes to the watchdog, and its key is withdrawn from `cordon.producers.v1` (a
 * tombstone), so every stage refuses its records from then on.
 */
export interface Binding {
  vm: string;
  hw: string;
  maxGeneration: number;
  enrolledUs: number;
  /** The Ed25519 public key (base64 of the raw 32 bytes) its records are signed with. */
  publicKey?: string;
  /** The id of the token that vouched for the key. */
  tokenId?: string;
}

/** Whether the record being judged carries its agent's valid signature under this public key (raw 32 bytes). */
export type SignedBy = (publicKey: Buffer) => boolean;

export interface Identity {
  generation: number;
  incarnation: string;
  hw: string;
}

export type Distrust =
  'unenrolled' | 'forged' | 'wrong-vm' | 'clone' | 'bad-identity' | 'unsigned' | 'key-replaced' | 'revoked';

/** The manager revoked the agent (`POST /agents/:id/revoke`): nothing it says is trusted again. */
export interface Revocation {
  reason: string;
  atUs: number;
}

export interface Verdict {
  trusted: boolean;
  distrust?: Distrust;
  detail: string;
  identity: Identity | null;
}

/** What judging one record asks the coordinator to do (only the owner of the VM does it). */
export interface TrustEffects {
  /** A binding to persist (new, or a higher generation, or a key registered). */
  binding?: Binding;
  /** The binding's key was registered by this record: publish it for the stages. */
  keyRegistered?: boolean;
  alerts: Array<{
    rule: Distrust | 'reverted' | 'key-unproven';
    severity: number;
    signature: string;
    detail: string;
    key: string;
  }>;
  commands: Array<{ kind: 'reenroll' | 'rebaseline' | 'enrolled'; args: Record<string, string>; key: string }>;
}

export function parseIdentity(text: string): Identity | null {
  try {
    const o = JSON.parse(text) as Partial<Identity>;
    if (!Number.isInteger(o.generation) || (o.generation ?? 0) < 1) return null;
    if (typeof o.incarnation !== 'string' || !/^[0-9a-f]{4,64}$/.test(o.incarnation)) return null;
    if (typeof o.hw !== 'string' || !/^[0-9a-f]{8,64}$/.test(o.hw)) return null;
    return { generation: o.generation!, incarnation: o.incarnation, hw: o.hw };
  } catch {
    return null;
  }
}

export class AgentTrust {
  readonly bindings = new Map<string, Binding>();

  constructor(private readonly secret: Buffer | null) {}

  /** Whether enrollment tokens can be verified at all (a secret is known). */
  get canVerify(): boolean {
    return this.secret !== null;
  }

  /**
   * Judge one agent record (and the token it carries, if any). Pure apart from the bindings it
   * updates. `signedBy` says whether the record is signed by the agent under a given key (none:
   * it carries no signature).
   */
  judge(
    rec: AgentRecord,
    token: string | null,
    nowMs: number,
    signedBy: SignedBy = () => false,
    revoked?: Revocation,
  ): { verdict: Verdict; effects: TrustEffects } {
    const effects: TrustEffects = { alerts: [], commands: [] };
    const id = parseIdentity(rec.identity);
    const untrusted = (distrust: Distrust, detail: string): { verdict: Verdict; effects: TrustEffects } => ({
      verdict: { trusted: false, distrust, detail, identity: id },
      effects,
    });
    if (!id) return untrusted('bad-identity', 'its identity is not {generation, incarnation, hw}');
    // before anything else: a revoked agent's token, key and binding count for nothing (a
    // revocation is lifted only by the manager; a fresh token is a new agent id)
    if (revoked) {
      const detail = `revoked by the manager${revoked.reason ? `: ${revoked.reason}` : ''}`;
      effects.alerts.push({
        rule: 'revoked',
        severity: 2,
        signature: `Revoked agent ${rec.agent} is still running on VM ${rec.vm}; it is not trusted and its records are refused`,
        detail,
        key: `revoked|${rec.agent}|${revoked.atUs}`,
      });
      return untrusted('revoked', detail);
    }
    let binding = this.bindings.get(rec.agent);
    const newKey = rec.public_key && rec.public_key.length > 0 ? rec.public_key : null;
    const fp = (k: Buffer) => k.toString('base64').slice(0, 12);
    /** The token's claims, when it holds for this record; else the alert and verdict. */
    const proof = (): { jti: string } | { refused: { verdict: Verdict; effects: TrustEffects } } => {
      if (!this.secret)
        return { refused: untrusted('unenrolled', 'the coordinator holds no enrollment secret to verify its token') };
      try {
        const claims = verifyEnrollToken(token!, this.secret, nowMs);
        if (agentIdFor(claims) !== rec.agent)
          throw new Error(`the token enrolls agent ${agentIdFor(claims)}, not ${rec.agent}`);
        if (claims.vm !== rec.vm) throw new Error(`the token is for VM ${claims.vm}, the record claims ${rec.vm}`);
        // the key comes with proof that its holder signed this very record
        if (newKey && !signedBy(newKey)) throw new Error('the record is not signed by the public key it registers');
        return { jti: claims.jti };
      } catch (err) {
        const detail = describeError(err).message;
        effects.alerts.push({
          rule: 'forged',
          severity: 1,
          signature: `Agent ${rec.agent} presented an enrollment token that does not hold`,
          detail,
          key: `forged|${rec.agent}|${id.incarnation}`,
        });
        return { refused: untrusted('forged', detail) };
      }
    };
    // once bound, the binding is what counts (an agent repeats its token until told it was
    // verified, and tokens expire); only an unbound agent's token is checked
    if (token !== null && !binding) {
      const p = proof();
      if ('refused' in p) return p.refused;
      binding = {
        vm: rec.vm,
        hw: id.hw,
        maxGeneration: id.generation,
        enrolledUs: nowMs * 1000,
        ...(newKey ? { publicKey: newKey.toString('base64'), tokenId: p.jti } : {}),
      };
      this.bindings.set(rec.agent, binding);
      effects.binding = binding;
      effects.keyRegistered = !!newKey;
    }
    if (!binding) return untrusted('unenrolled', 'no verified enrollment is known for it');
    if (binding.publicKey) {
      // first key wins: another one is refused, whatever comes with it (its token is spent)
      const bound = Buffer.from(binding.publicKey, 'base64');
      if (newKey && !newKey.equals(bound)) {
        const detail = `it presents signing key ${fp(newKey)}…, but ${fp(bound)}… is registered for it; a new key needs a new enrollment token (a new agent id)`;
        effects.alerts.push({
          rule: 'key-replaced',
          severity: 1,
          signature: `Agent ${rec.agent} tried to replace its signing key without a fresh enrollment; refused`,
          detail,
          key: `key-replaced|${rec.agent}|${fp(newKey)}`,
        });
        return untrusted('key-replaced', detail);
      }
      if (!signedBy(bound)) {
        const detail = `the record is not signed by the key registered for agent ${rec.agent}`;
        effects.alerts.push({
          rule: 'unsigned',
          severity: 1,
          signature: `A record claims to be agent ${rec.agent}'s heartbeat but is not signed by its key`,
          detail,
          key: `unsigned|${rec.agent}|${id.incarnation}`,
        });
        return untrusted('unsigned', detail);
      }
    } else if (newKey) {
      // bound before it had a key: the key is registered only with the token that enrolled it
      const p = token !== null ? proof() : null;
      if (p && 'refused' in p) return p.refused;
      if (p) {
        binding.publicKey = newKey.toString('base64');
        binding.tokenId = p.jti;
        effects.binding = binding;
        effects.keyRegistered = true;
      } else {
        effects.alerts.push({
          rule: 'key-unproven',
          severity: 2,
          signature: `Agent ${rec.agent} presented a signing key without its enrollment token; not registered`,
          detail:
            'a key is registered only with a valid enrollment token; its records on signed topics are refused until it enrolls again',
          key: `key-unproven|${rec.agent}|${fp(newKey)}`,
        });
      }
    }
    if (binding.vm !== rec.vm) {
      const detail = `it is enrolled for VM ${binding.vm} but claims VM ${rec.vm}`;
      effects.alerts.push({
        rule: 'wrong-vm',
        severity: 1,
        signature: `Agent ${rec.agent} claims a VM it is not enrolled for`,
        detail,
        key: `wrong-vm|${rec.agent}|${rec.vm}`,
      });
      return untrusted('wrong-vm', detail);
    }
    if (binding.hw !== id.hw) {
      const detail = `it runs on another machine (hardware ${id.hw.slice(0, 12)}…, enrolled on ${binding.hw.slice(0, 12)}…): a clone of VM ${rec.vm}`;
      effects.alerts.push({
        rule: 'clone',
        severity: 2,
        signature: `A clone of VM ${rec.vm} runs agent ${rec.agent}; the clone is not trusted`,
        detail,
        key: `clone|${rec.agent}|${id.incarnation}`,
      });
      effects.commands.push({
        kind: 'reenroll',
        args: { incarnation: id.incarnation, reason: 'clone' },
        key: `reenroll|${rec.agent}|${id.incarnation}`,
      });
      return untrusted('clone', detail);
    }
    if (id.generation < binding.maxGeneration) {
      effects.alerts.push({
        rule: 'reverted',
        severity: 4,
        signature: `VM ${rec.vm} was reverted to an earlier state (agent generation ${id.generation} after ${binding.maxGeneration}); its file baseline is re-based`,
        detail: 'file changes explained by the revert are not reported one by one',
        key: `reverted|${rec.agent}|${id.incarnation}`,
      });
      // …and goes on from a generation past every one seen, so its next restart is not this revert again
      effects.commands.push({
        kind: 'rebaseline',
        args: { incarnation: id.incarnation, reason: 'reverted', generation: String(binding.maxGeneration + 1) },
        key: `rebaseline|${rec.agent}|${id.incarnation}`,
      });
      if (token !== null)
        effects.commands.push({
          kind: 'enrolled',
          args: { incarnation: id.incarnation },
          key: `enrolled|${rec.agent}|${id.incarnation}`,
        });
      return { verdict: { trusted: true, detail: `reverted to generation ${id.generation}`, identity: id }, effects };
    }
    if (id.generation > binding.maxGeneration) {
      binding.maxGeneration = id.generation;
      effects.binding = binding;
    }
    // the verdict on this start (once per incarnation): the agent stops showing its token, and
    // its file integrity compares with its baseline (it waits for this, see the agent)
    effects.commands.push({
      kind: 'enrolled',
      args: { incarnation: id.incarnation },
      key: `enrolled|${rec.agent}|${id.incarnation}`,
    });
    return { verdict: { trusted: true, detail: 'enrolled for this VM on this machine', identity: id }, effects };
  }
}

/** A watchdog's enrollment: its host's signing key, registered with a host token. */
export interface HostBinding {
  host: string;
  /** The Ed25519 public key (base64 of the raw 32 bytes) its records are signed with. */
  publicKey: string;
  /** The id of the host token that vouched for the key. */
  tokenId: string;
  enrolledUs: number;
}

export type WatchdogDistrust = 'forged' | 'key-replaced' | 'unsigned' | 'key-unproven';

export interface WatchdogEffects {
  /** A binding made by this record: persist it and publish its key. */
  binding?: HostBinding;
  alerts: Array<{ rule: WatchdogDistrust; severity: number; signature: string; detail: string; key: string }>;
}

/**
 * Watchdog trust: which key speaks for which hypervisor host. A watchdog enrolls with a host
 * token signed by the cluster's secret (`cordon hosts token --host H`) and an Ed25519 key pair
 * it makes at its first start; its heartbeat (kind `watchdog`, key `watchdog:<host>`) carries
 * the token in a header and the public key, and is signed by that key (proof of possession).
 * The token must name the heartbeat's host. First key wins, as for agents: another key for the
 * same host is refused and alerted whatever token comes with it (a new key for a host means
 * the operator withdraws the old one first), and a host's heartbeat not signed by its
 * registered key is alerted. A token that does not verify, or names another host, registers
 * nothing and is alerted.
 */
export class WatchdogTrust {
  readonly bindings = new Map<string, HostBinding>();

  constructor(private readonly secret: Buffer | null) {}

  judge(
    rec: AgentRecord,
    token: string | null,
    nowMs: number,
    signedBy: SignedBy,
  ): { trusted: boolean; effects: WatchdogEffects } {
    const effects: WatchdogEffects = { alerts: [] };
    const host = rec.host ?? '';
    const newKey = rec.public_key && rec.public_key.length > 0 ? rec.public_key : null;
    const fp = (k: Buffer) => k.toString('base64').slice(0, 12);
    const bound = this.bindings.get(host);
    const refuse = (rule: WatchdogDistrust, severity: number, signature: string, detail: string, key: string) => {
      effects.alerts.push({ rule, severity, signature, detail, key });
      return { trusted: false, effects };
    };
    if (bound) {
      const boundKey = Buffer.from(bound.publicKey, 'base64');
      if (newKey && !newKey.equals(boundKey))
        return refuse(
          'key-replaced',
          1,
          `The watchdog of host ${host} presented another signing key than the one registered for it; refused`,
          `it presents key ${fp(newKey)}…, but ${fp(boundKey)}… is registered for host ${host} (first key wins)`,
          `watchdog-key-replaced|${host}|${fp(newKey)}`,
        );
      if (!signedBy(boundKey))
        return refuse(
          'unsigned',
          1,
          `A record claims to be the heartbeat of host ${host}'s watchdog but is not signed by its key`,
          `the record is not signed by the key registered for host ${host}`,
          `watchdog-unsigned|${host}`,
        );
      return { trusted: true, effects };
    }
    if (!newKey) return { trusted: false, effects }; // a watchdog that does not sign (no token): nothing to register
    if (token === null)
      return refuse(
        'key-unproven',
        2,
        `The watchdog of host ${host} presented a signing key without a host token; not registered`,
        'a watchdog key is registered only with a valid host token (cordon hosts token --host <host>)',
        `watchdog-key-unproven|${host}|${fp(newKey)}`,
      );
    try {
      if (!this.secret) throw new Error('the coordinator holds no enrollment secret to verify its token');
      const claims = verifyHostToken(token, this.secret, nowMs);
      if (claims.host !== host) throw new Error(`the token is for host ${claims.host}, the record claims ${host}`);
      if (rec.agent !== `watchdog:${host}`) throw new Error(`the record's id ${rec.agent} is not watchdog:${host}`);
      if (!signedBy(newKey)) throw new Error('the record is not signed by the public key it registers');
      const binding: HostBinding = {
        host,
        publicKey: newKey.toString('base64'),
        tokenId: claims.jti,
        enrolledUs: nowMs * 1000,
      };
      this.bindings.set(host, binding);
      effects.binding = binding;
      return { trusted: true, effects };
    } catch (err) {
      return refuse(
        'forged',
        1,
        `The watchdog of host ${host} presented a host token that does not hold; no key registered`,
        describeError(err).message,
        `watchdog-forged|${host}|${fp(newKey)}`,
      );
    }
  }
}
