-- Least-privilege ClickHouse user for polo-exporter, for ClickHouse 24.3 and later (and
-- ClickHouse Cloud). Run once as an administrator, e.g.
--   clickhouse-client --multiquery < deploy/clickhouse/monitoring-user.sql
-- then put the password in the file named by clickhouse.password_file.
-- Replace CHANGE-ME first (or use IDENTIFIED WITH sha256_hash BY '<hex>').
--
-- Other servers:
--   * before 24.3 (23.8 LTS ...): CHANGEABLE_IN_READONLY needs the server flag
--     access_control_improvements.settings_constraints_replace_previous (else code 48
--     NOT_IMPLEMENTED); use monitoring-user-readonly2.sql instead, which works everywhere.
--   * a cluster (clickhouse.cluster): monitoring-user-on-cluster.sql (ON CLUSTER, REMOTE grant).
--
-- readonly = 1: SELECT only. The settings the exporter sends with each query are allowed
-- through CHANGEABLE_IN_READONLY, within bounds, so a misconfigured exporter cannot raise them:
--   max_execution_time        every query: the source's timeout (whole seconds, at least 1)
--   cancel_http_readonly_queries_on_client_close, log_comment   every query
--   skip_unavailable_shards   cluster mode only (SETTINGS clause of the system-table queries)
-- The limits below are what `polo-exporter --config.check` compares the configuration with:
-- a source timeout above 60s or a row bound above max_result_rows fails with code 452 or 158.
CREATE SETTINGS PROFILE IF NOT EXISTS polo_exporter_profile SETTINGS
    readonly = 1,
    max_execution_time = 10 MIN 1 MAX 60 CHANGEABLE_IN_READONLY,
    cancel_http_readonly_queries_on_client_close = 1 CHANGEABLE_IN_READONLY,
    log_comment = 'polo-exporter' CHANGEABLE_IN_READONLY,
    skip_unavailable_shards = 0 MIN 0 MAX 1 CHANGEABLE_IN_READONLY,
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
GRANT SELECT ON system.events TO polo_exporter;
GRANT SELECT ON system.metrics TO polo_exporter;
GRANT SELECT ON system.errors TO polo_exporter;
GRANT SELECT ON system.detached_parts TO polo_exporter;
GRANT SELECT ON system.distribution_queue TO polo_exporter;
