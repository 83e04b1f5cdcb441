import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CordonError } from '@cordon/runtime';
import avro from 'avsc';
import {
  codecFor,
  invalidPaths,
  PREVIOUS_SCHEMAS,
  TOPICS,
  TOPIC_MANIFEST,
  allTopicSpecs,
  type PacketBatch,
} from '../src/index.js';

const batch: PacketBatch = {
  batch_id: 's1:0',
  sensor: 's1',
  vm: null,
  linktype: 1,
  end_of_source: false,
  recovery_of: null,
  packets: [{ ts_us: 1_700_000_000_123_456, seq: 0, orig_len: 60, frame: Buffer.from('abc') }],
};

test('records round-trip through the Confluent wire format', () => {
  const codec = codecFor(TOPICS.packets);
  const buf = codec.encode(batch);
  assert.equal(buf[0], 0, 'magic byte');
  assert.equal(buf.readUInt32BE(1), TOPIC_MANIFEST['cordon.packets.v1'].id, 'schema id from the manifest');
  assert.deepEqual({ ...codec.decode(buf), packets: codec.decode(buf).packets.map((p) => ({ ...p })) }, batch);
});

test('hostile bytes become typed errors, never crashes', () => {
  const codec = codecFor(TOPICS.packets);
  const good = codec.encode(batch);
  const cases: Buffer[] = [
    Buffer.alloc(0),
    Buffer.from([1, 0, 0, 0, 1]),
    Buffer.from([0, 0, 0, 0, 99, 1, 2]),
    good.subarray(0, good.length - 2),
    Buffer.concat([good, Buffer.from([1, 2, 3])]),
    Buffer.concat([good.subarray(0, 5), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f])]),
  ];
  for (const c of cases) {
    assert.throws(
      () => codec.decode(c),
      (err: unknown) => err instanceof CordonError && err.code.startsWith('CORDON_ERR_SCHEMA_'),
    );
  }
  // random garbage after a valid header
  for (let i = 0; i < 500; i++) {
    const junk = Buffer.concat([
      good.subarray(0, 5),
      Buffer.from(Array.from({ length: i % 64 }, () => Math.floor(Math.random() * 256))),
    ]);
    try {
      codec.decode(junk);
    } catch (err) {
      assert.ok(err instanceof CordonError, `non-Cordon error for ${junk.toString('hex')}: ${String(err)}`);
    }
  }
});

test('a value that does not fit its schema is refused with the failing path', () => {
  assert.deepEqual(invalidPaths(TOPICS.packets, { ...batch, linktype: 'eth' }), ['linktype']);
  assert.throws(
    () => codecFor(TOPICS.packets).encode({ ...batch, sensor: 5 } as unknown as PacketBatch),
    /CORDON_ERR_SCHEMA_ENCODE|does not fit/,
  );
});

test('every topic in DESIGN §3 has a schema and a unique id', () => {
  const names = allTopicSpecs().map((t) => t.name);
  for (const t of [
    'packets',
    'fim',
    'logs',
    'netconf',
    'vm-events',
    'inventory',
    'agents',
    'assignments',
    'agent-commands',
    'policy',
    'alerts',
    'blocks',
    'block-status',
    'audit',
    'siem',
    'dlq',
  ]) {
    assert.ok(names.includes(`cordon.${t}.v1` as never), `missing topic ${t}`);
  }
  const compacted = allTopicSpecs()
    .filter((t) => t.cleanupPolicy === 'compact')
    .map((t) => t.name)
    .sort();
  assert.deepEqual(compacted, [
    'cordon.agents.v1',
    'cordon.assignments.v1',
    'cordon.block-status.v1',
    'cordon.blocks.v1',
    'cordon.inventory.v1',
    'cordon.policy.v1',
    'cordon.producers.v1',
    'cordon.recommendations.v1',
    'cordon.state.v1',
  ]);
});

test('records written with an earlier version of a topic schema still decode, new fields at their defaults', () => {
  const old = avro.Type.forSchema(PREVIOUS_SCHEMAS[7] as avro.Schema);
  const body = old.toBuffer({
    kind: 'vm',
    id: 'web-1',
    name: 'web-1',
    host: 'hv1',
    power: 'on',
    guest_os: null,
    nics: [{ mac: '52:54:00:00:00:01', ips: [], network: null }],
    updated_us: 5,
  });
  const header = Buffer.from([0, 0, 0, 0, 7]);
  const rec = codecFor(TOPICS.inventory).decode(Buffer.concat([header, body]));
  assert.equal(rec.id, 'web-1');
  assert.equal(rec.host, 'hv1');
  assert.equal(rec.template, false);
  assert.equal(rec.connector, null);
  assert.equal(rec.cluster, null);
  // the current version is what is written
  assert.equal(codecFor(TOPICS.inventory).encode(rec).readUInt32BE(1), TOPIC_MANIFEST[TOPICS.inventory].id);
  // an id of another topic's schema is still refused
  assert.throws(
    () => codecFor(TOPICS.inventory).decode(Buffer.concat([Buffer.from([0, 0, 0, 0, 6]), body])),
    /CORDON_ERR_SCHEMA_UNKNOWN_ID|schema id/,
  );
});
