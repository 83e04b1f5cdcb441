/**
 * Shared by the service tests and the crash child: a corpus replay onto an embedded bus, and
 * the flows the pure stage gives for the same records (the expected output).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createEmbeddedBus, partitionForKey, type Bus, type ProduceRecord } from '@cordon/bus';
import { decodeFrame, readCapture, symmetricFlowHash } from '@cordon/pcap';
import { codecFor, TOPICS, type FlowRecord, type PacketBatch } from '@cordon/schemas';
import { createContext, silentLogger } from '@cordon/runtime';
import { corpusPath, skipWithoutCorpus } from '@cordon/testkit';
import { FlowTable, parseFlowTableConfig } from '../src/index.js';

/** The captures come from the suricata-verify corpus: tests that replay them skip without it. */
export const NO_CORPUS = skipWithoutCorpus('suricata-verify');
const CORPUS = corpusPath('suricata-verify');
export const PARTITIONS = { packets: 4, flows: 2, dlq: 1, state: 2 };
/** Captures with several flows, both IP versions, SLL and null link types. */
export const CAPTURES = [
  'bug-1045',
  'detect-ttl-ipv6',
  'tcp-fastopen-04',
  'http-async',
  'ipv6-evasion__ipv6-rsmurf',
  'detect-flowbits',
  'bug-6269-01',
];

export function openBus(dataDir: string): Bus {
  return createEmbeddedBus({ dataDir, ctx: createContext({ log: silentLogger }) });
}

export async function ensureTopics(bus: Bus): Promise<void> {
  await bus.admin.ensureTopics([
    { name: TOPICS.packets, partitions: PARTITIONS.packets, cleanupPolicy: 'delete', retentionMs: -1 },
    { name: TOPICS.flows, partitions: PARTITIONS.flows, cleanupPolicy: 'delete', retentionMs: -1 },
    { name: TOPICS.dlq, partitions: PARTITIONS.dlq, cleanupPolicy: 'delete', retentionMs: -1 },
    { name: TOPICS.state, partitions: PARTITIONS.state, cleanupPolicy: 'compact', retentionMs: -1 },
  ]);
}

/**
 * The records a replay of the captures would publish: frames of one flow share a key (the
 * symmetric flow hash), batched up to 4 frames per key; one corrupt record and one frame
 * that does not decode; then an end_of_source batch per sensor to every partition.
 */
export async function replayRecords(): Promise<ProduceRecord[]> {
  const codec = codecFor(TOPICS.packets);
  const out: ProduceRecord[] = [];
  for (const name of CAPTURES) {
    const meta = JSON.parse(readFileSync(join(CORPUS, name, 'expected.json'), 'utf8')) as { pcap: string };
    const pending = new Map<string, PacketBatch>();
    let linktype = 1;
    const flush = (k: string) => {
      const b = pending.get(k)!;
      out.push({ key: Buffer.from(k, 'hex'), value: codec.encode(b) });
      pending.delete(k);
    };
    for await (const f of readCapture(join(CORPUS, name, meta.pcap))) {
      linktype = f.linktype;
      const d = decodeFrame(f.linktype, f.frame);
      const k = d.kind === 'ip' ? symmetricFlowHash(d).toString('hex') : '00';
      let b = pending.get(k);
      if (!b)
        pending.set(
          k,
          (b = {
            batch_id: `${name}:${f.seq}`,
            sensor: name,
            vm: null,
            linktype: f.linktype,
            end_of_source: false,
            recovery_of: null,
            packets: [],
          }),
        );
      b.packets.push({ ts_us: f.ts_us, seq: f.seq, orig_len: f.orig_len, frame: f.frame });
      if (b.packets.length === 4) flush(k);
    }
    for (const k of [...pending.keys()]) flush(k);
    if (name === 'bug-1045') {
      out.push({ key: Buffer.from('bad'), value: Buffer.from('not a PacketBatch') });
      out.push({
        key: Buffer.from('cut'),
        value: codec.encode({
          batch_id: 'cut',
          sensor: name,
          vm: null,
          linktype,
          end_of_source: false,
          packets: [
            {
              ts_us: 1,
              seq: 999,
              orig_len: 60,
              frame: Buffer.concat([Buffer.alloc(12), Buffer.from([0x08, 0x00, 0x45, 0])]),
            },
          ],
        }),
      });
    }
    for (let p = 0; p < PARTITIONS.packets; p++) {
      out.push({
        key: null,
        partition: p,
        value: codec.encode({
          batch_id: `${name}:end:${p}`,
          sensor: name,
          vm: null,
          linktype,
          end_of_source: true,
          packets: [],
        }),
      });
    }
  }
  return out;
}

/** What the pure stage emits for these records, partition by partition, in offset order. */
export function expectedFlows(records: ProduceRecord[]): FlowRecord[] {
  const codec = codecFor(TOPICS.packets);
  const tables = new Map<number, FlowTable>();
  const out: FlowRecord[] = [];
  for (const r of records) {
    const p = r.partition ?? partitionForKey(r.key, PARTITIONS.packets, () => 0);
    let t = tables.get(p);
    if (!t) tables.set(p, (t = new FlowTable(parseFlowTableConfig({}))));
    let b: PacketBatch;
    try {
      b = codec.decode(r.value!);
    } catch {
      continue;
    }
    out.push(...t.processBatch(b).flows.map((f) => f.record));
  }
  return out;
}

export function byId(flows: FlowRecord[]): FlowRecord[] {
  return [...flows].sort((a, b) => a.flow_id.localeCompare(b.flow_id));
}
