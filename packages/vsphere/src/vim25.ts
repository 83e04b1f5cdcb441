/**
 * The vim25 calls the connector needs, typed: requests built in WSDL field order, responses
 * decoded from `XmlElement` once, here. Property values stay `XmlElement` (their shape depends
 * on the property path; collect.ts decodes the ones it asked for).
 */
import type { MoRef, SoapTransport, XmlElement, XmlObject, XmlValue } from './soap.js';
import { ERR_VSPHERE_INVALID_PROPERTY } from './errors.js';
import { moref } from './soap.js';

export { moref };

export interface AboutInfo {
  /** "VirtualCenter" or "HostAgent" (ESXi). */
  apiType: string;
  apiVersion: string;
  fullName: string;
  instanceUuid: string | null;
}

export interface ServiceContent {
  rootFolder: MoRef;
  propertyCollector: MoRef;
  viewManager: MoRef | null;
  sessionManager: MoRef | null;
  eventManager: MoRef | null;
  taskManager: MoRef | null;
  about: AboutInfo;
}

export interface UserSession {
  key: string;
  userName: string;
}

export interface PropertyChange {
  name: string;
  op: 'add' | 'remove' | 'assign' | 'indirectRemove';
  /** Absent when the property is unset (or removed). */
  val: XmlElement | null;
}

export interface MissingProperty {
  path: string;
  fault: string;
}

export interface ObjectContent {
  obj: MoRef;
  /** Property path → value element, for the properties that are set. */
  props: Map<string, XmlElement>;
  missing: MissingProperty[];
}

export interface ObjectUpdate {
  kind: 'enter' | 'modify' | 'leave';
  obj: MoRef;
  changes: PropertyChange[];
  missing: MissingProperty[];
}

export interface PropertyFilterUpdate {
  filter: MoRef;
  objectSet: ObjectUpdate[];
}

export interface UpdateSet {
  version: string;
  truncated: boolean;
  filterSet: PropertyFilterUpdate[];
}

export interface RetrieveResult {
  token: string | null;
  objects: ObjectContent[];
}

/** What the connector reads from every event, plus the element for the rest. */
export interface VimEvent {
  /** xsi:type, e.g. "VmPoweredOnEvent". */
  type: string;
  key: number;
  chainId: number;
  /** ms since epoch (vSphere's createdTime). */
  createdTime: number;
  vm: { name: string; ref: MoRef } | null;
  host: { name: string; ref: MoRef } | null;
  /** VmMigratedEvent, DrsVmMigratedEvent, VmRelocatedEvent. */
  sourceHost: { name: string; ref: MoRef } | null;
  /** VmClonedEvent. */
  sourceVm: { name: string; ref: MoRef } | null;
  /** VmInstanceUuidAssignedEvent. */
  instanceUuid: string | null;
  raw: XmlElement;
}

export interface TaskInfo {
  key: string;
  task: MoRef;
  name: string | null;
  descriptionId: string;
  entity: MoRef | null;
  entityName: string | null;
  state: 'queued' | 'running' | 'success' | 'error';
  /** ms since epoch. */
  queueTime: number;
  completeTime: number | null;
}

export interface PropertySpec {
  type: string;
  all?: boolean;
  pathSet: string[];
}
export interface TraversalSpec {
  name?: string;
  type: string;
  path: string;
  skip?: boolean;
}
export interface ObjectSpec {
  obj: MoRef;
  skip?: boolean;
  selectSet?: TraversalSpec[];
}
export interface PropertyFilterSpec {
  propSet: PropertySpec[];
  objectSet: ObjectSpec[];
}

export interface EventFilterSpec {
  entity?: { entity: MoRef; recursion: 'self' | 'children' | 'all' };
  beginTime?: Date;
  eventTypeId?: string[];
  maxCount?: number;
}

export interface TaskFilterSpec {
  entity?: { entity: MoRef; recursion: 'self' | 'children' | 'all' };
  /** Matches queuedTime (the only time type every server supports). */
  beginTime?: Date;
}

// ---------------------------------------------------------------------------------------------
// Decoders

export function toMoRef(el: XmlElement): MoRef {
  return { type: el.attrs.type ?? '', value: el.text };
}

function reqMoRef(el: XmlElement | null, what: string): MoRef {
  if (el === null) throw new Error(`missing ${what}`);
  return toMoRef(el);
}

function optMoRef(el: XmlElement | null): MoRef | null {
  return el === null ? null : toMoRef(el);
}

function time(s: string | null): number | null {
  if (s === null || s === '') return null;
  const t = Date.parse(s);
  return Number.isNaN(t) ? null : t;
}

export function decodeServiceContent(res: XmlElement): ServiceContent {
  const rv = res.child('returnval');
  if (rv === null) throw new Error('RetrieveServiceContent returned nothing');
  const about = rv.child('about');
  return {
    rootFolder: reqMoRef(rv.child('rootFolder'), 'rootFolder'),
    propertyCollector: reqMoRef(rv.child('propertyCollector'), 'propertyCollector'),
    viewManager: optMoRef(rv.child('viewManager')),
    sessionManager: optMoRef(rv.child('sessionManager')),
    eventManager: optMoRef(rv.child('eventManager')),
    taskManager: optMoRef(rv.child('taskManager')),
    about: {
      apiType: about?.str('apiType') ?? '',
      apiVersion: about?.str('apiVersion') ?? '',
      fullName: about?.str('fullName') ?? '',
      instanceUuid: about?.str('instanceUuid') ?? null,
    },
  };
}

function decodeMissing(el: XmlElement): MissingProperty[] {
  return el
    .all('missingSet')
    .map((m) => ({ path: m.str('path') ?? '', fault: m.child('fault')?.child('fault')?.type ?? 'unknown' }));
}

export function decodeObjectContent(el: XmlElement): ObjectContent {
  const props = new Map<string, XmlElement>();
  for (const p of el.all('propSet')) {
    const name = p.str('name');
    const val = p.child('val');
    if (name !== null && val !== null) props.set(name, val);
  }
  return { obj: reqMoRef(el.child('obj'), 'obj'), props, missing: decodeMissing(el) };
}

/**
 * vCenter answers an unknown property path with an InvalidProperty fault; vcsim puts it in each
 * object's missingSet instead. Both are the same coded error here.
 */
export function checkMissing(objects: ObjectContent[], source: string): void {
  for (const o of objects) {
    for (const m of o.missing) {
      if (m.fault === 'InvalidProperty') throw ERR_VSPHERE_INVALID_PROPERTY(source, m.path);
    }
  }
}

export function decodeRetrieveResult(res: XmlElement): RetrieveResult {
  const rv = res.child('returnval');
  if (rv === null) return { token: null, objects: [] }; // nothing matched: vSphere sends no returnval at all
  return { token: rv.str('token') || null, objects: rv.all('objects').map(decodeObjectContent) };
}

export function decodeUpdateSet(res: XmlElement): UpdateSet | null {
  const rv = res.child('returnval');
  if (rv === null) return null; // maxWaitSeconds passed without a change
  return {
    version: rv.str('version') ?? '',
    truncated: rv.str('truncated') === 'true',
    filterSet: rv.all('filterSet').map((fs) => ({
      filter: reqMoRef(fs.child('filter'), 'filter'),
      objectSet: fs.all('objectSet').map((os) => ({
        kind: (os.str('kind') ?? 'modify') as ObjectUpdate['kind'],
        obj: reqMoRef(os.child('obj'), 'obj'),
        changes: os.all('changeSet').map((c) => ({
          name: c.str('name') ?? '',
          op: (c.str('op') ?? 'assign') as PropertyChange['op'],
          val: c.child('val'),
        })),
        missing: decodeMissing(os),
      })),
    })),
  };
}

function entityArg(el: XmlElement | null, refName: string): { name: string; ref: MoRef } | null {
  if (el === null) return null;
  const ref = el.child(refName);
  if (ref === null) return null;
  return { name: el.str('name') ?? '', ref: toMoRef(ref) };
}

export function decodeEvent(el: XmlElement): VimEvent {
  return {
    type: el.type,
    key: Number(el.str('key') ?? NaN),
    chainId: Number(el.str('chainId') ?? NaN),
    createdTime: time(el.str('createdTime')) ?? NaN,
    vm: entityArg(el.child('vm'), 'vm'),
    host: entityArg(el.child('host'), 'host'),
    sourceHost: entityArg(el.child('sourceHost'), 'host'),
    sourceVm: entityArg(el.child('sourceVm'), 'vm'),
    instanceUuid: el.str('instanceUuid'),
    raw: el,
  };
}

export function decodeTaskInfo(el: XmlElement): TaskInfo {
  return {
    key: el.str('key') ?? '',
    task: reqMoRef(el.child('task'), 'task'),
    name: el.str('name'),
    descriptionId: el.str('descriptionId') ?? '',
    entity: optMoRef(el.child('entity')),
    entityName: el.str('entityName'),
    state: (el.str('state') ?? 'queued') as TaskInfo['state'],
    queueTime: time(el.str('queueTime')) ?? NaN,
    completeTime: time(el.str('completeTime')),
  };
}

// ---------------------------------------------------------------------------------------------
// Request encoders (WSDL sequence order matters to vCenter)

function filterSpecXml(spec: PropertyFilterSpec): XmlObject {
  return {
    propSet: spec.propSet.map((p) => ({ type: p.type, all: p.all ?? false, pathSet: p.pathSet })),
    objectSet: spec.objectSet.map((o) => ({
      obj: moref(o.obj.type, o.obj.value),
      skip: o.skip ?? false,
      selectSet: (o.selectSet ?? []).map((t): XmlObject => ({
        $type: 'TraversalSpec',
        name: t.name,
        type: t.type,
        path: t.path,
        skip: t.skip ?? false,
      })),
    })),
  };
}

function entitySpec(e: { entity: MoRef; recursion: string } | undefined): XmlValue {
  return e === undefined ? undefined : { entity: moref(e.entity.type, e.entity.value), recursion: e.recursion };
}

// ---------------------------------------------------------------------------------------------
// Calls

/** The typed calls over one transport (one session). */
export class Vim25 {
  constructor(readonly transport: SoapTransport) {}

  async retrieveServiceContent(): Promise<ServiceContent> {
    const res = await this.transport.call('RetrieveServiceContent', moref('ServiceInstance', 'ServiceInstance'));
    return decodeServiceContent(res);
  }

  async currentTime(): Promise<number> {
    const res = await this.transport.call('CurrentTime', moref('ServiceInstance', 'ServiceInstance'));
    const t = time(res.str('returnval'));
    if (t === null) throw new Error('CurrentTime returned no time');
    return t;
  }

  async login(sessionManager: MoRef, userName: string, password: string): Promise<UserSession> {
    const res = await this.transport.call('Login', sessionManager, { userName, password }, { username: userName });
    const rv = res.child('returnval');
    return { key: rv?.str('key') ?? '', userName: rv?.str('userName') ?? userName };
  }

  async logout(sessionManager: MoRef): Promise<void> {
    await this.transport.call('Logout', sessionManager);
  }

  async createContainerView(viewManager: MoRef, container: MoRef, type: string[], recursive: boolean): Promise<MoRef> {
    const res = await this.transport.call('CreateContainerView', viewManager, {
      container: moref(container.type, container.value),
      type,
      recursive,
    });
    return reqMoRef(res.child('returnval'), 'returnval');
  }

  async destroyView(view: MoRef): Promise<void> {
    await this.transport.call('DestroyView', view);
  }

  async createFilter(pc: MoRef, spec: PropertyFilterSpec, partialUpdates = false): Promise<MoRef> {
    const res = await this.transport.call('CreateFilter', pc, { spec: filterSpecXml(spec), partialUpdates });
    return reqMoRef(res.child('returnval'), 'returnval');
  }

  /** A PropertyCollector of the session's own (its filters and updates apart from the default one's). */
  async createPropertyCollector(pc: MoRef): Promise<MoRef> {
    const res = await this.transport.call('CreatePropertyCollector', pc);
    return reqMoRef(res.child('returnval'), 'returnval');
  }

  async destroyPropertyFilter(filter: MoRef): Promise<void> {
    await this.transport.call('DestroyPropertyFilter', filter);
  }

  /** One long poll. Null when maxWaitSeconds passed without a change. */
  async waitForUpdatesEx(
    pc: MoRef,
    version: string,
    options: { maxWaitSeconds?: number; maxObjectUpdates?: number } = {},
    signal?: AbortSignal,
  ): Promise<UpdateSet | null> {
    const res = await this.transport.call(
      'WaitForUpdatesEx',
      pc,
      { version, options: { maxWaitSeconds: options.maxWaitSeconds, maxObjectUpdates: options.maxObjectUpdates } },
      { waitMs: (options.maxWaitSeconds ?? 600) * 1000, ...(signal ? { signal } : {}) },
    );
    return decodeUpdateSet(res);
  }

  async retrievePropertiesEx(pc: MoRef, specs: PropertyFilterSpec[], maxObjects?: number): Promise<RetrieveResult> {
    const res = await this.transport.call('RetrievePropertiesEx', pc, {
      specSet: specs.map(filterSpecXml),
      options: { maxObjects },
    });
    const out = decodeRetrieveResult(res);
    checkMissing(out.objects, this.transport.source);
    return out;
  }

  async continueRetrievePropertiesEx(pc: MoRef, token: string): Promise<RetrieveResult> {
    const res = await this.transport.call('ContinueRetrievePropertiesEx', pc, { token });
    const out = decodeRetrieveResult(res);
    checkMissing(out.objects, this.transport.source);
    return out;
  }

  /** RetrievePropertiesEx and every continuation. */
  async retrieveAll(pc: MoRef, specs: PropertyFilterSpec[], maxObjects?: number): Promise<ObjectContent[]> {
    let page = await this.retrievePropertiesEx(pc, specs, maxObjects);
    const out = [...page.objects];
    while (page.token !== null) {
      page = await this.continueRetrievePropertiesEx(pc, page.token);
      out.push(...page.objects);
    }
    return out;
  }

  async createCollectorForEvents(eventManager: MoRef, filter: EventFilterSpec): Promise<MoRef> {
    const res = await this.transport.call('CreateCollectorForEvents', eventManager, {
      filter: {
        entity: entitySpec(filter.entity),
        time: filter.beginTime ? { beginTime: filter.beginTime } : undefined,
        eventTypeId: filter.eventTypeId,
        maxCount: filter.maxCount,
      },
    });
    return reqMoRef(res.child('returnval'), 'returnval');
  }

  async readNextEvents(collector: MoRef, maxCount: number): Promise<VimEvent[]> {
    const res = await this.transport.call('ReadNextEvents', collector, { maxCount });
    return res.all('returnval').map(decodeEvent);
  }

  async setCollectorPageSize(collector: MoRef, maxCount: number): Promise<void> {
    await this.transport.call('SetCollectorPageSize', collector, { maxCount });
  }

  async rewindCollector(collector: MoRef): Promise<void> {
    await this.transport.call('RewindCollector', collector);
  }

  async createCollectorForTasks(taskManager: MoRef, filter: TaskFilterSpec): Promise<MoRef> {
    const res = await this.transport.call('CreateCollectorForTasks', taskManager, {
      filter: {
        entity: entitySpec(filter.entity),
        time: filter.beginTime ? { timeType: 'queuedTime', beginTime: filter.beginTime } : undefined,
      },
    });
    return reqMoRef(res.child('returnval'), 'returnval');
  }

  async readNextTasks(collector: MoRef, maxCount: number): Promise<TaskInfo[]> {
    const res = await this.transport.call('ReadNextTasks', collector, { maxCount });
    return res.all('returnval').map(decodeTaskInfo);
  }

  async destroyCollector(collector: MoRef): Promise<void> {
    await this.transport.call('DestroyCollector', collector);
  }
}
