-- The audit trail: every manager write, sign-in, failed sign-in and lifted block
-- (schemas/avro/AuditEvent.avsc), landed by the sink from cordon.audit.v1.
--
-- Numbered 0100 to stay clear of the migrations others add concurrently (0004, 0005, …).
--
-- Who may change it: nobody but the sink, by INSERT. No TTL (the topic keeps it forever too).
-- On a ClickHouse server, give the sink's user INSERT on this table and the manager's user
-- SELECT only (services/manager/README.md: "Who can write the audit table"); the manager's
-- session is also readonly = 1, so it can neither ALTER, DELETE, DROP nor INSERT here.
-- ReplacingMergeTree on audit_id is only the sink's idempotency backstop: a replayed batch
-- collapses, nothing else does (audit ids are unique).
CREATE TABLE IF NOT EXISTS audit
(
    audit_id    String,
    ts          DateTime64(6, 'UTC'),
    actor       LowCardinality(String),
    role        LowCardinality(String) DEFAULT '',
    auth        String DEFAULT '' COMMENT 'password, session, token:<id>, cli',
    action      LowCardinality(String),
    object      String,
    before      Nullable(String) COMMENT 'JSON, secrets redacted',
    after       Nullable(String),
    result      LowCardinality(String),
    source_ip   String DEFAULT '',
    detail      String DEFAULT '',
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),

    CONSTRAINT result_known CHECK result IN ('ok', 'denied', 'error')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (ts, audit_id)
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;
