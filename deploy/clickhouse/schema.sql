-- Polo tables read by polo-exporter. Statements are separated by ';' on a line end.

CREATE DATABASE IF NOT EXISTS polo;

-- Written by every collector at the end of each run (design spec "Operational Monitoring").
-- The exporter reads: collector, aws_account_id, aws_region, started_at, completed_at, status,
-- events_produced, rows_inserted, error, duration_ms, run_id.
CREATE TABLE IF NOT EXISTS polo.collector_runs
(
    run_id UUID DEFAULT generateUUIDv4(),
    collector LowCardinality(String),
    aws_account_id LowCardinality(String),
    aws_region LowCardinality(String),
    started_at DateTime64(3),
    completed_at DateTime64(3),
    status LowCardinality(String), -- 'succeeded', 'failed', 'partial'
    events_produced UInt32,
    rows_inserted UInt32,
    error String DEFAULT '',
    duration_ms UInt32,
    -- Recommended for polo-exporter (docs/clickhouse.md, "Cost on ClickHouse"): the sort key cannot skip the
    -- older rows of each collector in each part; this index lets a `started_at >= X` read skip
    -- every granule that holds only older runs. On an existing table:
    --   ALTER TABLE polo.collector_runs ADD INDEX started_at_minmax started_at TYPE minmax GRANULARITY 1;
    --   ALTER TABLE polo.collector_runs MATERIALIZE INDEX started_at_minmax;
    INDEX started_at_minmax started_at TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree()
ORDER BY (collector, started_at)
-- The spec writes `TTL started_at + INTERVAL 90 DAY`; before 25.x ClickHouse refuses a TTL on
-- DateTime64 (code 450 BAD_TTL_EXPRESSION, seen on 24.8), so the column is converted.
TTL toDateTime(started_at) + INTERVAL 90 DAY;

-- One row per AWS account Polo knows; a new row with a later updated_at replaces the old one
-- (read with FINAL). The exporter reads: aws_account_id, account_name, polo_status.
CREATE TABLE IF NOT EXISTS polo.aws_accounts
(
    aws_account_id String,
    account_name String,
    polo_status LowCardinality(String), -- 'active', 'pending_setup', 'no_access', 'disabled'
    updated_at DateTime64(3) DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY aws_account_id;
