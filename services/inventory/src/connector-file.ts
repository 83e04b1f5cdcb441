import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describeError, type Context } from '@cordon/runtime';
import { parseInventoryText, type InventoryFile } from '@cordon/policy';
import type {
  ConnectorCursor,
  ConnectorHandlers,
  PlatformConnector,
  PlatformEvent,
  PlatformEventKind,
  PlatformState,
  PlatformVm,
} from '@cordon/platform';
import { diffStates } from '@cordon/platform';
import { ERR_INVENTORY_FILE, ERR_INVENTORY_SOURCE } from './errors.js';

/**
 * The inventory file (`file:///etc/cordon/inventory.yaml`, the YAML of `cordon inventory
 * apply`) as a platform: hosts and VMs as the file says (a VM without `power` is taken as
 * running), followed by polling the file. Each new version of the file is diffed with the
 * last one and the differences become lifecycle events — created, deleted, migrated,
 * powered_on, powered_off, suspended — whose ids are derived from the new version's hash, so
 * reading the same version again after a restart gives the same ids. The cursor carries the
 * last version's hash and each VM's host and power, so the events of an edit made while
 * Cordon was down are derived on the next start. A version that does not parse is reported
 * and skipped: the last good one stays in force.
 */
export interface FileConnectorOptions {
  url: string;
  ctx: Context;
  /** How often the file is looked at (default 1000 ms). */
  pollMs?: number;
}

interface Version {
  hash: string;
  mtimeMs: number;
  state: PlatformState;
}

type Brief = Record<string, [host: string | null, power: PlatformVm['power']]>;

export function stateOfFile(inv: InventoryFile): PlatformState {
  const state: PlatformState = { hosts: [], vms: [] };
  for (const [h, host] of Object.entries(inv.hosts)) {
    state.hosts.push({ id: h, name: host.name ?? h, cluster: null, connection: 'connected' });
    for (const [v, m] of Object.entries(host.vms)) {
      state.vms.push({
        id: v,
        name: m.name ?? v,
        host: h,
        power: m.power ?? 'on',
        guestOs: m.guestOs ?? null,
        nics: m.nics.map((n) => ({ mac: n.mac, network: n.network ?? null, ips: n.ips })),
        snapshot: null,
        template: false,
      });
    }
  }
  return state;
}

const POWER_EVENT: Record<PlatformVm['power'], PlatformEventKind> = {
  on: 'powered_on',
  off: 'powered_off',
  suspended: 'suspended',
};

/** The events that turn `prev` (id → host, power) into `next`, with ids from the new version's hash (pure). */
export function eventsBetween(prev: Brief, next: PlatformState, hash: string, ts: number): PlatformEvent[] {
  const out: PlatformEvent[] = [];
  const id = (vm: string, kind: string) => `file:${hash.slice(0, 16)}:${vm}:${kind}`;
  const nextIds = new Set(next.vms.map((v) => v.id));
  for (const v of next.vms) {
    const was = prev[v.id];
    if (!was) {
      out.push({ id: id(v.id, 'created'), ts, kind: 'created', vm: v.id, vmName: v.name, host: v.host });
      if (v.power !== 'off')
        out.push({
          id: id(v.id, POWER_EVENT[v.power]),
          ts,
          kind: POWER_EVENT[v.power],
          vm: v.id,
          vmName: v.name,
          host: v.host,
        });
      continue;
    }
    if (was[0] !== v.host)
      out.push({
        id: id(v.id, 'migrated'),
        ts,
        kind: 'migrated',
        vm: v.id,
        vmName: v.name,
        host: v.host,
        fromHost: was[0],
      });
    if (was[1] !== v.power)
      out.push({
        id: id(v.id, POWER_EVENT[v.power]),
        ts,
        kind: POWER_EVENT[v.power],
        vm: v.id,
        vmName: v.name,
        host: v.host,
      });
  }
  for (const [vm, [host]] of Object.entries(prev)) {
    if (!nextIds.has(vm)) out.push({ id: id(vm, 'deleted'), ts, kind: 'deleted', vm, vmName: null, host });
  }
  return out;
}

const briefOf = (s: PlatformState): Brief => Object.fromEntries(s.vms.map((v) => [v.id, [v.host, v.power]]));

export class FileConnector implements PlatformConnector {
  readonly kind = 'file' as const;
  readonly source: string;
  private readonly path: string;
  private readonly pollMs: number;
  private readonly ctx: Context;
  private stopped = false;
  private wake: (() => void) | null = null;
  private running: Promise<void> | null = null;

  constructor(opts: FileConnectorOptions) {
    let url: URL;
    try {
      url = new URL(opts.url);
    } catch {
      throw ERR_INVENTORY_SOURCE(opts.url, 'not a URL (expected file:///path/inventory.yaml)');
    }
    if (url.protocol !== 'file:' || url.host !== '')
      throw ERR_INVENTORY_SOURCE(opts.url, 'a file source is file:///absolute/path');
    this.path = fileURLToPath(url);
    this.source = url.href;
    this.pollMs = opts.pollMs ?? 1000;
    this.ctx = opts.ctx;
  }

  /** The file's current version; a version that does not parse throws ERR_INVENTORY_FILE. */
  private read(): Version {
    let text: string;
    let mtimeMs: number;
    try {
      mtimeMs = statSync(this.path).mtimeMs;
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      throw ERR_INVENTORY_FILE.withCause(err, this.path, (err as Error).message);
    }
    let inv: InventoryFile;
    try {
      inv = parseInventoryText(text, this.path);
    } catch (err) {
      throw ERR_INVENTORY_FILE.withCause(err, this.path, describeError(err).message);
    }
    return { hash: createHash('sha256').update(text).digest('hex'), mtimeMs, state: stateOfFile(inv) };
  }

  async snapshot(): Promise<PlatformState> {
    return this.read().state;
  }

  run(handlers: ConnectorHandlers, from?: ConnectorCursor): Promise<void> {
    this.running ??= this.loop(handlers, from);
    return this.running;
  }

  private async loop(h: ConnectorHandlers, from?: ConnectorCursor): Promise<void> {
    /** What the cursor (or the last version seen) says: the version's hash and each VM's host and power. */
    let seenHash: string | null = null;
    let brief: Brief | null = null;
    if (from && typeof from.hash === 'string' && typeof from.vms === 'string') {
      try {
        brief = JSON.parse(from.vms) as Brief;
        seenHash = from.hash;
      } catch {
        brief = null; // an unreadable cursor: start from the present, without catch-up events
      }
    }
    let last: Version | null = null;
    let lastError = '';
    while (!this.stopped) {
      let v: Version | null = null;
      try {
        v = this.read();
        if (lastError) h.onStatus?.({ connected: true });
        lastError = '';
      } catch (err) {
        const e = describeError(err);
        if (e.message !== lastError) {
          this.ctx.log.warn(
            { err: e, file: this.path },
            'The inventory file cannot be used; the last good version stays in force.',
          );
          h.onStatus?.({ connected: false, error: e });
        }
        lastError = e.message;
      }
      if (v && v.hash !== last?.hash) {
        if (last === null) await h.onSync(v.state);
        else {
          const d = diffStates(last.state, v.state);
          for (const host of d.hosts) await h.onHost(host);
          for (const vm of d.vms) await h.onVm(vm);
          for (const id of d.vmsRemoved) await h.onVmRemoved(id);
        }
        const cursor: ConnectorCursor = { hash: v.hash, vms: JSON.stringify(briefOf(v.state)) };
        const events = brief && v.hash !== seenHash ? eventsBetween(brief, v.state, v.hash, Math.round(v.mtimeMs)) : [];
        for (const ev of events) await h.onEvent(ev, cursor);
        // the cursor moves to this version even when it changed nothing a lifecycle event names
        if (events.length === 0 && v.hash !== seenHash) await h.onCheckpoint?.(cursor);
        last = v;
        seenHash = v.hash;
        brief = briefOf(v.state);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.pollMs);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
  }
}
