/** What a virtualization platform connector reports, normalised across platforms. */
export interface PlatformHost {
  /** Stable id: vSphere host MoRef value ("host-21"); libvirt: the host's name from its URI or capabilities. */
  id: string;
  name: string;
  cluster: string | null;
  connection: 'connected' | 'disconnected' | 'maintenance' | 'unknown';
}
export interface PlatformNic {
  /** lower-case aa:bb:cc:dd:ee:ff */ mac: string;
  network: string | null;
  ips: string[];
}
export interface PlatformVm {
  /** vSphere config.instanceUuid; libvirt domain UUID. */
  id: string;
  name: string;
  /** PlatformHost.id where it runs. */
  host: string | null;
  power: 'on' | 'off' | 'suspended';
  guestOs: string | null;
  nics: PlatformNic[];
  /** Name of the snapshot in use, if any. */
  snapshot: string | null;
  template: boolean;
}
export interface PlatformState {
  hosts: PlatformHost[];
  vms: PlatformVm[];
}
export type PlatformEventKind =
  'created' | 'powered_on' | 'powered_off' | 'suspended' | 'migrated' | 'reverted' | 'cloned' | 'deleted';
export interface PlatformEvent {
  /** The platform's own id for what happened (vSphere event key or task key), stable across reconnects: the caller dedups by it. */
  id: string;
  /** ms since epoch, the platform's time. */
  ts: number;
  kind: PlatformEventKind;
  /** PlatformVm.id */
  vm: string;
  vmName: string | null;
  /** Where the VM is after the event. */
  host: string | null;
  fromHost?: string | null; // migrated
  snapshot?: string | null; // reverted
  sourceVm?: string | null; // cloned: the source VM's id
}
/** Opaque position a connector resumes from after a restart (JSON-serialisable). */
export type ConnectorCursor = Record<string, string | number>;
export interface ConnectorHandlers {
  /** The full state: on first connect and after every reconnect (resync). */
  onSync(state: PlatformState): void | Promise<void>;
  /** One VM's new state (created or changed). */
  onVm(vm: PlatformVm): void | Promise<void>;
  /** A VM that no longer exists. */
  onVmRemoved(id: string): void | Promise<void>;
  onHost(host: PlatformHost): void | Promise<void>;
  /** Events in the platform's order; `cursor` is the position after this event. */
  onEvent(ev: PlatformEvent, cursor: ConnectorCursor): void | Promise<void>;
  /** The position moved without an event (a change no lifecycle event names): resume from here. */
  onCheckpoint?(cursor: ConnectorCursor): void | Promise<void>;
  onStatus?(s: { connected: boolean; error?: { code: string; message: string } }): void;
}
export interface PlatformConnector {
  readonly kind: 'vsphere' | 'libvirt' | 'file';
  /** The source URL without credentials. */
  readonly source: string;
  /**
   * Connect, deliver the full state (onSync), then follow changes and events until stop().
   * After the platform goes away or the session expires: reconnect with exponential backoff
   * (with jitter, capped), resync (onSync with the full state), and deliver the events that
   * happened while away, from `from`/the last cursor on — an event may be delivered again with
   * the same id, never lost. Handlers are awaited one at a time, in order.
   */
  run(handlers: ConnectorHandlers, from?: ConnectorCursor): Promise<void>;
  stop(): Promise<void>;
  /** One snapshot of the current state without following (for `cordon vms`, `inventory watch --once`). */
  snapshot(): Promise<PlatformState>;
}
