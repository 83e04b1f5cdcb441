-- Dead letters: every record a stage could not process, kept whole with the reason
-- (schemas/avro/DeadLetter.avsc). Nothing is dropped silently: this is where it shows.
--
-- Plain MergeTree: dead letters have no natural unique id (one source record can fail in several
-- stages, and records without a source offset exist), so idempotency rests on the sink's batch
-- insert_deduplication_token alone, within the window below.
--
-- Retention counts from ingested_at, like flows.
--
-- key_base64 / value_base64 hold the raw record bytes base64-encoded (they are arbitrary bytes and
-- JSONEachRow carries only text); read them with base64Decode().
CREATE TABLE IF NOT EXISTS dlq
(
    ts               DateTime64(6, 'UTC'),
    stage            LowCardinality(String),
    source_topic     LowCardinality(String) DEFAULT '',
    source_partition Nullable(Int32),
    source_offset    Nullable(Int64),
    error_code       LowCardinality(String),
    error            String,
    key_base64       Nullable(String),
    value_base64     Nullable(String),
    ingested_at      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (stage, error_code, ts)
TTL toDateTime(ingested_at) + INTERVAL 90 DAY DELETE
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;
