import type { Context } from '@cordon/runtime';
import type { Bus } from '@cordon/bus';
import type { Store } from '@cordon/store';
import type { CordonConfig } from './config.js';
import { ERR_CONTROL_NOT_READY } from './errors.js';
import { OPS } from './ops.js';
import { applyTopics, openBus, openReadStore } from './services.js';
import { awaitInstance, callOp } from './control/client.js';
import type { OpEvent, OpInput, OpName } from './control/protocol.js';

/** What an operation opens: the bus, or ClickHouse. */
const NEEDS: Record<OpName, 'bus' | 'store'> = {
  query: 'store',
  'policy-apply': 'bus',
  'inventory-apply': 'bus',
  replay: 'bus',
  'blocks-list': 'bus',
  'blocks-lift': 'bus',
  'alerts-tail': 'bus',
  'records-tail': 'bus',
  'inventory-list': 'bus',
  assignments: 'bus',
  'recommend-show': 'bus',
  evidence: 'bus',
  'users-add': 'bus',
};

export interface RunOpOptions<N extends OpName> {
  config: CordonConfig;
  ctx: Context;
  name: N;
  input: OpInput<N>;
  onEvent: (ev: OpEvent) => void;
  /** How long to wait for an instance that is starting on the data dir. */
  waitMs: number;
  signal?: AbortSignal;
}

/**
 * Run an operation where the data is: through the control socket of the `cordon up` that owns
 * the data dir (waiting while it starts), or — when nothing holds the data dir, or the
 * operation needs only Kafka or a ClickHouse server — in this process.
 */
export async function runOp<N extends OpName>(o: RunOpOptions<N>): Promise<unknown> {
  const embedded = NEEDS[o.name] === 'bus' ? o.config.bus.kind === 'embedded' : !o.config.store.url;
  if (embedded) {
    for (;;) {
      const socket = await awaitInstance(o.config.dataDir, o.waitMs, o.ctx.log);
      if (!socket) break;
      try {
        return await callOp(socket, o.name, o.input, o.onEvent, o.signal);
      } catch (err) {
        // started stopping between the status and the request: wait for what comes next
        if (!ERR_CONTROL_NOT_READY.is(err)) throw err;
      }
    }
  }
  let bus: Promise<Bus> | null = null;
  let store: Promise<Store> | null = null;
  const signal = o.signal ?? new AbortController().signal;
  try {
    const run = OPS[o.name] as (d: Parameters<(typeof OPS)['query']>[0], i: OpInput<N>) => Promise<unknown>;
    return await run(
      {
        ctx: o.ctx,
        dataDir: o.config.dataDir,
        bus: () =>
          (bus ??= (async () => {
            const b = openBus(o.config, o.ctx);
            await applyTopics(b);
            return b;
          })()),
        readStore: () => (store ??= openReadStore(o.config, o.ctx)),
        emit: o.onEvent,
        signal,
      },
      o.input,
    );
  } finally {
    if (bus) await (await (bus as Promise<Bus>).catch(() => null))?.close();
    if (store) await (await (store as Promise<Store>).catch(() => null))?.close();
  }
}
