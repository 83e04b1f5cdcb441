import { describeError } from '@cordon/runtime';
import { defineStage } from '@cordon/stage';
import { codecFor, TOPICS, type ProcessEvent } from '@cordon/schemas';
import { STAGE, toAlert } from './alerts.js';
import { procinspectConfigSchema } from './config.js';
import { ERR_PROCINSPECT_BAD_EVENT } from './errors.js';
import { ProcessInspector } from './inspector.js';

/**
 * The procinspect stage: `cordon.processes.v1` (agents' signed process events; the runtime
 * refuses unsigned, forged and misbound ones before they get here) → Sigma process_creation
 * rules and Cordon's own → `cordon.alerts.v1`, each alert with the process tree the agent
 * attached; undecodable records → the DLQ.
 *
 * A stage of its own rather than a part of loginspect: its input is another topic with its
 * own partitions and rate (an exec storm must not delay log inspection, nor a log flood
 * process alerts), and it keeps no state — each event carries its tree — where loginspect's
 * per-partition state (thresholds, sessions) is checkpointed. The Sigma engine is shared.
 * Alert ids come from the event id and the rule: a redelivered event gives the same alert.
 */
export const procinspectStage = defineStage({
  name: STAGE,
  summary: 'process events from agents → Sigma process_creation and Cordon rules → alerts with the process tree',
  config: procinspectConfigSchema,
  inputs: (c) => [{ group: c.groupId, topic: c.inputTopic }],
  outputs: (c) => [c.alertsTopic, c.dlqTopic],
  start(stage) {
    const { config, ctx } = stage;
    const { log, metrics } = ctx;
    const inspector = ProcessInspector.fromConfig(config.rules);
    log.info(
      { loaded: inspector.rules.rules.length, refused: inspector.rules.refused.length },
      'Process rules loaded; `cordon proctest --events FILE --stats` lists the refused ones with reasons.',
    );
    const codec = codecFor(TOPICS.processes);
    const alertsCodec = codecFor(TOPICS.alerts);
    stage.consume<ProcessEvent>({
      group: config.groupId,
      topics: [config.inputTopic],
      dlqTopic: config.dlqTopic,
      maxBatchRecords: config.maxBatchRecords,
      decode: (v) => {
        try {
          return codec.decode(v);
        } catch (err) {
          throw ERR_PROCINSPECT_BAD_EVENT.withCause(err, describeError(err).message);
        }
      },
      handle(batch) {
        for (const { value: e } of batch.records) {
          metrics.inc('events');
          for (const d of inspector.inspect(e)) {
            batch.emit(config.alertsTopic, { key: Buffer.from(e.vm), value: alertsCodec.encode(toAlert(d)) });
            metrics.inc('alerts');
          }
        }
        return Promise.resolve();
      },
    });
    return { inspector };
  },
});
