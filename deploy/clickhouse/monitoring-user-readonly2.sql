-- Least-privilege ClickHouse user for polo-exporter that works on every supported version,
-- 23.8 LTS included (servers where CHANGEABLE_IN_READONLY is unavailable: code 48
-- NOT_IMPLEMENTED without access_control_improvements.settings_constraints_replace_previous).
-- Run once as an administrator; replace CHANGE-ME first. In cluster mode add ON CLUSTER as in
-- monitoring-user-on-cluster.sql.
--
-- readonly = 2: SELECT and changing settings, no writes, no DDL (CREATE TEMPORARY TABLE aside),
-- and `readonly` itself cannot be changed. The user could change any setting, so every limit
-- that matters is bounded: MAX for what the exporter sends (max_execution_time), CONST for the
-- resource limits, so that it cannot raise them. Same limits as monitoring-user.sql.
CREATE SETTINGS PROFILE IF NOT EXISTS polo_exporter_profile SETTINGS
    readonly = 2,
    max_execution_time = 10 MIN 1 MAX 60,
    max_memory_usage = 1000000000 CONST,
    max_result_rows = 200001 CONST,
    max_result_bytes = 0 CONST,
    result_overflow_mode = 'throw' CONST,
    max_threads = 2 CONST,
    max_concurrent_queries_for_user = 10 CONST,
    allow_ddl = 0 CONST,
    allow_introspection_functions = 0 CONST;

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
