/**
 * The bus conformance suite against the real broker named by KAFKA_BROKERS (the test script
 * starts one with infra/kafka/start.sh). No broker is a failure, not a skip: a green run must
 * mean the Kafka adapter was exercised.
 */
import { createContext, silentLogger } from '@cordon/runtime';
import { createKafkaBus, type Bus } from '../src/index.js';
import { runConformance } from './conformance.js';

const brokers = process.env.KAFKA_BROKERS?.split(',').filter(Boolean) ?? [];

runConformance('kafka', async () => {
  if (brokers.length === 0)
    throw new Error('KAFKA_BROKERS is not set; start a broker with infra/kafka/start.sh and export what it prints');
  const ctx = createContext({ log: silentLogger });
  let bus: Bus = createKafkaBus({ brokers, clientId: 'conformance', ctx });
  await bus.admin.listTopics(); // fail here, clearly, if the broker is down
  return {
    bus,
    reopen: async () => {
      await bus.close();
      bus = createKafkaBus({ brokers, clientId: 'conformance', ctx });
      return bus;
    },
    cleanup: async () => {
      const mine = (await bus.admin.listTopics()).filter((t) => t.name.startsWith('conf-')).map((t) => t.name);
      await bus.admin.deleteTopics(mine);
      await bus.close();
    },
  };
});
