import { childContext, type Context } from '@cordon/runtime';
import type { Batch, Bus, ProduceRecord } from '@cordon/bus';
import { codecFor, TOPICS, type FileEvent, deadLetter } from '@cordon/schemas';
import { parseFimProcessorConfig, type FimProcessorConfig, type FimProcessorConfigInput } from './config.js';
import { FimAlerter } from './fim-alerts.js';

/**
 * The fim stage's adapter: `cordon.fim.v1` → FimAlerter → `cordon.alerts.v1`, bad input →
 * `cordon.dlq.v1`.
 *
 * The stage keeps no state (each event carries its before and after), so a batch's offsets
 * are committed once its alerts and dead letters are acknowledged: at least once, and a
 * redelivered batch gives the same alert ids (hash of event id and rule), which the sink
 * deduplicates.
 */

const STAGE = 'fim';

export interface FimProcessorOptions {
  bus: Bus;
  ctx: Context;
  /** Validated here, at the edge: unknown keys are errors. */
  config?: FimProcessorConfigInput;
}

export interface FimProcessorHandle {
  stop(): Promise<void>;
  /** Settles when the service has stopped (rejects if it failed). */
  readonly done: Promise<void>;
  readonly config: FimProcessorConfig;
}

export function startFimProcessor(opts: FimProcessorOptions): FimProcessorHandle {
  const config = parseFimProcessorConfig(opts.config ?? {});
  const { bus } = opts;
  // Metrics under "fim-processor": in `cordon up` the agent's FIM library (metrics "fim") may share the registry.
  const ctx = childContext(opts.ctx, 'fim-processor');
  const { log, metrics, clock } = ctx;
  const fimCodec = codecFor(TOPICS.fim);
  const alertCodec = codecFor(TOPICS.alerts);
  const alerter = new FimAlerter(config);
  const producer = bus.producer();
  let stopping = false;

  const consumer = bus.consumer({
    groupId: config.groupId,
    topics: [config.inputTopic],
    fromBeginning: true,
    autoCommit: false, // committed in handleBatch once its outputs are acknowledged
    maxBatchRecords: config.maxBatchRecords,
  });

  const dlq = (b: Batch, offset: bigint, key: Buffer | null, value: Buffer | null, err: unknown): ProduceRecord =>
    deadLetter(STAGE, { topic: b.topic, partition: b.partition, offset }, { key, value }, err, clock.now() * 1000);

  async function handleBatch(batch: Batch): Promise<void> {
    if (stopping) return; // leave the batch uncommitted: the next owner reads it again
    const alerts: ProduceRecord[] = [];
    const letters: ProduceRecord[] = [];
    for (const rec of batch.records) {
      metrics.inc('received');
      let ev: FileEvent;
      try {
        if (rec.value === null) throw new Error('record has no value (null)');
        ev = fimCodec.decode(rec.value);
        const alert = alerter.evaluate(ev);
        if (alert) alerts.push({ key: Buffer.from(alert.vm ?? ''), value: alertCodec.encode(alert) });
      } catch (err) {
        // Fail open per record: a bad event goes to the DLQ, the stream goes on.
        metrics.inc('errors');
        metrics.inc('dropped');
        letters.push(dlq(batch, rec.offset, rec.key, rec.value, err));
      }
    }
    if (alerts.length) await producer.send(config.outputTopic, alerts);
    if (letters.length) await producer.send(config.dlqTopic, letters);
    metrics.inc('sent', alerts.length);
    metrics.inc('alerts', alerts.length);
    const last = batch.records.at(-1);
    if (last) await consumer.commit([{ topic: batch.topic, partition: batch.partition, offset: last.offset + 1n }]);
  }

  const running = consumer.run(handleBatch);
  let stopped: Promise<void> | null = null;
  return {
    config,
    done: running,
    stop(): Promise<void> {
      stopped ??= (async () => {
        stopping = true;
        await consumer.close();
        await running.catch(() => undefined);
        await producer.close();
        log.info('FIM processor stopped.');
      })();
      return stopped;
    },
  };
}
