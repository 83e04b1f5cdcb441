import { createContext, silentLogger } from '@cordon/runtime';
import { createKafkaBus } from '@cordon/bus';

/** The brokers `npm test` started; a test that needs Kafka fails (never skips) without them. */
export function kafkaBrokers(): string[] {
  const b = process.env.KAFKA_BROKERS;
  if (!b)
    throw new Error(
      'KAFKA_BROKERS is not set: run the suite through `npm test`, which starts the broker (infra/kafka)',
    );
  return b.split(',');
}

/**
 * End-to-end tests use the real topic names; each starts from none of them, so one test's
 * records and committed offsets never leak into the next.
 */
export async function freshCordonTopics(brokers: string[]): Promise<void> {
  const bus = createKafkaBus({ brokers, ctx: createContext({ log: silentLogger }) });
  try {
    const stale = (await bus.admin.listTopics()).map((t) => t.name).filter((n) => n.startsWith('cordon.'));
    if (stale.length) await bus.admin.deleteTopics(stale);
  } finally {
    await bus.close();
  }
}
