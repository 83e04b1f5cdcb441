import { readKeys, readRange, readTable, type ProduceRecord } from '@cordon/bus';
import { describeError } from '@cordon/runtime';
import { inventoryKey } from '@cordon/policy';
import type {
  ConnectorCursor,
  ConnectorHandlers,
  PlatformConnector,
  PlatformHost,
  PlatformState,
  PlatformVm,
} from '@cordon/platform';
import { defineStage, type Stage } from '@cordon/stage';
import { codecFor, TOPICS, type InventoryRecord, type StageState, type VmEvent } from '@cordon/schemas';
import { inventoryConfigSchema, type InventoryConfig } from './config.js';
import { connectorFor } from './connectors.js';
import { ERR_INVENTORY_STATE } from './errors.js';
import {
  eventIdOf,
  hostRecord,
  sameRecord,
  vmEventOf,
  vmRecord,
  type Origin,
  type SourceCheckpoint,
} from './records.js';

const STAGE = 'inventory';
/** Header on every vm-event naming the source it came from (to find what a crashed run already sent). */
export const SOURCE_HEADER = 'cordon-source';
export const checkpointKey = (source: string): string => `${STAGE}|source|${source}`;

/**
 * The inventory stage: each configured platform (vSphere, libvirt, an inventory file) through
 * its connector → the compacted `inventory` topic (a record per host and VM, a tombstone for
 * one that is gone) and `vm-events` (each lifecycle event once, with the platform's own id
 * and time).
 *
 * Restart and reconnect: the records this source wrote are read back from the inventory
 * topic, so a resync publishes only what changed while it was away (a VM deleted meanwhile
 * becomes a tombstone). The connector's cursor is checkpointed on the state topic after each
 * event is acknowledged; on start the events written after the last checkpoint are read back
 * from `vm-events` and not published again when the connector delivers them once more.
 */
export const inventoryStage = defineStage({
  name: STAGE,
  summary: 'vSphere, libvirt and inventory files → hosts, VMs and their lifecycle events',
  config: inventoryConfigSchema,
  when: 'configured',
  inputs: () => [],
  outputs: () => [TOPICS.inventory, TOPICS.vmEvents, TOPICS.state],
  reads: () => [TOPICS.inventory, TOPICS.vmEvents, TOPICS.state],
  async start(stage) {
    const table = await readTable(stage.bus, TOPICS.inventory);
    const codec = codecFor(TOPICS.inventory);
    const written: Array<[string, InventoryRecord]> = [];
    for (const [, r] of table) {
      if (!r.value || !r.key) continue;
      try {
        written.push([r.key.toString(), codec.decode(r.value)]);
      } catch (err) {
        stage.ctx.log.warn(
          { err: describeError(err), key: r.key.toString() },
          'An inventory record does not decode; it is left alone.',
        );
      }
    }
    const followers: SourceFollower[] = [];
    for (const source of stage.config.sources) {
      const connector = connectorFor(source, stage.ctx);
      const f = new SourceFollower(
        stage,
        connector,
        new Map(written.filter(([, rec]) => rec.source !== null && rec.source === connector.source)),
      );
      followers.push(f);
      await f.start();
    }
    return { sources: followers.map((f) => f.connector.source) };
  },
});

class SourceFollower {
  readonly connector: PlatformConnector;
  private readonly origin: Origin;
  /** Records this source has on the topic now, by key. */
  private readonly published: Map<string, InventoryRecord>;
  /** Event ids already on the topic past the last checkpoint (a crashed run sent them). */
  private readonly suppress = new Set<string>();
  /** VMs whose deletion a resync found and reported: the platform's own event for it is not sent again. */
  private readonly deletedByResync = new Set<string>();
  private readonly vmCodec = codecFor(TOPICS.inventory);
  private readonly eventCodec = codecFor(TOPICS.vmEvents);
  private readonly stateCodec = codecFor(TOPICS.state);

  constructor(
    private readonly stage: Stage<InventoryConfig>,
    connector: PlatformConnector,
    published: Map<string, InventoryRecord>,
  ) {
    this.connector = connector;
    this.origin = { connector: this.connector.kind, source: this.connector.source };
    this.published = published;
  }

  async start(): Promise<void> {
    const { log } = this.stage.ctx;
    const from = await this.restore();
    const handlers: ConnectorHandlers = {
      onSync: (s) => this.sync(s),
      onVm: (vm) => this.putVm(vm),
      onVmRemoved: (id) => this.remove(inventoryKey('vm', id)),
      onHost: (h) => this.putHost(h),
      onEvent: async (ev, cursor) => {
        const id = eventIdOf(this.origin, ev);
        if (this.suppress.delete(id) || (ev.kind === 'deleted' && this.deletedByResync.delete(ev.vm))) {
          this.stage.ctx.metrics.inc('events_suppressed');
        } else {
          const event = vmEventOf(this.origin, ev);
          await this.stage.send(TOPICS.vmEvents, [
            {
              key: Buffer.from(ev.vm),
              value: this.eventCodec.encode(event),
              headers: { [SOURCE_HEADER]: Buffer.from(this.origin.source) },
            },
          ]);
          this.stage.ctx.metrics.inc('events');
          await this.noteExistence(event);
        }
        await this.checkpoint(cursor);
      },
      onCheckpoint: (cursor) => this.checkpoint(cursor),
      onStatus: (s) => {
        if (s.connected) log.info({ source: this.origin.source }, 'Connected to the platform.');
        else
          log.warn(
            { source: this.origin.source, err: s.error },
            'The platform is not reachable; reconnecting with backoff.',
          );
      },
    };
    this.stage.watch(`following ${this.origin.source}`, this.connector.run(handlers, from));
    this.stage.onStop(() => this.connector.stop());
    log.info(
      { source: this.origin.source, records: this.published.size, resumeFrom: from ?? null },
      'Following the platform.',
    );
  }

  /** The checkpoint's cursor, and the event ids sent after it. */
  private async restore(): Promise<ConnectorCursor | undefined> {
    const { bus, ctx } = this.stage;
    const key = checkpointKey(this.origin.source);
    let rec;
    try {
      rec = (await readKeys(bus, TOPICS.state, [key])).get(key);
    } catch (err) {
      ctx.log.warn(
        { err: describeError(err) },
        "The state topic cannot be read: following from the platform's present.",
      );
      return undefined;
    }
    if (!rec?.value) return undefined;
    try {
      const st = this.stateCodec.decode(rec.value);
      const cp = JSON.parse(st.state.toString('utf8')) as SourceCheckpoint;
      const from = new Map(Object.entries(st.output_offsets).map(([p, o]) => [Number(p), BigInt(o)]));
      await readRange(
        bus,
        TOPICS.vmEvents,
        (r) => {
          if (!r.value || r.headers[SOURCE_HEADER]?.toString() !== this.origin.source) return;
          const ev = this.eventCodec.decode(r.value);
          this.suppress.add(ev.event_id);
          // a deletion a resync reported is the same fact as the platform's own event for it
          if (ev.kind === 'deleted') this.deletedByResync.add(ev.vm);
        },
        { from },
      );
      return cp.cursor;
    } catch (err) {
      const e = ERR_INVENTORY_STATE.withCause(err, this.origin.source, describeError(err).message);
      ctx.log.error({ err: e }, "The inventory checkpoint is unreadable; following from the platform's present.");
      await this.stage.send(TOPICS.dlq, [this.stage.deadLetter(rec, rec, e)]);
      return undefined;
    }
  }

  private async checkpoint(cursor: ConnectorCursor): Promise<void> {
    // every event sent so far is acknowledged: these ends cover them
    const ends = await this.stage.bus.admin.endOffsets(TOPICS.vmEvents);
    const st: StageState = {
      stage: STAGE,
      input_topic: this.origin.source,
      input_partition: 0,
      input_offset: 0,
      ts_us: this.stage.ctx.clock.now() * 1000,
      state: Buffer.from(JSON.stringify({ cursor } satisfies SourceCheckpoint)),
      output_offsets: Object.fromEntries([...ends].map(([p, o]) => [String(p), Number(o)])),
      emitted_ids: [],
    };
    await this.stage.send(TOPICS.state, [
      { key: Buffer.from(checkpointKey(this.origin.source)), value: this.stateCodec.encode(st) },
    ]);
  }

  private now(): number {
    return this.stage.ctx.clock.now() * 1000;
  }

  /** The full state: write what differs from what this source has on the topic, tombstone what is gone. */
  private async sync(s: PlatformState): Promise<void> {
    const want = new Map<string, InventoryRecord>();
    for (const h of s.hosts) {
      const r = hostRecord(this.origin, h, this.now());
      want.set(inventoryKey('host', r.id), r);
    }
    for (const vm of s.vms) want.set(inventoryKey('vm', vm.id), vmRecord(this.origin, vm, this.now()));
    const out: ProduceRecord[] = [];
    for (const [key, rec] of want) {
      const had = this.published.get(key);
      if (had && sameRecord(had, rec)) continue;
      out.push({ key: Buffer.from(key), value: this.vmCodec.encode(rec) });
      this.published.set(key, rec);
    }
    // A VM gone while we were away: a platform may not be able to say so any more (vSphere's
    // VmRemovedEvent names the VM by a handle a new session cannot resolve; libvirt keeps no
    // history), so the resync reports the deletion itself, once.
    const gone: VmEvent[] = [];
    for (const [key, had] of [...this.published]) {
      if (want.has(key)) continue;
      out.push({ key: Buffer.from(key), value: null });
      this.published.delete(key);
      if (had.kind !== 'vm') continue;
      this.deletedByResync.add(had.id);
      gone.push({
        event_id: `${this.origin.source}#resync:deleted:${had.id}`,
        vm: had.id,
        ts_us: this.now(),
        kind: 'deleted',
        host: had.host,
        from_host: null,
        snapshot: null,
        connector: this.origin.connector,
        vm_name: had.name,
        source_vm: null,
        source: this.origin.source,
      });
    }
    await this.stage.send(TOPICS.inventory, out);
    if (gone.length) {
      const headers = { [SOURCE_HEADER]: Buffer.from(this.origin.source) };
      await this.stage.send(
        TOPICS.vmEvents,
        gone.map((e) => ({ key: Buffer.from(e.vm), value: this.eventCodec.encode(e), headers })),
      );
      this.stage.ctx.log.info(
        { source: this.origin.source, vms: gone.map((e) => e.vm) },
        'VMs deleted while the platform was not followed were reported deleted.',
      );
    }
    this.stage.ctx.metrics.set('vms', s.vms.length);
    this.stage.ctx.log.info(
      { source: this.origin.source, hosts: s.hosts.length, vms: s.vms.length, written: out.length },
      'Inventory synchronised with the platform.',
    );
  }

  private async put(key: string, rec: InventoryRecord): Promise<void> {
    const had = this.published.get(key);
    if (had && sameRecord(had, rec)) return;
    await this.stage.send(TOPICS.inventory, [{ key: Buffer.from(key), value: this.vmCodec.encode(rec) }]);
    this.published.set(key, rec);
  }

  /**
   * A VM an event says was created exists from then on, even before the platform's state says
   * so (vSphere posts the event first): its record is written at once, so that a resync after a
   * restart in between still knows it — and reports its deletion if it is gone by then. The
   * platform's full record replaces this one as soon as it comes.
   */
  private async noteExistence(ev: VmEvent): Promise<void> {
    const key = inventoryKey('vm', ev.vm);
    if ((ev.kind !== 'created' && ev.kind !== 'cloned') || this.published.has(key)) return;
    await this.put(key, {
      kind: 'vm',
      id: ev.vm,
      name: ev.vm_name ?? ev.vm,
      host: ev.host,
      power: null,
      guest_os: null,
      nics: [],
      updated_us: this.now(),
      cluster: null,
      connection: null,
      snapshot: null,
      template: false,
      connector: this.origin.connector,
      source: this.origin.source,
    });
  }

  private putVm(vm: PlatformVm): Promise<void> {
    return this.put(inventoryKey('vm', vm.id), vmRecord(this.origin, vm, this.now()));
  }

  private putHost(h: PlatformHost): Promise<void> {
    const r = hostRecord(this.origin, h, this.now());
    return this.put(inventoryKey('host', r.id), r);
  }

  private async remove(key: string): Promise<void> {
    if (!this.published.has(key)) return;
    await this.stage.send(TOPICS.inventory, [{ key: Buffer.from(key), value: null }]);
    this.published.delete(key);
  }
}
