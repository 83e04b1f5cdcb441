import { defineStage } from '@cordon/stage';
import { codecFor, TOPICS, type FileEvent } from '@cordon/schemas';
import { fimProcessorConfigSchema } from './config.js';
import { FimAlerter } from './fim-alerts.js';

/**
 * The fim stage: `cordon.fim.v1` → FimAlerter → `cordon.alerts.v1`, bad events → the DLQ.
 *
 * It keeps no state (each event carries its before and after), so a batch's offsets are
 * committed once its alerts are acknowledged: at least once, and a redelivered batch gives the
 * same alert ids (hash of event id and rule), which the sink deduplicates.
 */
export const fimStage = defineStage({
  name: 'fim',
  summary: "file integrity events from agents → alerts, per the policy's path rules",
  config: fimProcessorConfigSchema,
  inputs: (c) => [{ group: c.groupId, topic: c.inputTopic }],
  outputs: (c) => [c.outputTopic, c.dlqTopic],
  reads: () => [],
  start(stage) {
    const { config, ctx } = stage;
    const alerter = new FimAlerter(config);
    const fimCodec = codecFor(TOPICS.fim);
    const alertCodec = codecFor(TOPICS.alerts);
    stage.consume<FileEvent>({
      group: config.groupId,
      topics: [config.inputTopic],
      decode: (v) => fimCodec.decode(v),
      dlqTopic: config.dlqTopic,
      maxBatchRecords: config.maxBatchRecords,
      handle(batch) {
        for (const { value: ev, record } of batch.records) {
          let alert;
          try {
            alert = alerter.evaluate(ev);
          } catch (err) {
            batch.reject(record, err);
            continue;
          }
          if (!alert) continue;
          batch.emit(config.outputTopic, { key: Buffer.from(alert.vm ?? ''), value: alertCodec.encode(alert) });
          ctx.metrics.inc('alerts');
        }
      },
    });
    return { alerter };
  },
});
