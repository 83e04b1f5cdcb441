import { describeError } from '@cordon/runtime';
import { AssignmentView, InventoryView, PolicyView } from '@cordon/policy';
import { defineStage } from '@cordon/stage';
import { codecFor, TOPICS, type Alert } from '@cordon/schemas';
import { responderConfigSchema } from './config.js';
import { BlockHistory, decide, readdress, type Views } from './decide.js';

/**
 * The responder: `cordon.alerts.v1` (consumer group) → decide → `cordon.blocks.v1`, bad
 * alerts → the DLQ. Policy, inventory, assignments, the blocks already decided and the
 * failures their enforcers reported (`cordon.block-status.v1`) are followed as tables (read whole at start, then followed) by every instance, so each instance
 * decides with the full picture whatever alert partitions it owns.
 *
 * At-least-once: a batch's offsets are committed after its decisions are acknowledged; a
 * batch redelivered after a crash decides nothing new (see decide.ts on idempotency).
 */
export const responderStage = defineStage({
  name: 'responder',
  summary: 'alerts → block decisions for the enforcer of the attacked VM, per policy (detect/prevent, TTLs)',
  config: responderConfigSchema,
  inputs: (c) => [{ group: c.groupId, topic: TOPICS.alerts }],
  outputs: () => [TOPICS.blocks, TOPICS.dlq],
  reads: () => [TOPICS.policy, TOPICS.inventory, TOPICS.assignments, TOPICS.blocks, TOPICS.blockStatus],
  async start(stage) {
    const { config, ctx } = stage;
    const { log, metrics, clock } = ctx;
    const blocksCodec = codecFor(TOPICS.blocks);
    const views: Views = {
      policy: new PolicyView(),
      inventory: new InventoryView(),
      assignments: new AssignmentView(),
      blocks: new BlockHistory(),
    };

    // A record a view cannot use is skipped and counted (fail open: one bad policy record must
    // not stop blocking), and kept in the DLQ for the operator.
    const viewOf = (topic: string, apply: (k: Buffer | null, v: Buffer | null) => void) =>
      stage.follow(topic, async (r) => {
        try {
          apply(r.key, r.value);
        } catch (err) {
          metrics.inc('view_records_bad');
          log.warn(
            { err: describeError(err), topic, offset: String(r.offset) },
            'A record of a followed table is not usable; it was skipped and sent to the DLQ.',
          );
          await stage.send(TOPICS.dlq, [stage.deadLetter(r, r, err)]);
        }
      });
    await viewOf(TOPICS.policy, (k, v) => views.policy.apply(k, v));
    await viewOf(TOPICS.inventory, (k, v) => views.inventory.apply(k, v));
    // a VM whose enforcer changes takes its blocks along (readdress)
    await stage.follow(TOPICS.assignments, async (r, restoring) => {
      const vm = r.key?.toString() ?? '';
      const before = views.assignments.byVm.get(vm)?.enforcer ?? null;
      try {
        views.assignments.apply(r.key, r.value);
      } catch (err) {
        metrics.inc('view_records_bad');
        log.warn(
          { err: describeError(err), topic: TOPICS.assignments, offset: String(r.offset) },
          'A record of a followed table is not usable; it was skipped and sent to the DLQ.',
        );
        await stage.send(TOPICS.dlq, [stage.deadLetter(r, r, err)]);
        return;
      }
      const after = views.assignments.byVm.get(vm);
      if (restoring || !after?.enforcer || after.mode === 'none' || after.enforcer === before) return;
      const moves = readdress(vm, after.enforcer, views.blocks, clock.now() * 1000);
      if (moves.length === 0) return;
      const out = [];
      for (const m of moves) {
        views.blocks.put(m.key.toString(), m.decision);
        views.blocks.put(m.from, null);
        out.push({ key: m.key, value: blocksCodec.encode(m.decision) }, { key: Buffer.from(m.from), value: null });
      }
      await stage.send(TOPICS.blocks, out);
      metrics.inc('blocks_readdressed', moves.length);
      log.info({ vm, enforcer: after.enforcer, blocks: moves.length }, "The VM's blocks moved to its new enforcer.");
    });
    await viewOf(TOPICS.blocks, (k, v) => views.blocks.apply(k, v));
    await viewOf(TOPICS.blockStatus, (k, v) => views.blocks.applyStatus(k, v));
    log.info(
      {
        policies: views.policy.policies.size,
        vms: views.inventory.vms.size,
        assignments: views.assignments.byVm.size,
        blocks: views.blocks.size,
      },
      'Responder views are loaded.',
    );

    stage.consume<Alert>({
      group: config.groupId,
      topics: [TOPICS.alerts],
      maxBatchRecords: config.maxBatchRecords,
      handle(batch) {
        for (const { value: alert, record } of batch.records) {
          try {
            const d = decide(alert, views, config.policyId, clock.now() * 1000);
            if (d.kind === 'skip') {
              metrics.inc(`skipped_${d.reason}`);
              if (d.reason === 'unresolved')
                log.warn(
                  { alert: alert.alert_id, detail: d.detail },
                  'An alert that calls for a block could not be resolved to a VM and enforcer; no block.',
                );
              continue;
            }
            // applied to the view now, so a later alert of the same batch sees it
            views.blocks.put(d.key.toString(), d.decision);
            batch.emit(TOPICS.blocks, { key: d.key, value: blocksCodec.encode(d.decision) });
            metrics.inc('blocks');
            if (d.repeat) metrics.inc('blocks_repeat');
          } catch (err) {
            batch.reject(record, err);
          }
        }
      },
    });
    return { views };
  },
});
