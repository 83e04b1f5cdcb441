#!/usr/bin/env node
// Records bound to their producer: what signing (agent side) and checking (stage runtime side)
// cost on the bus. The same log batches (BENCH_LINES auth lines each, as the agent ships them)
// go through the embedded bus and a stage's consume loop (runStage: decode, then — signed — the
// producer key lookup, the native check of digests, trees and Ed25519 signatures, and the binding check) twice in one run: unsigned with
// the check off, and signed with the check on. Prints records/s of both and the ratio (target
// ≥ 70 %), and the per-record sign and verify cost alone.
//   BENCH_RECORDS (20000)  BENCH_LINES (20)  BENCH_SEND (32 records a send per agent; 1 = a signature per record)
//   BENCH_ROUNDS (7 paired rounds; the round with the median ratio is reported: a round is ~0.2 s,
//   so one major GC landing in it moves its ratio by 0.1–0.2)
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { createEmbeddedBus } from '@cordon/bus';
import { createContext, silentLogger } from '@cordon/runtime';
import { allTopicSpecs, codecFor, TOPICS } from '@cordon/schemas';
import { createRecordSigner, defineStage, RecordChecker, runStage } from '@cordon/stage';
import { report } from './lib/result.mjs';

const N = Number(process.env.BENCH_RECORDS ?? 20_000);
const LINES = Number(process.env.BENCH_LINES ?? 20);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const SEND = Number(process.env.BENCH_SEND ?? 32);
const ctx = createContext({ log: silentLogger });
const logs = codecFor(TOPICS.logs);
const AGENT = 'agt-0123456789abcdef';
const VMS = Array.from({ length: 16 }, (_, i) => `vm-${i}`);

// one agent per VM, as the coordinator registers them
const agents = VMS.map((vm, i) => ({
  vm,
  signer: createRecordSigner(`${AGENT}${i}`, generateKeyPairSync('ed25519').privateKey),
}));
const records = Array.from({ length: N }, (_, n) => {
  const { vm, signer } = agents[n % agents.length];
  const lines = Array.from({ length: LINES }, (_, i) => ({
    ts_us: Date.now() * 1000,
    offset: (n * LINES + i) * 96,
    line: Buffer.from(
      `Jun  1 11:59:0${i % 10} ${vm} sshd[${900 + i}]: Failed password for invalid user admin from 203.0.113.${n % 250} port ${40000 + i} ssh2\n`,
    ),
  }));
  return {
    vm,
    signer,
    key: Buffer.from(`${vm}|/var/log/auth.log`),
    value: logs.encode({
      batch_id: `${signer.producer}:${n}`,
      agent: signer.producer,
      vm,
      source: '/var/log/auth.log',
      format: 'auth',
      lines,
    }),
  };
});
const avgBytes = Math.round(records.reduce((s, r) => s + r.value.length, 0) / N);

async function round(signed) {
  // in memory when the machine has /dev/shm: the disk's writeback of the last round's 50 MB
  // landing in this one's consume loop moved single rounds by ±30 %; what is measured is CPU
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'cordon-bench-signing-'));
  const bus = createEmbeddedBus({ dataDir: dir, ctx });
  await bus.admin.ensureTopics(allTopicSpecs());
  const producer = bus.producer();
  if (signed) {
    const pk = codecFor(TOPICS.producers);
    await producer.send(
      TOPICS.producers,
      agents.map(({ vm, signer }) => ({
        key: Buffer.from(signer.producer),
        value: pk.encode({
          producer: signer.producer,
          kind: 'agent',
          vm,
          host: null,
          public_key: signer.publicKey,
          registered_us: 0,
          registered_by: 'bench',
        }),
      })),
    );
  }
  let got = 0;
  let rejected = 0;
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  const stage = defineStage({
    name: 'bench',
    summary: 'counts log batches',
    config: z.object({}).strict(),
    inputs: () => [],
    outputs: () => [],
    start(s) {
      s.consume({
        group: 'bench',
        topics: [TOPICS.logs],
        maxBatchRecords: 2000,
        handle(b) {
          got += b.records.length;
          rejected += Number(b.nextOffset - b.firstOffset) - b.records.length;
          if (got + rejected >= N) done();
        },
      });
      return {};
    },
  });
  const t0 = performance.now();
  // the agents' side: each of the 16 sends its own records, SEND records a send, signed per send
  for (let i = 0; i < N; i += SEND * agents.length) {
    for (const a of agents) {
      const mine = records
        .slice(i, i + SEND * agents.length)
        .filter((r) => r.signer === a.signer)
        .map((r) => ({ key: r.key, value: r.value }));
      if (mine.length) await producer.send(TOPICS.logs, signed ? a.signer.signAll(TOPICS.logs, mine) : mine);
    }
  }
  // the agents' garbage (signing allocates per record) is collected before the stage starts, in
  // both rounds: in a deployment the signers are other processes on other machines
  globalThis.gc?.();
  const t1 = performance.now();
  const running = await runStage(stage, { bus, ctx, verifyRecords: signed });
  await finished;
  const t2 = performance.now();
  await running.stop();
  await producer.close();
  await bus.close();
  rmSync(dir, { recursive: true, force: true });
  if (rejected) throw new Error(`${rejected} records were refused: the bench is wrong`);
  return { all: N / ((t2 - t0) / 1000), consume: N / ((t2 - t1) / 1000) };
}

// per-record cost alone: a send of one record (one signature each), and a send of SEND
const one = records[0];
const plainRecs = records
  .filter((r) => r.signer === one.signer)
  .slice(0, SEND)
  .map((r) => ({ key: r.key, value: r.value }));
const cost = (sendSize) => {
  const recs = plainRecs.slice(0, sendSize);
  const reps = Math.ceil(1000 / recs.length);
  let signed = [];
  let t = performance.now();
  for (let i = 0; i < reps; i++) signed = one.signer.signAll(TOPICS.logs, recs);
  const signUs = ((performance.now() - t) * 1000) / (reps * recs.length);
  t = performance.now();
  const batch = signed.map((r) => ({ ...r, topic: TOPICS.logs }));
  for (let i = 0; i < reps; i++) {
    // a fresh checker each time: its roots cache would make every pass after the first hashes only
    if (!new RecordChecker(one.signer.publicKey).check(one.signer.producer, batch).every(Boolean))
      throw new Error('bench: a record did not verify');
  }
  const verifyUs = ((performance.now() - t) * 1000) / (reps * recs.length);
  return `sign ${signUs.toFixed(1)} µs, verify ${verifyUs.toFixed(1)} µs`;
};

// paired rounds, alternated so both see the same machine state; the round with the median
// ratio (signed/unsigned consume loop) is the one reported
const pairs = [];
for (let i = 0; i < ROUNDS; i++) {
  const plain = await round(false);
  const signed = await round(true);
  pairs.push({ plain, signed, ratio: signed.consume / plain.consume });
}
const mid = [...pairs].sort((a, b) => a.ratio - b.ratio)[Math.floor((pairs.length - 1) / 2)];
const fmt = (x) => `${Math.round(x).toLocaleString('en-US')} rec/s`;
console.log(
  `record signing per record (${avgBytes} B LogBatch, ${LINES} lines): a send of 1: ${cost(1)}; a send of ${SEND}: ${cost(SEND)}; load average ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}`,
);
const pct = (a, b) => `${((a / b) * 100).toFixed(1)} %`;
for (const [i, p] of pairs.entries())
  console.log(
    `round ${i + 1}: consume loop unsigned ${fmt(p.plain.consume)}, signed ${fmt(p.signed.consume)} (${pct(p.signed.consume, p.plain.consume)}); ` +
      `produce → consume in one process unsigned ${fmt(p.plain.all)}, signed ${fmt(p.signed.all)} (${pct(p.signed.all, p.plain.all)})`,
  );
report({
  bench: 'record-signing',
  metric: `stage consume loop records/s, signed and checked vs unsigned (${N} records, ${SEND} a send)`,
  value: mid.signed.consume,
  baseline: mid.plain.consume,
  target: 0.7,
  unit: 'rec/s',
});
