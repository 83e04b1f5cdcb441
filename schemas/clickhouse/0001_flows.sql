-- Network flows, one row per flow (both directions), written by the sink from cordon.flows.v1.
--
-- Ordered for the questions analysts ask: "what did this VM talk to, and when" reads one VM's
-- time range; flow_id last makes the sorting key unique per flow.
--
-- ReplacingMergeTree on that key is the idempotency backstop: inserts are deduplicated per batch
-- by insert_deduplication_token (exact counts without FINAL for any replay inside the window
-- below); a flow written again outside it (a very old replay, or re-batched differently) collapses
-- at merge time, and `SELECT … FROM flows FINAL` is exact at any moment. The version column keeps
-- the row with the latest last_seen if a flow is ever re-emitted with more traffic.
--
-- Retention counts from ingested_at, not first_seen: flows from an old capture analysed today must
-- be kept (a TTL on first_seen deletes them as they are written).
--
-- Addresses are IPv6; IPv4 is stored IPv4-mapped (::ffff:10.0.0.1). Query with
-- `src_ip = toIPv6('10.0.0.1')`; src_addr / dst_addr show the familiar text form.
CREATE TABLE IF NOT EXISTS flows
(
    flow_id            String,
    sensor             LowCardinality(String),
    vm                 LowCardinality(String) DEFAULT '' COMMENT 'empty when the flow could not be attributed to a VM',
    vlan               UInt16,
    proto              UInt8,
    src_ip             IPv6 COMMENT 'initiator (first packet seen)',
    src_port           UInt16,
    dst_ip             IPv6,
    dst_port           UInt16,
    first_seen         DateTime64(6, 'UTC'),
    last_seen          DateTime64(6, 'UTC'),
    pkts_toserver      UInt64,
    pkts_toclient      UInt64,
    bytes_toserver     UInt64,
    bytes_toclient     UInt64,
    tcp_flags_toserver UInt8,
    tcp_flags_toclient UInt8,
    end_reason         LowCardinality(String),
    ingested_at        DateTime64(3, 'UTC') DEFAULT now64(3),

    src_addr String ALIAS replaceRegexpOne(IPv6NumToString(src_ip), '^::ffff:', ''),
    dst_addr String ALIAS replaceRegexpOne(IPv6NumToString(dst_ip), '^::ffff:', ''),

    INDEX idx_src_ip src_ip TYPE bloom_filter GRANULARITY 4,
    INDEX idx_dst_ip dst_ip TYPE bloom_filter GRANULARITY 4,

    CONSTRAINT end_reason_known CHECK end_reason IN ('fin', 'rst', 'timeout', 'end'),
    CONSTRAINT seen_in_order CHECK last_seen >= first_seen
)
ENGINE = ReplacingMergeTree(last_seen)
PARTITION BY toYYYYMM(first_seen)
ORDER BY (vm, first_seen, flow_id)
TTL toDateTime(ingested_at) + INTERVAL 180 DAY DELETE
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;
