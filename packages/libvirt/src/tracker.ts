/**
 * Turns libvirt's lifecycle events and full listings into PlatformEvents with stable ids.
 *
 * libvirt's events carry no id and are not replayable, so the connector counts. Every domain
 * (by UUID) has a generation: the number of PlatformEvents derived for it so far. An event's id
 * is `libvirt/<uuid>/<generation>/<kind>`. The generations, with each domain's last known power
 * state, host and name, are the cursor: a connector restarted from a cursor derives the same ids
 * for the same transitions, so an event delivered before the restart and derived again after it
 * has the same id, and a new one gets a new generation.
 *
 * Power events are transitions, applied only when the domain's tracked power differs from the
 * target: the sidecar registers for events before it lists, so a change that happened between
 * the two shows both in the listing (the resync synthesizes it) and as an event (ignored here,
 * the power already matches) — one PlatformEvent, not two.
 *
 * Resync rule (a full listing of one host, after a (re)connect, against the tracked state):
 *  - a domain not tracked (or tracked as deleted) → `created`, then its power event if not off;
 *  - a tracked domain whose power differs → `powered_on` / `powered_off` / `suspended`;
 *  - a domain that is active here but tracked on another host → `migrated` (fromHost);
 *  - a tracked domain of this host that is missing → `deleted`.
 *  What happened while away and left no trace in the listing (a stop and start, a revert, a
 *  delete and re-create with the same UUID) cannot be derived and is not.
 *  The first listing of a host the cursor does not cover is the baseline: no events.
 */
import { ERR_LIBVIRT_CURSOR } from './errors.js';
import { JOB_PAUSE_REASONS, type Power } from './normalize.js';
import type { ConnectorCursor, PlatformEvent, PlatformEventKind } from '@cordon/platform';

/** virDomainEventType codes (libvirt-domain.h) and the detail codes the tracker looks at. */
export const EV = {
  DEFINED: 0,
  UNDEFINED: 1,
  STARTED: 2,
  SUSPENDED: 3,
  RESUMED: 4,
  STOPPED: 5,
  SHUTDOWN: 6,
  PMSUSPENDED: 7,
  CRASHED: 8,
} as const;
const DEFINED_FROM_SNAPSHOT = 3;
const UNDEFINED_RENAMED = 1;
const STARTED_MIGRATED = 1;
const STARTED_FROM_SNAPSHOT = 3;
const SUSPENDED_MIGRATED = 1;
const SUSPENDED_FROM_SNAPSHOT = 5;
const RESUMED_MIGRATED = 1;
const RESUMED_FROM_SNAPSHOT = 2;
const STOPPED_MIGRATED = 3;
const STOPPED_FROM_SNAPSHOT = 6;
/**
 * A pause a job makes and undoes by itself (JOB_PAUSE_REASONS: migration, save, dump, snapshot,
 * start-up, shutdown) is not a `suspended`: measured, `virsh snapshot-create-as` of a running
 * domain emits SUSPENDED/PAUSED then RESUMED/UNPAUSED, and a domain listed mid-start is paused.
 */
const STATE_PAUSED = 3;

/** One lifecycle event as the sidecar reports it, with the domain re-read after it. */
export interface RawEvent {
  ts: number;
  uuid: string;
  name: string;
  event: number;
  detail: number;
  /** The domain after the event: null when it no longer exists, undefined when unknown. */
  after?: { power: Power; state: number; reason: number; persistent: boolean; snapshot: string | null } | null;
}

/** A domain of a full listing. */
export interface ListedDomain {
  uuid: string;
  name: string;
  power: Power;
}

export interface Derived {
  event: PlatformEvent;
  cursor: ConnectorCursor;
}

interface Tracked {
  gen: number;
  power: Power;
  host: string;
  name: string;
  gone: boolean;
  /** Inside a snapshot revert (FROM_SNAPSHOT events until DEFINED/FROM_SNAPSHOT). */
  reverting?: boolean;
  /** Migrated away while other hosts are followed: the destination is expected to report it. */
  leaving?: boolean;
}

const CURSOR_VERSION = 1;
/** Deleted domains kept (for their generation, should the UUID come back); the oldest go first. */
export const MAX_TOMBSTONES = 1000;

export class Tracker {
  private readonly domains = new Map<string, Tracked>();
  private readonly covered = new Set<string>();

  /** `multiHost`: more than one host is followed, so a domain leaving one may arrive at another. */
  constructor(private readonly multiHost = false) {}

  static fromCursor(cursor: ConnectorCursor | undefined, multiHost = false): Tracker {
    const t = new Tracker(multiHost);
    if (cursor === undefined) return t;
    if (cursor === null || typeof cursor !== 'object' || Array.isArray(cursor))
      throw ERR_LIBVIRT_CURSOR('not an object');
    if (cursor.v !== CURSOR_VERSION) throw ERR_LIBVIRT_CURSOR(`version ${String(cursor.v)} is not ${CURSOR_VERSION}`);
    for (const [key, value] of Object.entries(cursor)) {
      if (key === 'v') continue;
      if (key.startsWith('h:') && key.length > 2 && value === 1) {
        t.covered.add(key.slice(2));
        continue;
      }
      if (key.startsWith('d:') && typeof value === 'string') {
        const uuid = key.slice(2);
        let parsed: unknown;
        try {
          parsed = JSON.parse(value);
        } catch {
          throw ERR_LIBVIRT_CURSOR(`entry ${key} is not JSON`);
        }
        if (
          !Array.isArray(parsed) ||
          parsed.length !== 5 ||
          !Number.isSafeInteger(parsed[0]) ||
          (parsed[0] as number) < 0 ||
          !['on', 'off', 'suspended'].includes(parsed[1] as string) ||
          typeof parsed[2] !== 'string' ||
          typeof parsed[3] !== 'string' ||
          (parsed[4] !== 0 && parsed[4] !== 1)
        ) {
          throw ERR_LIBVIRT_CURSOR(`entry ${key} is not [generation, power, host, name, gone]`);
        }
        const [gen, power, host, name, gone] = parsed as [number, Power, string, string, 0 | 1];
        t.domains.set(uuid, { gen, power, host, name, gone: gone === 1 });
        continue;
      }
      throw ERR_LIBVIRT_CURSOR(`unknown entry ${key}`);
    }
    return t;
  }

  toCursor(): ConnectorCursor {
    const c: ConnectorCursor = { v: CURSOR_VERSION };
    for (const h of this.covered) c[`h:${h}`] = 1;
    for (const [uuid, d] of this.domains)
      c[`d:${uuid}`] = JSON.stringify([d.gen, d.power, d.host, d.name, d.gone ? 1 : 0]);
    return c;
  }

  /** The host a domain is tracked on (for the connector's merged view), if tracked and not deleted. */
  hostOf(uuid: string): string | null {
    const d = this.domains.get(uuid);
    return d && !d.gone ? d.host : null;
  }

  /**
   * A full listing of `host`. `elsewhere(uuid)` says whether another host's latest listing
   * still has the domain (then a missing domain moved rather than died).
   */
  resync(
    host: string,
    listed: ListedDomain[],
    ts: number,
    elsewhere: (uuid: string) => boolean = () => false,
  ): Derived[] {
    const out: Derived[] = [];
    const baseline = !this.covered.has(host);
    this.covered.add(host);
    const seen = new Set<string>();
    for (const l of [...listed].sort((a, b) => cmp(a.uuid, b.uuid))) {
      seen.add(l.uuid);
      const d = this.domains.get(l.uuid);
      if (baseline) {
        // A domain already tracked as active on another host keeps its place.
        if (!d || d.gone || d.host === host || l.power !== 'off' || !elsewhere(l.uuid))
          this.put(l.uuid, { gen: d?.gen ?? 0, power: l.power, host, name: l.name, gone: false });
        continue;
      }
      if (!d || d.gone) {
        const t = this.put(l.uuid, { gen: d?.gen ?? 0, power: 'off', host, name: l.name, gone: false });
        this.emit(out, l.uuid, t, 'created', ts);
        this.transition(out, l.uuid, t, l.power, ts);
        continue;
      }
      d.name = l.name;
      if (d.host !== host) {
        if (l.power === 'off' && elsewhere(l.uuid)) continue; // an inactive copy; the domain lives on d.host
        const from = d.host;
        d.host = host;
        if (l.power !== 'off') {
          d.power = 'on';
          this.emit(out, l.uuid, d, 'migrated', ts, { fromHost: from });
        }
        this.transition(out, l.uuid, d, l.power, ts);
        continue;
      }
      this.transition(out, l.uuid, d, l.power, ts);
    }
    for (const [uuid, d] of [...this.domains].sort(([a], [b]) => cmp(a, b))) {
      if (d.gone || d.host !== host || seen.has(uuid)) continue;
      if (elsewhere(uuid)) continue; // the other host's listing or events place it
      this.bury(uuid, d);
      this.emit(out, uuid, d, 'deleted', ts);
    }
    return out;
  }

  /** One lifecycle event of `host`. */
  apply(host: string, e: RawEvent): Derived[] {
    const out: Derived[] = [];
    let d = this.domains.get(e.uuid);
    const isNew = !d || d.gone;
    const after = e.after;
    if (e.event === EV.UNDEFINED) {
      if (e.detail === UNDEFINED_RENAMED || !d || d.gone || d.host !== host || d.leaving) return out;
      // Undefining a running persistent domain leaves it running as a transient one: it is
      // deleted when it stops (STOPPED with the domain gone).
      if (after && after.power !== 'off') return out;
      this.bury(e.uuid, d);
      this.emit(out, e.uuid, d, 'deleted', e.ts);
      return out;
    }
    if (isNew) {
      if (e.event === EV.STARTED && e.detail === STARTED_MIGRATED) {
        d = this.put(e.uuid, { gen: d?.gen ?? 0, power: 'on', host, name: e.name, gone: false });
        this.emit(out, e.uuid, d, 'migrated', e.ts, { fromHost: null });
        return out;
      }
      d = this.put(e.uuid, { gen: d?.gen ?? 0, power: 'off', host, name: e.name, gone: false });
      this.emit(out, e.uuid, d, 'created', e.ts);
    }
    const t = d as Tracked;
    t.name = e.name;
    if (t.host === host && e.event === EV.STARTED) t.leaving = false;
    if (t.host !== host) {
      // An event of another host's copy of a domain that lives elsewhere, except an arrival.
      if (e.event === EV.STARTED && e.detail === STARTED_MIGRATED) {
        const from = t.host;
        t.host = host;
        t.power = 'on';
        t.leaving = false;
        this.emit(out, e.uuid, t, 'migrated', e.ts, { fromHost: from });
      }
      return out;
    }
    switch (e.event) {
      case EV.DEFINED:
        if (e.detail === DEFINED_FROM_SNAPSHOT) this.reverted(out, e, t);
        break;
      case EV.STARTED:
        if (e.detail === STARTED_FROM_SNAPSHOT) this.revertStep(out, e, t);
        else this.transition(out, e.uuid, t, 'on', e.ts);
        break;
      case EV.SUSPENDED:
        if (e.detail === SUSPENDED_FROM_SNAPSHOT) this.revertStep(out, e, t);
        else if (e.detail === SUSPENDED_MIGRATED) break;
        else if (after && after.state === STATE_PAUSED && JOB_PAUSE_REASONS.has(after.reason)) break;
        else this.transition(out, e.uuid, t, 'suspended', e.ts);
        break;
      case EV.PMSUSPENDED:
        this.transition(out, e.uuid, t, 'suspended', e.ts);
        break;
      case EV.RESUMED:
        if (e.detail === RESUMED_FROM_SNAPSHOT) this.revertStep(out, e, t);
        else if (e.detail === RESUMED_MIGRATED) break;
        else this.transition(out, e.uuid, t, 'on', e.ts);
        break;
      case EV.STOPPED:
        if (e.detail === STOPPED_FROM_SNAPSHOT) this.revertStep(out, e, t);
        // Migrated away: with other hosts followed, the destination reports the arrival.
        else if (e.detail === STOPPED_MIGRATED && this.multiHost) {
          t.leaving = true;
          break;
        } else this.transition(out, e.uuid, t, 'off', e.ts);
        if (after === null && !t.gone) {
          // A transient domain ends with its process.
          this.bury(e.uuid, t);
          this.emit(out, e.uuid, t, 'deleted', e.ts);
        }
        break;
      case EV.CRASHED:
        this.transition(out, e.uuid, t, 'off', e.ts);
        break;
      default:
        // SHUTDOWN (a STOPPED follows) and event types newer than this code.
        break;
    }
    return out;
  }

  /** A FROM_SNAPSHOT step: a persistent domain's revert ends with DEFINED/FROM_SNAPSHOT; a transient one has no such end. */
  private revertStep(out: Derived[], e: RawEvent, t: Tracked): void {
    t.reverting = true;
    if (e.after && !e.after.persistent) this.reverted(out, e, t);
  }

  private reverted(out: Derived[], e: RawEvent, t: Tracked): void {
    t.reverting = false;
    this.emit(out, e.uuid, t, 'reverted', e.ts, { snapshot: e.after?.snapshot ?? null });
    if (e.after) this.transition(out, e.uuid, t, e.after.power, e.ts);
  }

  private transition(out: Derived[], uuid: string, t: Tracked, to: Power, ts: number): void {
    if (t.power === to) return;
    t.power = to;
    this.emit(out, uuid, t, to === 'on' ? 'powered_on' : to === 'off' ? 'powered_off' : 'suspended', ts);
  }

  private emit(
    out: Derived[],
    uuid: string,
    t: Tracked,
    kind: PlatformEventKind,
    ts: number,
    extra: Partial<PlatformEvent> = {},
  ): void {
    t.gen += 1;
    const event: PlatformEvent = {
      id: `libvirt/${uuid}/${t.gen}/${kind}`,
      ts,
      kind,
      vm: uuid,
      vmName: t.name,
      host: t.host,
      ...extra,
    };
    out.push({ event, cursor: this.toCursor() });
  }

  private put(uuid: string, t: Tracked): Tracked {
    this.domains.delete(uuid);
    this.domains.set(uuid, t);
    return t;
  }

  private bury(uuid: string, t: Tracked): void {
    t.gone = true;
    t.power = 'off';
    t.reverting = false;
    // Move to the end: tombstones are pruned oldest first.
    this.domains.delete(uuid);
    this.domains.set(uuid, t);
    let tombstones = 0;
    for (const d of this.domains.values()) if (d.gone) tombstones += 1;
    for (const [k, d] of this.domains) {
      if (tombstones <= MAX_TOMBSTONES) break;
      if (d.gone) {
        this.domains.delete(k);
        tombstones -= 1;
      }
    }
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
