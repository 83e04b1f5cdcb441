-- block_status: every status an enforcer reported on a block decision (applied, failed), one row
-- each, landed by the sink from cordon.block-status.v1 (schemas/avro/BlockStatusReport.avsc).
-- Enforcers (agents, watchdogs) report here rather than on cordon.blocks.v1, which they may not
-- write; the blocks table holds the decisions. A row belongs to the decision of its block_id:
-- a block's history is its decision rows in blocks and its status rows here. (A tombstone —
-- the enforcer lifted it — carries no row.)
--
-- Numbered 0060 to stay clear of the migrations others add concurrently.
CREATE TABLE IF NOT EXISTS block_status
(
    ts           DateTime64(6, 'UTC') COMMENT 'when the enforcer applied the block or gave up',
    block_id     String,
    enforcer     LowCardinality(String),
    target       String,
    status       LowCardinality(String),
    expires      DateTime64(6, 'UTC') COMMENT 'when the element in force expires',
    error        String DEFAULT '' COMMENT 'the error code of a failure',
    ingested_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (enforcer, target, ts)
TTL toDateTime(ingested_at) + INTERVAL 365 DAY DELETE
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;
