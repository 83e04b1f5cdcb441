import { describeError } from '@cordon/runtime';
import { readKeys, readTable, type ConsumedRecord, type TopicPartition } from '@cordon/bus';
import { pinnedSids, PolicyView, ruleSelectionRecord, RuleSelectionView, type RuleSelection } from '@cordon/policy';
import { defineStage } from '@cordon/stage';
import {
  codecFor,
  stageStateKey,
  TOPICS,
  type FlowRecord,
  type InventoryRecord,
  type NetSnapshot,
  type StageState,
} from '@cordon/schemas';
import { CandidateCache, type CandidateSet } from './candidates.js';
import { recommendConfigSchema } from './config.js';
import { ERR_RECOMMEND_RULE, ERR_RECOMMEND_SNAPSHOT, ERR_RECOMMEND_STATE } from './errors.js';
import { buildFacts, checkSnapshot, decisionKey, PartitionEvidence, type VmInventory } from './evidence.js';
import { fit, type Fit, type FitOptions } from './fit.js';
import { recommend } from './recommend.js';
import { RuleVars } from './rule-vars.js';

const STAGE = 'recommend';
/** Rules judged between two yields to the event loop (~20 ms). */
const FIT_SLICE = 2000;

interface PartState {
  topic: string;
  partition: number;
  ev: PartitionEvidence;
  /** Next input offset not reflected in `ev`. */
  nextOffset: bigint;
  checkpointed: bigint;
  lastCheckpointMs: number;
}

const sameList = <T>(a: readonly T[], b: readonly T[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * The recommend stage: for each inventory VM, the rules of the policy that fit what it runs.
 *
 * Follows `cordon.inventory.v1` (VMs, guest OS, addresses) and `cordon.policy.v1` (the
 * candidate rule files, pins, applied selections) as tables; consumes `cordon.netconf.v1`
 * (listening sockets with processes) and `cordon.flows.v1` (ports answered and connected to)
 * and checkpoints that evidence per input partition to `cordon.state.v1`, committing offsets
 * only with a checkpoint, so a restart resumes from it with nothing counted twice. VMs whose
 * evidence changed are recomputed every `recomputeIntervalMs`; a recommendation is published
 * to the compacted `cordon.recommendations.v1` (key: vm) only when its digest changes, with
 * the next version. With `autoApply` the VM's rule selection is written to the policy topic.
 *
 * One instance: evidence is per partition and merged per VM, so two instances sharing the
 * partitions would each judge VMs on half of it. Run it once (it is light: `cordon up` does).
 */
export const recommendStage = defineStage({
  name: STAGE,
  summary: 'inventory, agent netconf and flows → the rules each VM needs, each with its reason (cordon recommend)',
  config: recommendConfigSchema,
  inputs: (c) => [
    { group: c.groupId, topic: TOPICS.netconf },
    { group: c.groupId, topic: TOPICS.flows },
  ],
  outputs: (c) => [TOPICS.recommendations, TOPICS.state, TOPICS.dlq, ...(c.autoApply ? [TOPICS.policy] : [])],
  reads: () => [TOPICS.inventory, TOPICS.policy, TOPICS.recommendations, TOPICS.state],
  async start(stage) {
    const { config, bus, ctx } = stage;
    const { log, metrics, clock } = ctx;
    const vars = new RuleVars(config.vars);
    const cache = new CandidateCache(vars, JSON.stringify(config.vars));
    const fitOptions: FitOptions = {
      clientRules: config.clientRules,
      minSeverity: config.minSeverity,
      deployments: new Set(config.deployments),
      homeNet: vars.addr('$HOME_NET'),
    };
    const factsOptions = {
      minFlows: config.minFlows,
      maxAgeS: config.maxAgeS,
      tlsDecrypted: config.deployments.includes('SSLDecrypt'),
    };
    const recCodec = codecFor(TOPICS.recommendations);
    const stateCodec = codecFor(TOPICS.state);
    const invCodec = codecFor(TOPICS.inventory);

    const vms = new Map<string, VmInventory>();
    const vmOfIp = new Map<string, string>();
    const policy = new PolicyView();
    const selections = new RuleSelectionView();
    const parts = new Map<string, PartState>();
    const published = new Map<string, { version: number; digest: string }>();
    /** What each VM was last computed from: unchanged inputs are not recomputed. */
    const computedFrom = new Map<string, string>();
    const dirty = new Set<string>();
    let candidates: CandidateSet | null = null;
    let candidatesStale = true;
    const markAll = () => {
      for (const id of vms.keys()) dirty.add(id);
    };

    // A record a table cannot use is skipped, counted and kept in the DLQ (fail open: one bad
    // record must not stop recommendations for every VM).
    const badRecord = async (topic: string, r: ConsumedRecord, err: unknown) => {
      metrics.inc('view_records_bad');
      log.warn(
        { err: describeError(err), topic, offset: String(r.offset) },
        'A record of a followed table is not usable; it was skipped and sent to the DLQ.',
      );
      await stage.send(TOPICS.dlq, [stage.deadLetter(r, r, err)]);
    };

    for (const r of (await readTable(bus, TOPICS.recommendations)).values()) {
      if (!r.value) continue;
      try {
        const rec = recCodec.decode(r.value);
        published.set(rec.vm, { version: rec.version, digest: rec.digest });
      } catch (err) {
        log.warn(
          { err: describeError(err), key: r.key?.toString() },
          'A published recommendation is unreadable; its VM starts again at version 1.',
        );
      }
    }

    const removeVm = (id: string) => {
      const old = vms.get(id);
      if (!old) return;
      for (const ip of old.ips) if (vmOfIp.get(ip) === id) vmOfIp.delete(ip);
      vms.delete(id);
    };
    await stage.follow(TOPICS.inventory, async (r) => {
      const k = r.key?.toString() ?? '';
      if (!k.startsWith('vm:')) return;
      if (r.value === null) {
        removeVm(k.slice(3));
        dirty.add(k.slice(3));
        return;
      }
      let rec: InventoryRecord;
      try {
        rec = invCodec.decode(r.value);
      } catch (err) {
        await badRecord(TOPICS.inventory, r, err);
        return;
      }
      if (rec.kind !== 'vm') return;
      removeVm(rec.id);
      dirty.add(rec.id);
      if (rec.template) return; // a template runs nothing: no recommendation (a published one is tombstoned)
      const ips = [...new Set(rec.nics.flatMap((n) => n.ips))].sort();
      vms.set(rec.id, { id: rec.id, name: rec.name, guestOs: rec.guest_os, ips });
      for (const ip of ips) vmOfIp.set(ip, rec.id);
      dirty.add(rec.id);
    });
    await stage.follow(TOPICS.policy, async (r) => {
      const k = r.key?.toString() ?? '';
      try {
        if (selections.apply(r.key, r.value)) {
          dirty.add(k.slice(k.indexOf(':rule-selection:') + ':rule-selection:'.length));
          return;
        }
        policy.apply(r.key, r.value);
      } catch (err) {
        await badRecord(TOPICS.policy, r, err);
        return;
      }
      if (k.startsWith('policy:') || k.startsWith('ruleset:')) {
        candidatesStale = true;
        markAll();
      }
    });
    log.info(
      { vms: vms.size, policies: policy.policies.size, selections: selections.byVm.size, published: published.size },
      'Recommend views are loaded.',
    );

    // ------------------------------------------------------------ evidence (consumed, checkpointed)

    const partKey = (topic: string, partition: number) => `${topic}|${partition}`;
    // Nothing is published before the evidence is in: checkpoints restored and the input read
    // up to where it ended at start (a first start reads days of flows; a recommendation made
    // half-way would be wrong, then corrected, and an autoApply would follow both).
    const startEnds = new Map<string, bigint>();
    for (const topic of [TOPICS.netconf, TOPICS.flows])
      for (const [p, o] of await bus.admin.endOffsets(topic)) startEnds.set(partKey(topic, p), o);
    let caughtUp = false;
    const isCaughtUp = (): boolean => {
      if (caughtUp) return true;
      if (parts.size === 0) return false;
      for (const [k, ps] of parts) if (ps.nextOffset < (startEnds.get(k) ?? 0n)) return false;
      caughtUp = true;
      log.info(
        { partitions: parts.size },
        'Recommend evidence is read up to where its inputs ended at start; recommendations follow.',
      );
      return true;
    };

    async function checkpoint(ps: PartState): Promise<void> {
      if (ps.nextOffset === ps.checkpointed) return;
      const state: StageState = {
        stage: STAGE,
        input_topic: ps.topic,
        input_partition: ps.partition,
        input_offset: Number(ps.nextOffset),
        ts_us: clock.now() * 1000,
        state: ps.ev.serialize(),
        output_offsets: {},
        emitted_ids: [],
      };
      await stage.send(TOPICS.state, [
        { key: Buffer.from(stageStateKey(STAGE, ps.topic, ps.partition)), value: stateCodec.encode(state) },
      ]);
      await loop.commit([{ topic: ps.topic, partition: ps.partition, offset: ps.nextOffset }]);
      ps.checkpointed = ps.nextOffset;
      ps.lastCheckpointMs = clock.now();
      metrics.inc('checkpoints');
    }

    async function assign(tps: TopicPartition[]): Promise<void> {
      const mine = tps.filter((tp) => !parts.has(partKey(tp.topic, tp.partition)));
      if (!mine.length) return;
      const found = await readKeys(
        bus,
        TOPICS.state,
        mine.map((tp) => stageStateKey(STAGE, tp.topic, tp.partition)),
      );
      let restored = 0;
      for (const tp of mine) {
        const key = stageStateKey(STAGE, tp.topic, tp.partition);
        const rec = found.get(key);
        let ev = new PartitionEvidence();
        let offset = 0n;
        let ok = false;
        if (rec?.value) {
          try {
            const st = stateCodec.decode(rec.value);
            ev = PartitionEvidence.restore(st.state);
            offset = BigInt(st.input_offset);
            ok = true;
            restored++;
          } catch (err) {
            const e = ERR_RECOMMEND_STATE.withCause(err, key, describeError(err).message);
            log.error({ err: e }, 'A recommend checkpoint is unreadable; its partition is re-read from the start.');
            await stage.send(TOPICS.dlq, [stage.deadLetter(rec, rec, e)]);
          }
        }
        parts.set(partKey(tp.topic, tp.partition), {
          topic: tp.topic,
          partition: tp.partition,
          ev,
          nextOffset: offset,
          checkpointed: ok ? offset : -1n,
          lastCheckpointMs: clock.now(),
        });
        loop.seek({ topic: tp.topic, partition: tp.partition, offset });
      }
      log.info({ partitions: mine.length, restored }, 'Recommend input partitions assigned.');
      markAll();
    }

    async function revoke(tps: TopicPartition[]): Promise<void> {
      for (const tp of tps) {
        const ps = parts.get(partKey(tp.topic, tp.partition));
        if (!ps) continue;
        await checkpoint(ps);
        parts.delete(partKey(tp.topic, tp.partition));
      }
      markAll();
    }

    const loop = stage.consume<FlowRecord | NetSnapshot>({
      group: config.groupId,
      topics: [TOPICS.netconf, TOPICS.flows],
      commit: 'manual', // the committed offset is the checkpoint's, never ahead of it
      maxBatchRecords: config.maxBatchRecords,
      onAssign: (tps) => assign(tps),
      onRevoke: (tps) => revoke(tps),
      async handle(batch) {
        const ps = parts.get(partKey(batch.topic, batch.partition));
        if (!ps) return;
        const flowOpts = { maxPorts: config.maxPortsPerAddress, minFlows: config.minFlows };
        const known = (ip: string) => vmOfIp.has(ip);
        for (const { value, record } of batch.records) {
          if (record.offset < ps.nextOffset) continue;
          if (batch.topic === TOPICS.flows) {
            const f = value as FlowRecord;
            if (!known(f.src_ip) && !known(f.dst_ip)) {
              metrics.inc('flows_unattributed');
              continue;
            }
            for (const ip of ps.ev.addFlow(f, known, flowOpts)) dirty.add(vmOfIp.get(ip)!);
          } else {
            const s = value as NetSnapshot;
            const bad = checkSnapshot(s, config.maxSocketsPerSnapshot);
            if (bad) {
              metrics.inc('snapshots_bad');
              batch.reject(record, ERR_RECOMMEND_SNAPSHOT(s.vm, bad));
              continue;
            }
            if (ps.ev.setSnapshot(s)) dirty.add(s.vm);
          }
        }
        if (batch.nextOffset > ps.nextOffset) ps.nextOffset = batch.nextOffset;
        if (clock.now() - ps.lastCheckpointMs >= config.checkpointIntervalMs) {
          await batch.flush();
          await checkpoint(ps);
        }
      },
    });

    // Partitions that went quiet still get their last evidence written within the interval.
    stage.every(Math.min(config.checkpointIntervalMs, 1000), 'A periodic recommend checkpoint', () =>
      loop.exclusive(async () => {
        if (stage.stopping) return;
        for (const ps of parts.values())
          if (clock.now() - ps.lastCheckpointMs >= config.checkpointIntervalMs) await checkpoint(ps);
      }),
    );

    // ------------------------------------------------------------ recommendations

    async function applySelection(
      vm: string,
      selected: number[],
      version: number,
      digest: string,
      cs: CandidateSet,
    ): Promise<void> {
      const cur = selections.byVm.get(vm);
      const selection: RuleSelection = {
        vm,
        policy: config.policyId,
        ruleSets: cs.ruleSets,
        enabled: selected,
        recommendation: { version, digest },
        appliedBy: 'recommend',
      };
      const c = cur?.selection;
      if (
        c &&
        c.policy === selection.policy &&
        sameList(c.ruleSets, selection.ruleSets) &&
        sameList(c.enabled, selection.enabled)
      )
        return;
      await stage.send(TOPICS.policy, [ruleSelectionRecord(selection, (cur?.version ?? 0) + 1, clock.now() * 1000)]);
      metrics.inc('selections_applied');
      log.info(
        { vm, recommendation: version, rules: selected.length },
        "Recommendation applied: the VM's rule selection is on the policy topic.",
      );
    }

    async function recomputeDirty(): Promise<void> {
      if (!isCaughtUp()) return;
      if (candidatesStale) {
        const doc = policy.policies.get(config.policyId);
        if (!doc) return; // nothing to judge until the policy is there; VMs stay dirty
        const built = await cache.build(doc.doc, policy, config.ruleSets);
        if (!built) return; // a rule file is not complete on the topic yet
        candidates = built;
        candidatesStale = false;
        metrics.set('candidates', built.candidates.length);
        metrics.set('rules_unparsed', built.unparsed);
        log.info(
          {
            policy: config.policyId,
            files: built.ruleSets.length,
            candidates: built.candidates.length,
            unparsed: built.unparsed,
            skipped: built.skipped,
          },
          'Candidate rules loaded.',
        );
        for (const s of built.samples)
          log.warn(
            {
              err: ERR_RECOMMEND_RULE(
                `${s.ruleSet}:${s.line}${s.sid === null ? '' : ` (sid ${s.sid})`}`,
                s.reason,
                s.detail,
              ),
            },
            'A rule was skipped: it is neither recommended nor dropped.',
          );
      }
      const cs = candidates;
      const pol = policy.policies.get(config.policyId);
      if (!cs || !pol) return;
      const todo = [...dirty].sort();
      dirty.clear();
      for (const vm of todo) {
        if (stage.stopping) return;
        const inv = vms.get(vm);
        if (!inv) {
          // gone from the inventory: its recommendation goes too
          if (published.delete(vm)) await stage.send(TOPICS.recommendations, [{ key: Buffer.from(vm), value: null }]);
          computedFrom.delete(vm);
          continue;
        }
        const facts = buildFacts(
          inv,
          [...parts.values()].map((p) => p.ev),
          factsOptions,
        );
        const sel = selections.byVm.get(vm);
        const useSel = sel && sel.selection.policy === config.policyId ? sel.selection : null;
        const pinned = new Set(pinnedSids(pol.doc, vm));
        const from = JSON.stringify([
          decisionKey(facts),
          cs.key,
          useSel ? [sel!.version, useSel.ruleSets, useSel.enabled.length] : null,
          [...pinned],
        ]);
        if (computedFrom.get(vm) === from) continue;
        // ~10 µs a rule: ET Open for one VM is a few hundred ms, so it is judged in slices
        const fits: Fit[] = [];
        for (let i = 0; i < cs.candidates.length; i += FIT_SLICE) {
          for (const c of cs.candidates.slice(i, i + FIT_SLICE)) fits.push(fit(c, facts, fitOptions));
          await new Promise((r) => setImmediate(r));
        }
        let out;
        try {
          out = recommend({
            fits,
            facts,
            candidates: cs,
            enabled: useSel ? { ruleSets: new Set(useSel.ruleSets), sids: new Set(useSel.enabled) } : null,
            pinned,
            policy: { id: config.policyId, version: pol.version },
            options: fitOptions,
            nowUs: clock.now() * 1000,
            maxRecordBytes: config.maxRecordBytes,
          });
        } catch (err) {
          metrics.inc('recommendations_failed');
          log.error(
            { err: describeError(err), vm },
            'A recommendation could not be made; the VM is tried again when its evidence changes.',
          );
          computedFrom.set(vm, from);
          continue;
        }
        computedFrom.set(vm, from);
        const prev = published.get(vm);
        if (prev?.digest !== out.digest) {
          const version = (prev?.version ?? 0) + 1;
          out.record.version = version;
          await stage.send(TOPICS.recommendations, [{ key: Buffer.from(vm), value: recCodec.encode(out.record) }]);
          published.set(vm, { version, digest: out.digest });
          metrics.inc('recommendations');
          log.info(
            { vm, version, services: facts.services.map((s) => `${s.proto}/${s.port}`), ...out.counts },
            'Recommendation published.',
          );
        }
        if (config.autoApply) await applySelection(vm, out.selected, published.get(vm)!.version, out.digest, cs);
        await new Promise((r) => setImmediate(r)); // a large candidate set: let batches and followers in between VMs
      }
    }

    // one recomputation at a time, whether from the timer or a caller
    let running: Promise<void> = Promise.resolve();
    const recomputeNow = (): Promise<void> => (running = running.then(recomputeDirty, recomputeDirty));
    stage.every(config.recomputeIntervalMs, 'A recommendation recomputation', recomputeNow);
    // evidence ages out against the newest flow: look at every VM again now and then
    stage.every(3_600_000, 'Ageing recommend evidence', () => markAll());

    return {
      /** Recompute the VMs whose evidence changed now (tests and tools; the timer does it anyway). */
      recomputeNow,
      /** True once the evidence is read up to where the inputs ended at start. */
      ready: () => isCaughtUp(),
      /** A VM's facts from the evidence now (null: not in the inventory). */
      facts: (vm: string) => {
        const inv = vms.get(vm);
        return inv
          ? buildFacts(
              inv,
              [...parts.values()].map((p) => p.ev),
              factsOptions,
            )
          : null;
      },
      published: published as ReadonlyMap<string, { version: number; digest: string }>,
      candidates: () => candidates,
    };
  },
});
