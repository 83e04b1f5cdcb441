/**
 * Run by service.test.ts as a separate process: the flows service on an embedded bus data
 * dir, killed with SIGKILL right after its Nth send to the flows topic was acknowledged —
 * i.e. after emitting flows, before the checkpoint that would cover them. (Loaded by the
 * test runner too; without CORDON_FLOWS_CRASH_DIR it does nothing.)
 */
import { createContext, silentLogger } from '@cordon/runtime';
import { TOPICS } from '@cordon/schemas';
import { runStage } from '@cordon/stage';
import { flowsStage } from '../src/index.js';
import { openBus } from './bus-fixture.js';

const dir = process.env.CORDON_FLOWS_CRASH_DIR;
if (dir) {
  const killAfter = Number(process.env.CORDON_FLOWS_CRASH_AFTER ?? 3);
  const bus = openBus(dir);
  const realProducer = bus.producer.bind(bus);
  let sends = 0;
  // Fault injection around the real producer: same sends, then a hard kill.
  bus.producer = () => {
    const p = realProducer();
    return {
      async send(topic, records) {
        const md = await p.send(topic, records);
        if (topic === TOPICS.flows && ++sends >= killAfter) process.kill(process.pid, 'SIGKILL');
        return md;
      },
      close: () => p.close(),
    };
  };
  const svc = await runStage(flowsStage, {
    bus,
    ctx: createContext({ log: silentLogger }),
    config: { checkpointEveryBatches: 4, maxBatchRecords: 3 },
  });
  await svc.done;
}
