/**
 * vSphere events and tasks → PlatformEvent, and the cursor they resume from. Pure.
 *
 * What vcsim (govmomi v0.56.0) raises, measured with infra/vcsim: power on → VmStartingEvent,
 * VmPoweredOnEvent; power off → VmStoppingEvent, VmPoweredOffEvent; suspend → VmSuspendingEvent,
 * VmSuspendedEvent; relocate → VmMigratedEvent whose `host` AND `sourceHost` both name the source
 * (the destination is runtime.host afterwards); clone → VmBeingClonedEvent, then for the new VM
 * VmBeingCreatedEvent, VmInstanceUuidAssignedEvent, VmUuidAssignedEvent, VmCreatedEvent and
 * VmClonedEvent; destroy → VmRemovedEvent; snapshot revert → no event at all (only a task).
 */
import type { ConnectorCursor, PlatformEventKind } from '@cordon/platform';
import type { TaskInfo, VimEvent } from './vim25.js';

/** Event types the collector is filtered to, and what each means. */
export const EVENT_KINDS: Readonly<Record<string, PlatformEventKind>> = {
  VmPoweredOnEvent: 'powered_on',
  DrsVmPoweredOnEvent: 'powered_on',
  VmPoweredOffEvent: 'powered_off',
  VmSuspendedEvent: 'suspended',
  VmMigratedEvent: 'migrated',
  DrsVmMigratedEvent: 'migrated',
  VmRelocatedEvent: 'migrated',
  VmClonedEvent: 'cloned',
  VmCreatedEvent: 'created',
  VmRegisteredEvent: 'created',
  VmDeployedEvent: 'created',
  VmRemovedEvent: 'deleted',
};

/** Read for its instanceUuid (a VM created and removed while we were away is still named). */
export const UUID_EVENT = 'VmInstanceUuidAssignedEvent';

export const EVENT_TYPE_IDS = [...Object.keys(EVENT_KINDS), UUID_EVENT];

export function eventKind(ev: VimEvent): PlatformEventKind | null {
  return EVENT_KINDS[ev.type] ?? null;
}

/** A snapshot revert (RevertToSnapshot_Task, RevertToCurrentSnapshot_Task) that succeeded. */
export function isRevertTask(t: TaskInfo): boolean {
  if (t.entity?.type !== 'VirtualMachine') return false;
  return /revert/i.test(t.descriptionId) || /revert/i.test(t.name ?? '');
}

export function eventId(key: number): string {
  return `event:${key}`;
}

/** Task keys ("task-81") are another namespace than event keys; the prefix keeps them apart. */
export function taskId(key: string): string {
  return `task:${key}`;
}

/**
 * Where each stream stands: the last event key delivered and its time, the last revert task
 * delivered and its queue time. Collectors are recreated from the times (inclusive) and skip
 * what was already delivered.
 */
export interface Position {
  eventKey: number;
  eventTime: number;
  taskKey: string;
  taskQueued: number;
}

export function toCursor(p: Position): ConnectorCursor {
  return { event_key: p.eventKey, event_time: p.eventTime, task_key: p.taskKey, task_queued: p.taskQueued };
}

/** The cursor handed to run(); null when it is not one of ours (the caller starts from now). */
export function fromCursor(c: ConnectorCursor | undefined): Position | null {
  if (c === undefined) return null;
  const eventKey = Number(c.event_key);
  const eventTime = Number(c.event_time);
  const taskQueued = Number(c.task_queued ?? c.event_time);
  if (!Number.isFinite(eventKey) || !Number.isFinite(eventTime) || !Number.isFinite(taskQueued)) return null;
  return { eventKey, eventTime, taskKey: String(c.task_key ?? ''), taskQueued };
}
