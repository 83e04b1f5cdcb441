-- What SOC analysts sort, filter and pivot by (schemas/avro/Alert.avsc, FlowRecord.avsc):
--
-- alerts: the Community ID of the alert's flow (the join key to flows and to other tools), the
-- rule's metadata whole (JSON, keys to arrays of values, as Suricata's EVE prints it) with the
-- MITRE ATT&CK tactic/technique ids and CVE ids as array columns (`has(cves, 'CVE-2021-44228')`,
-- `arrayJoin(mitre_tactic_ids)`), the rule's references, the app-layer evidence of the alerted
-- transaction, a bounded printable payload and the packet number.
-- flows: the Community ID.
--
-- Empty strings, not NULL, for text that is absent: what analysts compare against reads the same
-- either way, and ClickHouse stores and filters it cheaper.
ALTER TABLE alerts
    ADD COLUMN IF NOT EXISTS community_id        String DEFAULT '' COMMENT 'Community ID v1 (seed 0) of the flow',
    ADD COLUMN IF NOT EXISTS metadata            String DEFAULT '' COMMENT 'JSON: rule metadata keys to arrays of values',
    ADD COLUMN IF NOT EXISTS mitre_tactic_ids    Array(LowCardinality(String)) DEFAULT [],
    ADD COLUMN IF NOT EXISTS mitre_technique_ids Array(LowCardinality(String)) DEFAULT [],
    ADD COLUMN IF NOT EXISTS cves                Array(String) DEFAULT [],
    ADD COLUMN IF NOT EXISTS references          Array(String) DEFAULT [] COMMENT 'type,value as the rule writes them',
    ADD COLUMN IF NOT EXISTS app_proto           LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS http_hostname       String DEFAULT '',
    ADD COLUMN IF NOT EXISTS http_url            String DEFAULT '',
    ADD COLUMN IF NOT EXISTS http_method         LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS http_status         Nullable(UInt16),
    ADD COLUMN IF NOT EXISTS http_user_agent     String DEFAULT '',
    ADD COLUMN IF NOT EXISTS dns_rrname          String DEFAULT '',
    ADD COLUMN IF NOT EXISTS dns_rrtype          LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS tls_sni             String DEFAULT '',
    ADD COLUMN IF NOT EXISTS tls_version         LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS ja3                 String DEFAULT '',
    ADD COLUMN IF NOT EXISTS payload_printable   String DEFAULT '' COMMENT 'at most 4 KiB',
    ADD COLUMN IF NOT EXISTS pcap_cnt            Nullable(UInt64);

ALTER TABLE alerts ADD INDEX IF NOT EXISTS idx_community_id community_id TYPE bloom_filter GRANULARITY 4;
ALTER TABLE alerts ADD INDEX IF NOT EXISTS idx_alert_id alert_id TYPE bloom_filter GRANULARITY 1;

ALTER TABLE flows ADD COLUMN IF NOT EXISTS community_id String DEFAULT '' COMMENT 'Community ID v1 (seed 0)';
ALTER TABLE flows ADD INDEX IF NOT EXISTS idx_community_id community_id TYPE bloom_filter GRANULARITY 4;
ALTER TABLE flows ADD INDEX IF NOT EXISTS idx_flow_id flow_id TYPE bloom_filter GRANULARITY 1;

ALTER TABLE fim_events ADD INDEX IF NOT EXISTS idx_event_id event_id TYPE bloom_filter GRANULARITY 1
