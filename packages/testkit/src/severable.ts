import { ERR_CLOSED, type Bus, type Producer } from '@cordon/bus';

/**
 * A bus whose link can be cut, for killing an in-process stage as a crash does: after
 * `sever()` nothing the stage sends reaches the bus (every send rejects, nothing is written),
 * so its last heartbeat, its "stopping" record and any frame it still had are never seen —
 * unlike `stop()` alone, which says goodbye. Stop the stage after severing it.
 */
export interface SeverableBus {
  bus: Bus;
  readonly severed: boolean;
  sever(): void;
}

export function severable(inner: Bus): SeverableBus {
  let severed = false;
  const producer = (): Producer => {
    const p = inner.producer();
    return {
      send: (topic, records) =>
        severed ? Promise.reject(ERR_CLOSED('a severed link to the bus')) : p.send(topic, records),
      close: () => p.close(),
    };
  };
  const bus: Bus = {
    kind: inner.kind,
    admin: inner.admin,
    producer,
    consumer: (opts) => inner.consumer(opts),
    // the inner bus is the test's: closing it is the test's business
    close: () => Promise.resolve(),
  };
  return {
    bus,
    get severed() {
      return severed;
    },
    sever() {
      severed = true;
    },
  };
}
