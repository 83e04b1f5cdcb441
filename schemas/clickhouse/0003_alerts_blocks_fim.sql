-- Detections from every stage (dpi, fim, loginspect, netconf, coordinator), block decisions
-- and what enforcers reported, and file-integrity events — the SOC analyst's main tables.
--
-- alerts: alert_id is deterministic (a replayed input yields the same id), so the table is a
-- ReplacingMergeTree on it as a backstop to the sink's per-batch dedup token. Ordered for
-- "what hit this VM, and when" and "where did this rule fire".
CREATE TABLE IF NOT EXISTS alerts
(
    alert_id    String,
    ts          DateTime64(6, 'UTC'),
    stage       LowCardinality(String),
    vm          LowCardinality(String) DEFAULT '',
    sensor      LowCardinality(String) DEFAULT '',
    rule_id     LowCardinality(String),
    rule_rev    UInt32,
    signature   String,
    severity    UInt8,
    category    LowCardinality(String) DEFAULT '',
    action      LowCardinality(String),
    src_ip      Nullable(IPv6),
    src_port    Nullable(UInt16),
    dst_ip      Nullable(IPv6),
    dst_port    Nullable(UInt16),
    proto       LowCardinality(String) DEFAULT '',
    flow_id     String DEFAULT '',
    evidence    String COMMENT 'JSON, stage-specific',
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),

    src_addr String ALIAS if(isNull(src_ip), '', replaceRegexpOne(IPv6NumToString(assumeNotNull(src_ip)), '^::ffff:', '')),
    dst_addr String ALIAS if(isNull(dst_ip), '', replaceRegexpOne(IPv6NumToString(assumeNotNull(dst_ip)), '^::ffff:', '')),

    INDEX idx_rule rule_id TYPE set(1000) GRANULARITY 4,
    INDEX idx_src src_ip TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (vm, ts, alert_id)
TTL toDateTime(ingested_at) + INTERVAL 365 DAY DELETE
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;

-- blocks: every decision and every status an enforcer reported (requested, applied, failed,
-- expired), one row each — the history of a block, not only its latest state. (A lift is a
-- tombstone on the topic and carries no row.)
CREATE TABLE IF NOT EXISTS blocks
(
    ts            DateTime64(6, 'UTC') COMMENT 'when the record was written to the topic',
    block_id      String,
    enforcer      LowCardinality(String),
    target_kind   LowCardinality(String),
    target        String COMMENT 'address, 5-tuple or VM the block applies to',
    scope         LowCardinality(String),
    action        LowCardinality(String),
    ttl_ms        UInt64,
    created       DateTime64(6, 'UTC'),
    expires       DateTime64(6, 'UTC'),
    reason_alert  String,
    status        LowCardinality(String),
    ingested_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (enforcer, target, ts)
TTL toDateTime(ingested_at) + INTERVAL 365 DAY DELETE
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;

-- fim_events: what agents saw change, with the attributes before and after (JSON), whether or
-- not a policy turned it into an alert.
CREATE TABLE IF NOT EXISTS fim_events
(
    event_id     String,
    ts           DateTime64(6, 'UTC'),
    agent        LowCardinality(String),
    vm           LowCardinality(String),
    path         String,
    op           LowCardinality(String),
    scan         LowCardinality(String),
    before       String DEFAULT '' COMMENT 'JSON attributes, empty when absent',
    after        String DEFAULT '',
    renamed_from String DEFAULT '',
    error        String DEFAULT '',
    ingested_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (vm, path, ts, event_id)
TTL toDateTime(ingested_at) + INTERVAL 365 DAY DELETE
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;
