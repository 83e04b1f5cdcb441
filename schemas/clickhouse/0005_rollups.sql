-- Roll-ups for dashboards: filled by materialized views as the sink inserts, so a panel over a
-- month reads a few thousand rows instead of every alert and flow. SummingMergeTree: read them
-- with sum() and GROUP BY (rows of one key are added up at merge time, not before).
--
-- Exact because the sink inserts each alert and flow id once (services/sink: ids already stored
-- are left out of the insert), and an insert the dedup token drops is dropped in the views too
-- (deduplicate_blocks_in_dependent_materialized_views, set on every insert).
-- Only rows inserted after this migration are rolled up; the base tables hold the history.
-- Retention counts from when rows were rolled up (`ingested`), like the base tables' ingested_at:
-- the roll-up of an old capture analysed today is kept.

-- alerts per hour, VM, stage, rule and severity
CREATE TABLE IF NOT EXISTS alerts_hourly
(
    hour      DateTime('UTC'),
    vm        LowCardinality(String),
    stage     LowCardinality(String),
    rule_id   LowCardinality(String),
    severity  UInt8,
    signature SimpleAggregateFunction(any, String),
    alerts    UInt64,
    ingested  SimpleAggregateFunction(max, DateTime('UTC')) DEFAULT now()
)
ENGINE = SummingMergeTree(alerts)
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, vm, stage, rule_id, severity)
TTL ingested + INTERVAL 400 DAY DELETE;

CREATE MATERIALIZED VIEW IF NOT EXISTS alerts_hourly_mv TO alerts_hourly AS
SELECT toStartOfHour(ts) AS hour, vm, stage, rule_id, severity, any(signature) AS signature, count() AS alerts, now() AS ingested
FROM alerts
GROUP BY hour, vm, stage, rule_id, severity;

-- top talkers: flows, packets and bytes per hour, VM and address pair (initiator → responder)
CREATE TABLE IF NOT EXISTS talkers_hourly
(
    hour    DateTime('UTC'),
    vm      LowCardinality(String),
    src_ip  IPv6,
    dst_ip  IPv6,
    flows   UInt64,
    packets UInt64,
    bytes   UInt64,
    ingested SimpleAggregateFunction(max, DateTime('UTC')) DEFAULT now(),

    src_addr String ALIAS replaceRegexpOne(IPv6NumToString(src_ip), '^::ffff:', ''),
    dst_addr String ALIAS replaceRegexpOne(IPv6NumToString(dst_ip), '^::ffff:', '')
)
ENGINE = SummingMergeTree((flows, packets, bytes))
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, vm, src_ip, dst_ip)
TTL ingested + INTERVAL 400 DAY DELETE;

CREATE MATERIALIZED VIEW IF NOT EXISTS talkers_hourly_mv TO talkers_hourly AS
SELECT toStartOfHour(first_seen) AS hour, vm, src_ip, dst_ip,
       count() AS flows, sum(pkts_toserver + pkts_toclient) AS packets, sum(bytes_toserver + bytes_toclient) AS bytes, now() AS ingested
FROM flows
GROUP BY hour, vm, src_ip, dst_ip
