import { codecFor, TOPICS, type DeadLetter, type FlowRecord, type TopicName, type TopicValues } from '@cordon/schemas';
import { microsToDateTime64 } from '@cordon/store';

/**
 * Which topic lands in which ClickHouse table, and how a record becomes a row. Adding a table
 * is one entry here plus a migration in schemas/clickhouse.
 */
export interface TableMapping<N extends TopicName = TopicName> {
  topic: N;
  table: string;
  toRow(value: TopicValues[N]): Record<string, unknown>;
}

const ip = (s: string) => (s.includes(':') ? s : `::ffff:${s}`);

const flows: TableMapping<typeof TOPICS.flows> = {
  topic: TOPICS.flows,
  table: 'flows',
  toRow: (f: FlowRecord) => ({
    flow_id: f.flow_id,
    sensor: f.sensor,
    vm: f.vm ?? '',
    vlan: f.vlan,
    proto: f.proto,
    src_ip: ip(f.src_ip),
    src_port: f.src_port,
    dst_ip: ip(f.dst_ip),
    dst_port: f.dst_port,
    first_seen: microsToDateTime64(f.first_seen_us),
    last_seen: microsToDateTime64(f.last_seen_us),
    pkts_toserver: f.pkts_toserver,
    pkts_toclient: f.pkts_toclient,
    bytes_toserver: f.bytes_toserver,
    bytes_toclient: f.bytes_toclient,
    tcp_flags_toserver: f.tcp_flags_toserver,
    tcp_flags_toclient: f.tcp_flags_toclient,
    end_reason: f.end_reason,
  }),
};

const dlq: TableMapping<typeof TOPICS.dlq> = {
  topic: TOPICS.dlq,
  table: 'dlq',
  toRow: (d: DeadLetter) => ({
    ts: microsToDateTime64(d.ts_us),
    stage: d.stage,
    source_topic: d.source_topic ?? '',
    source_partition: d.source_partition,
    source_offset: d.source_offset,
    error_code: d.error_code,
    error: d.error,
    key_base64: d.key ? d.key.toString('base64') : null,
    value_base64: d.value ? d.value.toString('base64') : null,
  }),
};

export const TABLE_MAPPINGS: readonly TableMapping[] = [flows, dlq] as unknown as TableMapping[];

export function mappingFor(topic: string): TableMapping | undefined {
  return TABLE_MAPPINGS.find((m) => m.topic === topic);
}

export { codecFor };
