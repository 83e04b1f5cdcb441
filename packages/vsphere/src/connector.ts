/**
 * The vSphere PlatformConnector: one session at a time; a PropertyCollector filter over a
 * recursive ContainerView for state (WaitForUpdatesEx), an event collector for what happened, a
 * task collector for snapshot reverts (which raise no event), all resumed from a cursor after a
 * reconnect or a restart.
 */
import type { Logger, Metrics } from '@cordon/runtime';
import { describeError, serialized } from '@cordon/runtime';
import {
  emptyChange,
  Inventory,
  unescapeName,
  VIEW_TYPES,
  VM_PROPS,
  viewSpec,
  type InventoryChange,
} from './collect.js';
import {
  ERR_VSPHERE_BAD_RESPONSE,
  ERR_VSPHERE_FAULT,
  ERR_VSPHERE_NOT_SUPPORTED,
  ERR_VSPHERE_OBJECT_GONE,
  ERR_VSPHERE_STOPPED,
} from './errors.js';
import {
  EVENT_TYPE_IDS,
  eventId,
  eventKind,
  fromCursor,
  isRevertTask,
  taskId,
  toCursor,
  UUID_EVENT,
  type Position,
} from './events.js';
import type {
  ConnectorCursor,
  ConnectorHandlers,
  PlatformConnector,
  PlatformEvent,
  PlatformState,
} from '@cordon/platform';
import { resolveOptions, type ResolvedOptions, type VsphereOptions } from './options.js';
import { SoapTransport, type MoRef } from './soap.js';
import {
  decodeTaskInfo,
  moref,
  toMoRef,
  Vim25,
  type PropertyFilterSpec,
  type ServiceContent,
  type TaskInfo,
  type UpdateSet,
  type VimEvent,
} from './vim25.js';

const READ_PAGE = 1000;
/** How long a migrated event's VM is read again while it still shows the source host. */
const MIGRATION_SETTLE_MS = 2_000;
/** How long a revert's event waits for the VM's current snapshot to show (see deliverRevert). */
const REVERT_SETTLE_MS = 2_000;

interface Session {
  transport: SoapTransport;
  vim: Vim25;
  sc: ServiceContent;
  pc: MoRef;
  /** Objects to destroy before logging out. */
  owned: Array<{ method: string; ref: MoRef }>;
}

/** A handler's own failure: ends run() instead of being retried like a platform failure. */
class HandlerError extends Error {
  constructor(readonly inner: unknown) {
    super('handler failed');
  }
}

async function call<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new HandlerError(err);
  }
}

/** What survives a reconnect within one run(). */
interface RunState {
  pos: Position | null;
  inv: Inventory;
  /** What onVm/onHost last reported, to report only changes. */
  lastVm: Map<string, string>;
  lastHost: Map<string, string>;
}

export class VsphereConnector implements PlatformConnector {
  readonly kind = 'vsphere' as const;
  readonly source: string;
  private readonly o: ResolvedOptions;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private stopped = false;
  private running: Promise<void> | null = null;
  private readonly abort = new AbortController();

  constructor(options: VsphereOptions) {
    this.o = resolveOptions(options);
    this.source = this.o.source;
    this.log = this.o.ctx.log.child({ component: 'vsphere', source: this.source });
    this.metrics = this.o.ctx.metrics.child('vsphere');
  }

  async snapshot(): Promise<PlatformState> {
    const s = await this.open();
    try {
      const view = await this.containerView(s);
      const inv = new Inventory();
      for (const oc of await s.vim.retrieveAll(s.pc, [viewSpec(view)])) inv.loadContent(oc);
      return inv.state();
    } finally {
      await this.close(s);
    }
  }

  run(handlers: ConnectorHandlers, from?: ConnectorCursor): Promise<void> {
    if (this.stopped) return Promise.reject(ERR_VSPHERE_STOPPED('run()'));
    if (this.running !== null) return Promise.reject(new Error('run() is already running; call stop() first'));
    const pos = fromCursor(from);
    if (from !== undefined && pos === null)
      this.log.warn({ cursor: from }, 'The cursor is not a vSphere connector cursor; following from now.');
    const st: RunState = { pos, inv: new Inventory(), lastVm: new Map(), lastHost: new Map() };
    this.running = this.loop(handlers, st);
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.running?.catch(() => undefined);
  }

  // -------------------------------------------------------------------------------------------
  // Sessions

  private async open(): Promise<Session> {
    const o = this.o;
    if (o.insecure)
      this.log.warn(
        'TLS certificate verification is off (insecure: true): anyone on the path can read the vSphere credentials. Use caFile instead.',
      );
    const transport = new SoapTransport({
      url: o.url,
      ...(o.ca !== undefined ? { ca: o.ca } : {}),
      insecure: o.insecure,
      timeoutMs: o.requestTimeoutMs,
    });
    try {
      await transport.negotiateVersion();
      const vim = new Vim25(transport);
      const sc = await vim.retrieveServiceContent();
      if (sc.sessionManager === null || sc.viewManager === null) {
        throw ERR_VSPHERE_BAD_RESPONSE(this.source, 'RetrieveServiceContent', 'no sessionManager or viewManager');
      }
      await vim.login(sc.sessionManager, o.username, o.password);
      this.metrics.inc('logins');
      this.log.info(
        { user: o.username, apiType: sc.about.apiType, apiVersion: sc.about.apiVersion, soapAction: transport.action },
        'Logged in to vSphere.',
      );
      return { transport, vim, sc, pc: sc.propertyCollector, owned: [] };
    } catch (err) {
      await transport.close();
      throw err;
    }
  }

  /** Destroy what the session created (vCenter caps collectors per server), log out, close. Best effort. */
  private async close(s: Session): Promise<void> {
    const signal = AbortSignal.timeout(5000);
    try {
      for (const { method, ref } of s.owned.reverse()) await s.transport.call(method, ref, {}, { signal });
      if (s.sc.sessionManager) await s.transport.call('Logout', s.sc.sessionManager, {}, { signal });
    } catch {
      // An expired session or a server that went away: nothing left to clean.
    } finally {
      await s.transport.close();
    }
  }

  private async containerView(s: Session): Promise<MoRef> {
    const view = await s.vim.createContainerView(s.sc.viewManager!, s.sc.rootFolder, VIEW_TYPES, true);
    s.owned.push({ method: 'DestroyView', ref: view });
    return view;
  }

  // -------------------------------------------------------------------------------------------
  // The run loop: connect, follow, reconnect with backoff

  private async loop(h: ConnectorHandlers, st: RunState): Promise<void> {
    let attempt = 0;
    try {
      while (!this.stopped) {
        let s: Session | null = null;
        try {
          s = await this.open();
          await new Follower(this, s, h, st, () => {
            attempt = 0;
          }).run();
        } catch (err) {
          if (err instanceof HandlerError) throw err.inner;
          if (this.stopped) break;
          const e = describeError(err);
          this.metrics.inc('disconnects');
          this.metrics.set('connected', 0);
          this.log.warn({ err: e, attempt }, 'Lost the vSphere connection; reconnecting.');
          try {
            h.onStatus?.({ connected: false, error: e });
          } catch {
            // status is informational
          }
          await this.sleep(this.backoff(attempt++));
        } finally {
          if (s !== null) await this.close(s);
        }
      }
    } finally {
      this.metrics.set('connected', 0);
      this.running = null;
    }
  }

  /** Exponential from initialMs, capped at maxMs, full jitter over the upper half. */
  backoff(attempt: number): number {
    const ceiling = Math.min(this.o.backoffMaxMs, this.o.backoffInitialMs * 2 ** Math.min(attempt, 30));
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.abort.signal.addEventListener('abort', done, { once: true });
    });
  }

  // For the follower
  get options(): ResolvedOptions {
    return this.o;
  }
  get logger(): Logger {
    return this.log;
  }
  get meter(): Metrics {
    return this.metrics;
  }
  get isStopped(): boolean {
    return this.stopped;
  }
  get signal(): AbortSignal {
    return this.abort.signal;
  }
  view(s: Session): Promise<MoRef> {
    return this.containerView(s);
  }
}

/** One session's worth of following. Throws on any platform failure; the loop reconnects. */
class Follower {
  private readonly vim: Vim25;
  private eventCollector: MoRef | null = null;
  private taskCollector: MoRef | null = null;
  /** ESXi has no task collector: follow TaskManager.recentTask instead. */
  private recentTaskMode = false;
  private recentTasks: MoRef[] = [];
  private readonly seenTasks = new Set<string>();
  private readonly pendingTasks = new Map<string, TaskInfo>();
  /** Highest event key read from the collector, and the highest its latestPage announced. */
  private readKey = -1;
  private announcedKey = -1;
  private version = '';
  private readonly queue = serialized();

  constructor(
    private readonly c: VsphereConnector,
    private readonly s: Session,
    private readonly h: ConnectorHandlers,
    private readonly st: RunState,
    private readonly synced: () => void,
  ) {
    this.vim = s.vim;
  }

  async run(): Promise<void> {
    const { s, st } = this;
    const now = await this.vim.currentTime();
    st.pos ??= { eventKey: -1, eventTime: now, taskKey: '', taskQueued: now };
    const pos = st.pos;
    this.readKey = pos.eventKey;

    if (s.sc.eventManager !== null) {
      this.eventCollector = await this.vim.createCollectorForEvents(s.sc.eventManager, {
        eventTypeId: EVENT_TYPE_IDS,
        beginTime: new Date(pos.eventTime),
      });
      s.owned.push({ method: 'DestroyCollector', ref: this.eventCollector });
    }
    if (s.sc.taskManager !== null) {
      try {
        this.taskCollector = await this.vim.createCollectorForTasks(s.sc.taskManager, {
          beginTime: new Date(pos.taskQueued),
        });
        s.owned.push({ method: 'DestroyCollector', ref: this.taskCollector });
      } catch (err) {
        if (!ERR_VSPHERE_NOT_SUPPORTED.is(err)) throw err;
        this.recentTaskMode = true;
      }
    }

    // State: the session's PropertyCollector over the container view.
    const view = await this.c.view(s);
    const filter = await this.vim.createFilter(s.pc, viewSpec(view));
    s.owned.push({ method: 'DestroyPropertyFilter', ref: filter });

    // Events and tasks: a PropertyCollector of their own watching only the collectors' latestPage
    // (or TaskManager.recentTask), so a storm of inventory updates never holds up reading events
    // (vcsim recomputes the whole view for every update; a 1,000-VM poll can take seconds).
    const epc = await this.vim.createPropertyCollector(s.pc);
    s.owned.push({ method: 'DestroyPropertyCollector', ref: epc });
    const espec: PropertyFilterSpec = { propSet: [], objectSet: [] };
    if (this.eventCollector) {
      espec.propSet.push({ type: 'EventHistoryCollector', pathSet: ['latestPage'] });
      espec.objectSet.push({ obj: this.eventCollector });
    }
    if (this.taskCollector) {
      espec.propSet.push({ type: 'TaskHistoryCollector', pathSet: ['latestPage'] });
      espec.objectSet.push({ obj: this.taskCollector });
    } else if (this.recentTaskMode && s.sc.taskManager) {
      espec.propSet.push({ type: 'TaskManager', pathSet: ['recentTask'] });
      espec.objectSet.push({ obj: s.sc.taskManager });
    }
    if (espec.objectSet.length > 0) await this.vim.createFilter(epc, espec);

    // The full state: the first WaitForUpdatesEx (version "") and its truncated continuations.
    st.inv.reset();
    const change = emptyChange();
    for (;;) {
      const us = await this.vim.waitForUpdatesEx(
        s.pc,
        this.version,
        { maxWaitSeconds: this.c.options.pollSeconds },
        this.c.signal,
      );
      if (us === null) continue;
      this.version = us.version;
      this.applyUpdates(us, change);
      if (!us.truncated) break;
    }
    await this.refetch(change.refetch);
    const state = st.inv.state();
    st.lastVm.clear();
    st.lastHost.clear();
    for (const vm of state.vms) st.lastVm.set(vm.id, JSON.stringify(vm));
    for (const host of state.hosts) st.lastHost.set(host.id, JSON.stringify(host));
    await this.emit(() => this.h.onSync(state));
    this.c.meter.inc('syncs');
    this.c.meter.set('connected', 1);
    this.synced();
    this.c.logger.info(
      { vms: state.vms.length, hosts: state.hosts.length, tasks: this.recentTaskMode ? 'recentTask' : 'collector' },
      'vSphere inventory synced; following changes and events.',
    );
    try {
      this.h.onStatus?.({ connected: true });
    } catch {
      // status is informational
    }

    // Two loops on one session, their handler calls serialized; the first failure ends both.
    const ac = new AbortController();
    const signal = AbortSignal.any([this.c.signal, ac.signal]);
    let first: { err: unknown } | null = null;
    const guard = (p: Promise<void>): Promise<void> =>
      p.catch((err: unknown) => {
        // The other loop then fails with the abort; the cause is the first failure.
        first ??= { err };
        ac.abort();
      });
    await Promise.all([guard(this.stateLoop(signal)), guard(this.eventLoop(epc, signal))]);
    if (first !== null) throw (first as { err: unknown }).err;
  }

  private async stateLoop(signal: AbortSignal): Promise<void> {
    while (!this.c.isStopped && !signal.aborted) {
      const us = await this.vim.waitForUpdatesEx(
        this.s.pc,
        this.version,
        { maxWaitSeconds: this.c.options.pollSeconds },
        signal,
      );
      if (us === null) continue;
      this.version = us.version;
      const ch = this.applyUpdates(us, emptyChange());
      await this.refetch(ch.refetch);
      await this.report(ch);
    }
  }

  private async eventLoop(epc: MoRef, signal: AbortSignal): Promise<void> {
    let version = '';
    for (;;) {
      await this.drain();
      if (this.c.isStopped || signal.aborted) return;
      const wait = this.pendingTasks.size > 0 ? 1 : this.c.options.pollSeconds;
      const us = await this.vim.waitForUpdatesEx(epc, version, { maxWaitSeconds: wait }, signal);
      if (us !== null) {
        version = us.version;
        this.applyUpdates(us, emptyChange());
      }
    }
  }

  /** Handlers run one at a time, in order, whichever loop calls them. */
  private emit<T>(fn: () => T | Promise<T>): Promise<T> {
    return this.queue(() => call(fn));
  }

  private applyUpdates(us: UpdateSet, change: InventoryChange): InventoryChange {
    for (const fs of us.filterSet) {
      for (const u of fs.objectSet) {
        if (u.obj.type === 'EventHistoryCollector') {
          for (const c of u.changes)
            for (const ev of c.val?.children ?? [])
              this.announcedKey = Math.max(this.announcedKey, Number(ev.str('key') ?? -1));
        } else if (u.obj.type === 'TaskManager') {
          const val = u.changes.find((c) => c.name === 'recentTask')?.val;
          this.recentTasks = (val?.children ?? []).map(toMoRef);
        } else if (u.obj.type !== 'TaskHistoryCollector') {
          this.st.inv.apply(u, change);
        }
      }
    }
    return change;
  }

  /** Re-read objects whose update we could not apply in place (or whose state we must be sure of). */
  private async refetch(refs: MoRef[], change: InventoryChange = emptyChange()): Promise<InventoryChange> {
    const vms = [...new Map(refs.filter((r) => r.type === 'VirtualMachine').map((r) => [r.value, r])).values()];
    if (vms.length === 0) return change;
    try {
      const objs = await this.vim.retrieveAll(this.s.pc, [
        { propSet: [{ type: 'VirtualMachine', pathSet: VM_PROPS }], objectSet: vms.map((r) => ({ obj: r })) },
      ]);
      for (const oc of objs) this.st.inv.loadContent(oc, change);
    } catch (err) {
      if (!ERR_VSPHERE_OBJECT_GONE.is(err)) throw err;
    }
    return change;
  }

  private async report(ch: InventoryChange): Promise<void> {
    const { inv, lastVm, lastHost } = this.st;
    for (const ref of ch.hosts) {
      const host = inv.host(ref);
      if (host === null) continue;
      const json = JSON.stringify(host);
      if (lastHost.get(host.id) === json) continue;
      lastHost.set(host.id, json);
      await this.emit(() => this.h.onHost(host));
    }
    for (const ref of ch.vms) {
      const vm = inv.vm(ref);
      if (vm === null) continue;
      const json = JSON.stringify(vm);
      if (lastVm.get(vm.id) === json) continue;
      lastVm.set(vm.id, json);
      this.c.meter.inc('vm_updates');
      await this.emit(() => this.h.onVm(vm));
    }
    for (const ref of ch.removedVms) await this.reportRemoved(ref);
  }

  private async reportRemoved(vmRef: string): Promise<void> {
    const uuid = this.st.inv.uuidOf(vmRef);
    if (uuid === null || !this.st.lastVm.delete(uuid)) return;
    await this.emit(() => this.h.onVmRemoved(uuid));
  }

  /** Read every new event and finished revert task, and deliver them in the platform's time order. */
  private async drain(): Promise<void> {
    const events: VimEvent[] = [];
    if (this.eventCollector !== null) {
      for (;;) {
        const page = await this.vim.readNextEvents(this.eventCollector, READ_PAGE);
        for (const ev of page) {
          if (ev.key > this.readKey) {
            events.push(ev);
            this.readKey = ev.key;
          }
        }
        if (page.length < READ_PAGE) break;
      }
      if (this.announcedKey > this.readKey) {
        // vcsim drops a collector's position once more than 1,000 unread events pile up behind
        // it; a new session recreates the collector from the cursor.
        throw ERR_VSPHERE_FAULT(
          this.c.source,
          'ReadNextEvents',
          'CollectorLostPosition',
          `latestPage announces event ${this.announcedKey}, the collector reads up to ${this.readKey}`,
        );
      }
    }
    const reverts = await this.finishedReverts();

    type Item = { ts: number; ev?: VimEvent; task?: TaskInfo };
    const items: Item[] = [
      ...events.map((ev) => ({ ts: ev.createdTime, ev })),
      ...reverts.map((task) => ({ ts: task.completeTime ?? task.queueTime, task })),
    ];
    items.sort((a, b) => a.ts - b.ts); // stable: events keep their key order
    await this.catchUpPower(events);
    for (const it of items) {
      if (it.ev) await this.deliverEvent(it.ev);
      else if (it.task) await this.deliverRevert(it.task);
    }
  }

  /**
   * vcsim posts a power event before it updates runtime.powerState, so the property update can
   * trail the event by one poll. Where a VM's last power event of the batch disagrees with its
   * state, re-read those VMs (one call) so onVm comes before the event it explains.
   */
  private async catchUpPower(events: VimEvent[]): Promise<void> {
    const last = new Map<string, 'on' | 'off' | 'suspended'>();
    for (const ev of events) {
      const kind = eventKind(ev);
      const ref = ev.vm?.ref.value;
      if (ref === undefined) continue;
      if (kind === 'powered_on') last.set(ref, 'on');
      else if (kind === 'powered_off') last.set(ref, 'off');
      else if (kind === 'suspended') last.set(ref, 'suspended');
    }
    const stale = [...last].filter(([ref, power]) => {
      const vm = this.st.inv.vm(ref);
      return vm !== null && vm.power !== power;
    });
    if (stale.length > 0) await this.report(await this.refetch(stale.map(([ref]) => moref('VirtualMachine', ref))));
  }

  private async finishedReverts(): Promise<TaskInfo[]> {
    const pos = this.st.pos!;
    const consider = (t: TaskInfo): void => {
      if (!isRevertTask(t) || t.key === pos.taskKey || t.queueTime < pos.taskQueued) return;
      this.pendingTasks.set(t.key, t);
    };
    if (this.taskCollector !== null) {
      for (;;) {
        const page = await this.vim.readNextTasks(this.taskCollector, READ_PAGE);
        page.forEach(consider);
        if (page.length < READ_PAGE) break;
      }
    } else if (this.recentTaskMode && this.s.sc.taskManager) {
      // Read the list now, after the events: a revert that finished before the last event read
      // is then in this batch, and the time sort puts it in its place.
      const [tm] = await this.vim.retrieveAll(this.s.pc, [
        { propSet: [{ type: 'TaskManager', pathSet: ['recentTask'] }], objectSet: [{ obj: this.s.sc.taskManager }] },
      ]);
      this.recentTasks = (tm?.props.get('recentTask')?.children ?? []).map(toMoRef);
      const fresh = this.recentTasks.filter((r) => !this.seenTasks.has(r.value));
      for (const info of await this.taskInfos(fresh)) {
        this.seenTasks.add(info.key);
        consider(info);
      }
      const live = new Set(this.recentTasks.map((r) => r.value));
      for (const k of this.seenTasks) if (!live.has(k)) this.seenTasks.delete(k);
    }
    const open = [...this.pendingTasks.values()].filter((t) => t.state !== 'success' && t.state !== 'error');
    for (const info of await this.taskInfos(open.map((t) => t.task))) this.pendingTasks.set(info.key, info);
    const done: TaskInfo[] = [];
    for (const [k, t] of this.pendingTasks) {
      if (t.state === 'success') done.push(t);
      if (t.state === 'success' || t.state === 'error') this.pendingTasks.delete(k);
    }
    return done;
  }

  private async taskInfos(refs: MoRef[]): Promise<TaskInfo[]> {
    if (refs.length === 0) return [];
    const out: TaskInfo[] = [];
    // One at a time would cost a round trip each; a task that vanished fails the whole batch,
    // so fall back to one by one then.
    try {
      const objs = await this.vim.retrieveAll(this.s.pc, [
        { propSet: [{ type: 'Task', pathSet: ['info'] }], objectSet: refs.map((obj) => ({ obj })) },
      ]);
      for (const oc of objs) {
        const info = oc.props.get('info');
        if (info) out.push(decodeTaskInfo(info));
      }
    } catch (err) {
      if (!ERR_VSPHERE_OBJECT_GONE.is(err) || refs.length === 1) {
        if (ERR_VSPHERE_OBJECT_GONE.is(err)) return [];
        throw err;
      }
      for (const r of refs) out.push(...(await this.taskInfos([r])));
    }
    return out;
  }

  private async uuidOf(vmRef: string): Promise<string | null> {
    const known = this.st.inv.uuidOf(vmRef);
    if (known !== null) return known;
    await this.refetch([moref('VirtualMachine', vmRef)]);
    return this.st.inv.uuidOf(vmRef);
  }

  private async deliverEvent(ev: VimEvent): Promise<void> {
    const { inv } = this.st;
    const pos = this.st.pos!;
    const vmRef = ev.vm?.ref.value ?? null;
    if (ev.type === UUID_EVENT) {
      if (vmRef !== null && ev.instanceUuid) inv.learnUuid(vmRef, ev.instanceUuid);
      return;
    }
    const kind = eventKind(ev);
    if (kind === null || vmRef === null) return;
    const uuid = await this.uuidOf(vmRef);
    if (uuid === null) {
      this.c.meter.inc('events_unmapped');
      this.c.logger.warn(
        { event: ev.type, key: ev.key, vm: vmRef },
        'A vSphere event names a VM whose instanceUuid is unknown and which no longer exists; the event is not reported.',
      );
      return;
    }
    const out: PlatformEvent = {
      id: eventId(ev.key),
      ts: ev.createdTime,
      kind,
      vm: uuid,
      vmName: ev.vm?.name ? unescapeName(ev.vm.name) : null,
      host: ev.host?.ref.value ?? null,
    };
    if (kind === 'migrated') {
      const from = ev.sourceHost?.ref.value ?? null;
      out.fromHost = from;
      if (out.host === null || out.host === from) {
        // vcsim names the source in `host` too: the destination is where the VM runs now. Read it
        // fresh, the property update may still be on its way — vcsim posts the event before it
        // moves the VM (RelocateVMTask), so a read in between still finds the source: read again
        // for up to MIGRATION_SETTLE_MS. A move that keeps the host (storage only) waits that long.
        const until = Date.now() + MIGRATION_SETTLE_MS;
        for (;;) {
          await this.report(await this.refetch([moref('VirtualMachine', vmRef)]));
          const now = inv.vmHost(vmRef);
          if ((now !== null && now !== from) || Date.now() >= until) {
            out.host = now ?? out.host;
            break;
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    } else if (kind === 'cloned') {
      out.sourceVm = ev.sourceVm ? await this.uuidOf(ev.sourceVm.ref.value) : null;
    } else if (kind === 'deleted') {
      // WaitForUpdatesEx can miss the leave of a destroyed VM: the event is the authority.
      inv.removeVm(vmRef);
      await this.reportRemoved(vmRef);
    }
    pos.eventKey = ev.key;
    pos.eventTime = ev.createdTime;
    this.c.meter.inc('events');
    await this.emit(() => this.h.onEvent(out, toCursor(pos)));
  }

  private async deliverRevert(t: TaskInfo): Promise<void> {
    const pos = this.st.pos!;
    const vmRef = t.entity!.value;
    const uuid = await this.uuidOf(vmRef);
    if (uuid !== null) {
      // The snapshot now in use: read fresh, its property update may trail the task's completion
      // (a read right after it can still find none, though a reverted VM always has one): read
      // again for up to REVERT_SETTLE_MS.
      const until = Date.now() + REVERT_SETTLE_MS;
      for (;;) {
        await this.report(await this.refetch([moref('VirtualMachine', vmRef)]));
        if (this.st.inv.vm(vmRef)?.snapshot || Date.now() >= until) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const vm = this.st.inv.vm(vmRef);
      const out: PlatformEvent = {
        id: taskId(t.key),
        ts: t.completeTime ?? t.queueTime,
        kind: 'reverted',
        vm: uuid,
        vmName: vm?.name ?? null,
        host: vm?.host ?? null,
        snapshot: vm?.snapshot ?? null,
      };
      pos.taskKey = t.key;
      pos.taskQueued = t.queueTime;
      this.c.meter.inc('events');
      await this.emit(() => this.h.onEvent(out, toCursor(pos)));
    } else {
      this.c.meter.inc('events_unmapped');
      this.c.logger.warn(
        { task: t.key, vm: vmRef },
        'A snapshot revert names a VM that no longer exists; it is not reported.',
      );
    }
  }
}
