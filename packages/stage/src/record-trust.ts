import { randomUUID } from 'node:crypto';
import {
  followTable,
  readKeys,
  type Bus,
  type ConsumedRecord,
  type ProduceRecord,
  type TableFollower,
} from '@cordon/bus';
import { describeError, type Clock, type Logger } from '@cordon/runtime';
import {
  agentEnforcer,
  alertId,
  codecFor,
  complete,
  NO_FLOW,
  TOPICS,
  watchdogEnforcer,
  type ProducerKey,
} from '@cordon/schemas';
import { ERR_RECORD_FORGED, ERR_RECORD_MISBOUND, ERR_RECORD_UNSIGNED } from './errors.js';
import { checkGroupsAsync, PRODUCER_HEADER, RecordChecker, SIGNATURE_HEADER } from './record-sign.js';

/**
 * Which topics carry records of agents and watchdogs, and what a record there says about who
 * produced it. `required`: every record must be signed (only agents write these topics).
 * `if-signed`: other stages write the topic too (dpi's alerts, `cordon replay`'s packets), so
 * an unsigned record passes, but one that carries a producer's signature is held to it — a
 * forged or misbound record that claims to come from an agent is refused.
 */
interface TopicRule {
  need: 'required' | 'if-signed';
  /**
   * On an `if-signed` topic: the producer an unsigned record claims to come from (the sensor
   * or enforcer it names). When that producer has a registered key, it signs everything it
   * writes, so an unsigned record in its name is refused: an enrolled watchdog's or agent's
   * packets and reports cannot be forged by leaving the signature off.
   */
  claims?(value: Record<string, unknown>, key: string): string | null;
  /** Why this record does not belong to `p` (null: it does). */
  misbound(p: ProducerKey, value: Record<string, unknown>, key: string): string | null;
}

const claimsVm = (p: ProducerKey, value: Record<string, unknown>, key: string, keyIs: 'vm' | 'vm|…'): string | null => {
  if (p.kind !== 'agent') return `a ${p.kind} does not write this topic`;
  if (value.agent !== p.producer) return `the record names agent ${String(value.agent)}`;
  if (value.vm !== p.vm)
    return `agent ${p.producer} is enrolled for VM ${p.vm ?? '(none)'}, the record claims VM ${String(value.vm)}`;
  const keyOk = keyIs === 'vm' ? key === p.vm : key.startsWith(`${p.vm}|`);
  if (!keyOk) return `its key ${JSON.stringify(key)} is not VM ${p.vm}'s`;
  return null;
};

/**
 * The sensor / enforcer name a producer speaks as: `agent:<id>` for an agent, `watchdog:<host>`
 * for a watchdog — its registered host, so a watchdog's records are bound to the host its token
 * named (null: a watchdog key whose id is not its host's, which binds it to nothing).
 */
function sensorOf(p: ProducerKey): string | null {
  if (p.kind === 'agent') return agentEnforcer(p.producer);
  return p.host && p.producer === watchdogEnforcer(p.host) ? p.producer : null;
}

/** The producer id a sensor / enforcer name stands for (`agent:<id>` → `<id>`; `watchdog:<host>` as is). */
function producerOfSensor(sensor: unknown): string | null {
  if (typeof sensor !== 'string') return null;
  if (sensor.startsWith('agent:')) return sensor.slice('agent:'.length) || null;
  if (sensor.startsWith('watchdog:') && sensor.length > 'watchdog:'.length) return sensor;
  return null;
}

export const SIGNED_TOPICS: Readonly<Record<string, TopicRule>> = {
  [TOPICS.logs]: { need: 'required', misbound: (p, v, k) => claimsVm(p, v, k, 'vm|…') },
  [TOPICS.fim]: { need: 'required', misbound: (p, v, k) => claimsVm(p, v, k, 'vm|…') },
  [TOPICS.netconf]: { need: 'required', misbound: (p, v, k) => claimsVm(p, v, k, 'vm') },
  [TOPICS.processes]: { need: 'required', misbound: (p, v, k) => claimsVm(p, v, k, 'vm') },
  [TOPICS.packets]: {
    need: 'if-signed',
    claims: (v) => producerOfSensor(v.sensor),
    misbound: (p, v) => {
      const sensor = sensorOf(p);
      if (sensor === null) return `watchdog ${p.producer} is not registered as watchdog:<its host>`;
      if (v.sensor !== sensor) return `the batch names sensor ${String(v.sensor)}, its signer is ${sensor}`;
      if (p.kind === 'agent' && v.vm !== p.vm)
        return `agent ${p.producer} is enrolled for VM ${p.vm ?? '(none)'}, the batch claims VM ${String(v.vm)}`;
      // only a watchdog recovers a lost agent's frames; an agent's "recovery" would only hide its own
      if (p.kind === 'agent' && v.recovery_of != null)
        return `agent ${p.producer} marks its batch as a recovery of ${String(v.recovery_of)}: only a watchdog recovers a lost agent's frames`;
      return null;
    },
  },
  // An enforcer's report on its own decisions only (key and value name it). An unsigned report
  // passes unless its enforcer has a registered key; readers never let a report make or lift a block.
  [TOPICS.blockStatus]: {
    need: 'if-signed',
    claims: (_v, k) => producerOfSensor(k.slice(0, Math.max(0, k.indexOf('|')))),
    misbound: (p, v, k) => {
      const enforcer = sensorOf(p);
      if (enforcer === null) return `watchdog ${p.producer} is not registered as watchdog:<its host>`;
      if (!k.startsWith(`${enforcer}|`)) return `its key ${JSON.stringify(k)} is not ${enforcer}'s`;
      if (v.enforcer !== undefined && v.enforcer !== enforcer)
        return `the report names enforcer ${String(v.enforcer)}, its signer is ${enforcer}`;
      return null;
    },
  },
  [TOPICS.alerts]: {
    need: 'if-signed',
    misbound: (p, v, k) => {
      const sensor = sensorOf(p);
      if (sensor === null) return `watchdog ${p.producer} is not registered as watchdog:<its host>`;
      if (v.sensor !== sensor) return `the alert names sensor ${String(v.sensor)}, its signer is ${sensor}`;
      if (p.kind === 'agent' && (v.vm !== p.vm || k !== p.vm))
        return `agent ${p.producer} is enrolled for VM ${p.vm ?? '(none)'}, the alert claims VM ${String(v.vm)}`;
      return null;
    },
  },
};

interface Entry {
  rec: ProducerKey;
  /** Its records' check; roots it verified are good under this key only (a replaced key gets a new one). */
  checker: RecordChecker;
}

/**
 * The registered producer keys: `cordon.producers.v1` followed as a table, each key parsed once
 * into a KeyObject. A producer not in it yet (enrolled a moment ago, the follower behind) is
 * looked up on the topic directly — at most once a second per producer, so a flood of records
 * from made-up producers costs one read per name per second, not one per record.
 */
export class ProducerKeys {
  private readonly table = new Map<string, Entry>();
  private readonly lookedUp = new Map<string, number>();
  private follower: TableFollower | null = null;
  private readonly codec = codecFor(TOPICS.producers);

  constructor(
    private readonly bus: Bus,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  async start(group: string): Promise<TableFollower> {
    this.follower = await followTable(this.bus, TOPICS.producers, group, (r) => this.apply(r));
    return this.follower;
  }

  apply(r: ConsumedRecord): void {
    const id = r.key?.toString() ?? '';
    if (!r.value) {
      this.table.delete(id);
      return;
    }
    try {
      const rec = this.codec.decode(r.value);
      if (rec.producer !== id) throw new Error(`its key ${id} names another producer than its value (${rec.producer})`);
      this.table.set(id, { rec, checker: new RecordChecker(rec.public_key) });
    } catch (err) {
      // a key that does not parse verifies nothing: that producer's records are refused
      this.table.delete(id);
      this.log.warn(
        { err: describeError(err), producer: id },
        'A registered producer key is unusable; records signed as that producer are refused.',
      );
    }
  }

  get(producer: string): Entry | undefined {
    return this.table.get(producer);
  }

  async lookup(producer: string): Promise<Entry | undefined> {
    const have = this.table.get(producer);
    if (have) return have;
    const now = this.clock.now();
    if (now - (this.lookedUp.get(producer) ?? -Infinity) < 1000) return undefined;
    this.lookedUp.set(producer, now);
    if (this.lookedUp.size > 10_000) this.lookedUp.clear();
    const found = (await readKeys(this.bus, TOPICS.producers, [producer])).get(producer);
    if (found) this.apply(found);
    return this.table.get(producer);
  }
}

type Refusal = 'unsigned' | 'forged' | 'misbound';

/** A signed record's signature verdict: its producer, that producer's key entry (null: none registered), whether it verifies. */
export interface Signed {
  producer: string;
  entry: Entry | null;
  ok: boolean;
}

const SIGNATURES: Record<Refusal, string> = {
  unsigned: 'Records refused: unsigned records on a topic only agents and watchdogs write',
  forged: 'Records refused: a signature as an agent or watchdog does not hold',
  misbound: 'Records refused: an agent or watchdog spoke for a VM or host it is not enrolled for',
};

/**
 * The check of one stage's records: signature, then binding. A refused record goes to the DLQ
 * with its code and raises an alert — at most one per kind a minute per stage, with the count
 * since the last one — that carries no addresses, so it can never become a block.
 */
export class RecordTrust {
  private readonly lastAlert = new Map<Refusal, { at: number; since: number }>();
  private readonly alertCodec = codecFor(TOPICS.alerts);

  private readonly required: ReadonlySet<string>;
  /** The key table once loaded: signatures() then starts the checks at once. */
  private loaded: ProducerKeys | null = null;

  /** `requireSigned`: `if-signed` topics on which an unsigned record is refused too (trust.requireSigned). */
  constructor(
    private readonly stage: string,
    private readonly keys: () => Promise<ProducerKeys>,
    private readonly clock: Clock,
    private readonly log: Logger,
    requireSigned: readonly string[] = [],
  ) {
    this.required = new Set(requireSigned);
  }

  covers(topic: string): boolean {
    return Object.hasOwn(SIGNED_TOPICS, topic);
  }

  /** Null when the record may be used; else the error to dead-letter it with. */
  async check(r: ConsumedRecord, value: unknown): Promise<(Error & { code: string; refusal: Refusal }) | null> {
    return (await this.checkAll([{ r, value }]))[0]!;
  }

  /** The verdict on a record without a producer header or signature. */
  private async checkUnsigned(
    r: ConsumedRecord,
    value: unknown,
  ): Promise<(Error & { code: string; refusal: Refusal }) | null> {
    const rule = SIGNED_TOPICS[r.topic]!;
    if (rule.need === 'required' || this.required.has(r.topic))
      return Object.assign(ERR_RECORD_UNSIGNED(r.topic), { refusal: 'unsigned' as const });
    // an unsigned record in the name of a producer that signs: the table only (no lookup, so
    // made-up names cost nothing), and a key registered a moment ago may not be in it yet
    const claimed = rule.claims?.((value ?? {}) as Record<string, unknown>, r.key?.toString() ?? '') ?? null;
    if (claimed !== null && (await this.keys()).get(claimed))
      return Object.assign(ERR_RECORD_UNSIGNED(r.topic, claimed), { refusal: 'unsigned' as const });
    return null;
  }

  /**
   * Start checking the signatures of a batch's records: each producer's key looked up once, its
   * records checked together (RecordChecker: a send that arrived whole costs one tree and one
   * signature check) on a libuv pool thread — when the key table is loaded, the checks start
   * before this returns, so the consume loop decodes the batch meanwhile. Records without a
   * producer header or signature are not in the result (checkAll judges them).
   */
  signatures(records: readonly ConsumedRecord[]): Promise<Map<ConsumedRecord, Signed>> {
    const byProducer = new Map<string, ConsumedRecord[]>();
    // a batch holds few producers, one after the other: the id of the record before is reused
    // when its header holds the same bytes, instead of decoding a string a record
    let lastId: Buffer | null = null;
    let lastList: ConsumedRecord[] = [];
    for (const r of records) {
      const id = r.headers[PRODUCER_HEADER];
      if (id === undefined || r.headers[SIGNATURE_HEADER] === undefined) continue;
      if (lastId === null || !lastId.equals(id)) {
        const producer = id.toString();
        let list = byProducer.get(producer);
        if (!list) byProducer.set(producer, (list = []));
        lastId = id;
        lastList = list;
      }
      lastList.push(r);
    }
    const out = new Map<ConsumedRecord, Signed>();
    if (byProducer.size === 0) return Promise.resolve(out);
    const loaded = this.loaded;
    // producers whose key is in the table: checked at once, in one pool task
    const now: Array<{ producer: string; entry: Entry; records: ConsumedRecord[] }> = [];
    if (loaded)
      for (const [producer, records] of byProducer) {
        const entry = loaded.get(producer);
        if (entry) now.push({ producer, entry, records });
      }
    const first = checkGroupsAsync(
      now.map((g) => ({ checker: g.entry.checker, producer: g.producer, records: g.records })),
    );
    // awaited below; a failure is seen there, not as an unhandled rejection meanwhile
    first.catch(() => {});
    return (async () => {
      const keys = loaded ?? (this.loaded = await this.keys());
      const done = new Set(now.map((g) => g.producer));
      // the rest: keys looked up (a producer enrolled a moment ago), then checked
      const later: typeof now = [];
      for (const [producer, records] of byProducer) {
        if (done.has(producer)) continue;
        const entry = keys.get(producer) ?? (await keys.lookup(producer));
        if (entry) later.push({ producer, entry, records });
        else {
          const none: Signed = { producer, entry: null, ok: false };
          for (const r of records) out.set(r, none);
        }
      }
      const verdicts = [
        ...(await first),
        ...(await checkGroupsAsync(
          later.map((g) => ({ checker: g.entry.checker, producer: g.producer, records: g.records })),
        )),
      ];
      [...now, ...later].forEach((g, n) => {
        const v = verdicts[n]!;
        // two verdict objects a producer, shared by its records (not one a record)
        const good: Signed = { producer: g.producer, entry: g.entry, ok: true };
        const bad: Signed = { producer: g.producer, entry: g.entry, ok: false };
        for (let j = 0; j < g.records.length; j++) out.set(g.records[j]!, v[j] ? good : bad);
      });
      return out;
    })();
  }

  /**
   * `check` over a batch's records at once, one verdict per record, in order. `started`: what
   * `signatures` gave for (at least) these records, begun before they were decoded.
   */
  async checkAll(
    items: readonly { r: ConsumedRecord; value: unknown }[],
    started?: Promise<Map<ConsumedRecord, Signed>>,
  ): Promise<Array<(Error & { code: string; refusal: Refusal }) | null>> {
    const signed = await (started ?? this.signatures(items.map((i) => i.r)));
    const out = new Array<(Error & { code: string; refusal: Refusal }) | null>(items.length).fill(null);
    for (let i = 0; i < items.length; i++) {
      const { r, value } = items[i]!;
      const s = signed.get(r);
      // the same verdict as for one record: required topics, requireSigned, and an unsigned
      // record in the name of an enrolled producer
      if (s === undefined) out[i] = await this.checkUnsigned(r, value);
      else if (s.entry === null)
        out[i] = Object.assign(ERR_RECORD_FORGED(r.topic, s.producer, 'no key is registered for it'), {
          refusal: 'forged' as const,
        });
      else if (!s.ok)
        out[i] = Object.assign(
          ERR_RECORD_FORGED(r.topic, s.producer, 'the signature does not verify with its registered key'),
          { refusal: 'forged' as const },
        );
      else {
        const why = SIGNED_TOPICS[r.topic]!.misbound(
          s.entry.rec,
          (value ?? {}) as Record<string, unknown>,
          r.key?.toString() ?? '',
        );
        if (why !== null)
          out[i] = Object.assign(ERR_RECORD_MISBOUND(r.topic, s.producer, why), { refusal: 'misbound' as const });
      }
    }
    return out;
  }

  /** The alert for a refusal, or null while this kind was alerted less than a minute ago. */
  alertFor(err: Error & { code: string; refusal: Refusal }, r: ConsumedRecord, value: unknown): ProduceRecord | null {
    const now = this.clock.now();
    const prev = this.lastAlert.get(err.refusal);
    if (prev && now - prev.at < 60_000) {
      prev.since++;
      return null;
    }
    this.lastAlert.set(err.refusal, { at: now, since: 0 });
    const v = (value ?? {}) as Record<string, unknown>;
    const claimedVm = typeof v.vm === 'string' && v.vm ? v.vm : null;
    const producer = r.headers[PRODUCER_HEADER]?.toString() ?? null;
    this.log.warn(
      { err: describeError(err), producer, claimedVm, refusedSinceLastAlert: prev?.since ?? 0 },
      'A record was refused: it is not bound to an enrolled producer. An alert says so.',
    );
    const alert = complete(TOPICS.alerts, {
      alert_id: alertId('record-trust', this.stage, err.refusal, r.topic, r.partition, r.offset),
      ts_us: now * 1000,
      stage: this.stage,
      vm: claimedVm,
      sensor: producer ? `claimed:${producer}` : 'unsigned',
      rule_id: `cordon:record-${err.refusal}`,
      rule_rev: 1,
      signature: SIGNATURES[err.refusal],
      severity: 1,
      category: 'record-trust',
      action: 'alert',
      // no addresses: an alert about a refused record must never itself become a block
      ...NO_FLOW,
      evidence: JSON.stringify({
        code: err.code,
        message: err.message,
        topic: r.topic,
        partition: r.partition,
        offset: String(r.offset),
        key: r.key?.toString() ?? null,
        producer,
        refusedSinceLastAlert: prev?.since ?? 0,
      }),
    });
    return { key: Buffer.from(claimedVm ?? this.stage), value: this.alertCodec.encode(alert) };
  }
}

/** The key table of a stage: started on first use, closed with the stage. */
export function lazyProducerKeys(
  bus: Bus,
  stage: string,
  clock: Clock,
  log: Logger,
  onFollower: (f: TableFollower) => void,
): () => Promise<ProducerKeys> {
  let started: Promise<ProducerKeys> | null = null;
  return () =>
    (started ??= (async () => {
      const keys = new ProducerKeys(bus, clock, log);
      onFollower(await keys.start(`cordon-${stage}-producers-${randomUUID()}`));
      return keys;
    })());
}
