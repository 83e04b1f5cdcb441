import { readFileSync } from 'node:fs';
import { BatchBuilder, Engine, Rules, type RuleSource } from '@cordon/native';
import type { ProduceRecord, TopicPartition } from '@cordon/bus';
import { defineStage } from '@cordon/stage';
import { codecFor, RecoveryFilter, TOPICS, type PacketBatch } from '@cordon/schemas';
import { dpiConfigSchema, eveToAlert } from './alerts.js';
import { RuleCompiler } from './rules-compile.js';
import { followPolicyRules } from './rules-from-policy.js';
import { SelectionFilter } from './rule-selection.js';

/**
 * A PacketBatch of at most this many packets is inspected on the JavaScript thread: tens of
 * microseconds of work, where a pool thread's wake-up and the completion's return to the
 * event loop cost more, and each is a scheduling delay on a busy host (the detection → block
 * loop's tail; bench/RESULTS.md "Detection → block").
 */
const INLINE_MAX_PACKETS = 16;

/**
 * The dpi stage: `cordon.packets.v1` → one native engine per input partition (a flow's
 * packets all land on one partition, so its flow, stream and app-layer state live there) →
 * `cordon.alerts.v1`. Several instances share the partitions through the consumer group, and
 * so do the `workers` consume loops of one instance: each loop's bulk batches run on a libuv
 * pool thread, so engines of partitions owned by different loops inspect on different cores
 * (a record of a few packets is inspected in place, see INLINE_MAX_PACKETS). One
 * native call per PacketBatch record. The rule set comes from the policy topic (or
 * `ruleFiles`) and can be replaced while running: it is compiled off the event loop within
 * `compileTimeoutS` (see RuleCompiler) while the old set keeps inspecting, then every engine
 * switches and flows continue.
 *
 * A VM's rule selection on the policy topic (the recommend stage's autoApply) keeps the alerts
 * of the rules it leaves out for that VM off the alerts topic (SelectionFilter).
 *
 * A partition taken away (rebalance) is finished: its engine flushes and its last alerts are
 * sent; the next owner starts that partition's flows afresh (Suricata's midstream rules apply
 * to them). Alert ids are deterministic (batch id, flow, sid, time, position), so a batch
 * delivered again yields the same alerts and the sink counts them once.
 */
export const dpiStage = defineStage({
  name: 'dpi',
  summary: 'packets → the native DPI engine (Suricata-format rules from the policy) → alerts',
  config: dpiConfigSchema,
  inputs: (c) => [{ group: c.groupId, topic: c.inputTopic }],
  outputs: (c) => [c.outputTopic, c.dlqTopic],
  reads: () => [TOPICS.policy],
  async start(stage) {
    const { config, ctx } = stage;
    const { log, metrics, clock } = ctx;
    const packets = codecFor(TOPICS.packets);
    const alertsCodec = codecFor(TOPICS.alerts);
    // per partition: its engine and the rule set it inspects with
    const engines = new Map<number, { engine: Engine; rules: Rules }>();
    // no rules until the first set is compiled (the start waits for it, within the time limit)
    let rules: Rules = Rules.compile([]);

    // An engine takes a new rule set before its next batch (one may be in flight on a pool
    // thread now); flows continue.
    const setRules = (next: Rules) => {
      rules = next;
      log.info({ engines: engines.size }, 'Rule set replaced; flows continue.');
    };

    const engineFor = (partition: number): Engine => {
      let e = engines.get(partition);
      if (!e) {
        const engine = new Engine(rules, {
          checksum: config.checksum,
          maxFlows: config.maxFlows,
          encryptionHandling: config.encryptionHandling,
        });
        engines.set(partition, (e = { engine, rules }));
      }
      if (e.rules !== rules) {
        e.engine.setRules(rules);
        e.rules = rules;
      }
      return e.engine;
    };

    const selections = new SelectionFilter();
    /**
     * Alerts of one PacketBatch, numbered within it (positions must not depend on how the bus
     * batched records), less those of rules the VM's rule selection leaves out.
     */
    const toRecords = (lines: string[], pb: PacketBatch, out: ProduceRecord[]) => {
      lines.forEach((line, i) => {
        const alert = eveToAlert(line, pb, i);
        if (!selections.allows(alert.vm, Number(alert.rule_id.slice('sid:'.length)))) {
          metrics.inc('alerts_deselected');
          return;
        }
        out.push({ key: Buffer.from(alert.vm ?? alert.sensor ?? ''), value: alertsCodec.encode(alert) });
      });
    };

    // the flushing alerts of a finished partition belong to no batch: this stands in for one
    const flushBatch = (partition: number): PacketBatch => ({
      batch_id: `flush:${config.inputTopic}:${partition}:${clock.now()}`,
      sensor: 'dpi',
      vm: null,
      linktype: 1,
      end_of_source: true,
      recovery_of: null,
      packets: [],
    });

    const compiler = new RuleCompiler(ctx, { timeLimitMs: config.compileTimeoutS * 1000, apply: setRules });
    stage.onStop(() => compiler.close());
    const request = (sources: RuleSource[]) => {
      selections.setSources(sources);
      compiler.request(sources);
    };
    if (config.ruleFiles) request(config.ruleFiles.map((f) => ({ name: f, text: readFileSync(f, 'utf8') })));
    // Rules (and the VMs' rule selections) from the policy topic, restored before the first
    // packet is inspected; until a policy names some, an empty set (no alerts).
    else await followPolicyRules(stage, request, selections.view);
    await compiler.idle();

    // a lost agent's recovery (PacketBatch.recovery_of): the frames it delivered are not inspected twice
    const recovery = new RecoveryFilter({ count: (what, n) => metrics.inc(what, n) });
    for (let w = 0; w < config.workers; w++)
      stage.consume<PacketBatch>({
        group: config.groupId,
        topics: [config.inputTopic],
        decode: (v) => packets.decode(v),
        dlqTopic: config.dlqTopic,
        maxBatchRecords: config.maxBatchRecords,
        async onRevoke(tps: TopicPartition[]) {
          const out: ProduceRecord[] = [];
          for (const tp of tps) {
            const e = engines.get(tp.partition);
            if (!e) continue;
            toRecords(await e.engine.finishAsync(), flushBatch(tp.partition), out);
            engines.delete(tp.partition);
          }
          for (const tp of tps) recovery.forget(tp.partition);
          await stage.send(config.outputTopic, out);
        },
        async handle(batch) {
          const engine = engineFor(batch.partition);
          const out: ProduceRecord[] = [];
          for (const { value: pb, record } of batch.records) {
            try {
              let lines: string[] = [];
              const pkts = recovery.packets(batch.partition, pb);
              if (pkts.length) {
                const b = new BatchBuilder();
                for (const p of pkts) b.add(p.frame, p.ts_us, pb.linktype);
                // a few packets (a live capture's trickle) cost less to inspect here than the
                // two thread hand-offs of the pool; bulk batches go to the pool
                lines =
                  pkts.length <= INLINE_MAX_PACKETS
                    ? engine.processBatch(b.take())
                    : await engine.processBatchAsync(b.take());
                metrics.inc('packets', pkts.length);
              }
              // a source that ended (a replayed capture) flushes, as Suricata does at the end of a pcap
              if (pb.end_of_source) lines = lines.concat(await engine.finishAsync());
              toRecords(lines, pb, out);
            } catch (err) {
              batch.reject(record, err);
            }
          }
          batch.emit(config.outputTopic, out);
        },
      });

    return {
      setRules,
      /** The rule set in force. */
      rules: () => rules,
      /** Resolves when no rule set is compiling or waiting to. */
      compiled: () => compiler.idle(),
      /** The rule selection in force for `vm` (null: every rule of the policy alerts for it). */
      selection: (vm: string) => selections.view.byVm.get(vm)?.selection ?? null,
    };
  },
});
