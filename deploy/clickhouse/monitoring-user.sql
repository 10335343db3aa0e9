-- Least-privilege ClickHouse user for polo-exporter. Run once as an administrator, e.g.
--   clickhouse-client --multiquery < deploy/clickhouse/monitoring-user.sql
-- then put the password in the file named by clickhouse.password_file.
-- Replace CHANGE-ME first (or use IDENTIFIED WITH sha256_hash BY '<hex>').
-- In cluster mode, run it with ON CLUSTER or on every replica (users are per node unless
-- replicated access storage is configured).

-- readonly = 1: SELECT only. The settings the exporter sends with each query are allowed
-- through CHANGEABLE_IN_READONLY, within bounds, so a misconfigured exporter cannot raise them.
CREATE SETTINGS PROFILE IF NOT EXISTS polo_exporter_profile SETTINGS
    readonly = 1,
    max_execution_time = 10 MIN 1 MAX 60 CHANGEABLE_IN_READONLY,
    cancel_http_readonly_queries_on_client_close = 1 CHANGEABLE_IN_READONLY,
    log_comment = 'polo-exporter' CHANGEABLE_IN_READONLY,
    max_memory_usage = 1000000000 MAX 2000000000,
    max_result_rows = 200001,
    max_threads = 2;

CREATE USER IF NOT EXISTS polo_exporter IDENTIFIED WITH sha256_password BY 'CHANGE-ME'
    SETTINGS PROFILE 'polo_exporter_profile';

-- Sources collector_runs and accounts.
GRANT SELECT ON polo.collector_runs TO polo_exporter;
GRANT SELECT ON polo.aws_accounts TO polo_exporter;

-- Source clickhouse_system.
GRANT SELECT ON system.disks TO polo_exporter;
GRANT SELECT ON system.query_log TO polo_exporter;
GRANT SELECT ON system.processes TO polo_exporter;
GRANT SELECT ON system.parts TO polo_exporter;
GRANT SELECT ON system.replicas TO polo_exporter;
GRANT SELECT ON system.mutations TO polo_exporter;
GRANT SELECT ON system.build_options TO polo_exporter;

-- Only with clickhouse.cluster set (clusterAllReplicas):
-- GRANT REMOTE ON *.* TO polo_exporter;
