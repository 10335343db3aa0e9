-- monitoring-user.sql for a cluster (clickhouse.cluster): every statement ON CLUSTER, and
-- the REMOTE grant that clusterAllReplicas needs. Replace polo_cluster with the cluster name of
-- clickhouse.cluster and CHANGE-ME with the password. Before 24.3 use the readonly = 2 profile of
-- monitoring-user-readonly2.sql with ON CLUSTER added the same way.
-- With replicated access storage (user_directories/replicated, ClickHouse Cloud) users already
-- exist on every node; ON CLUSTER is then not needed.
CREATE SETTINGS PROFILE IF NOT EXISTS polo_exporter_profile ON CLUSTER polo_cluster SETTINGS
    readonly = 1,
    max_execution_time = 10 MIN 1 MAX 60 CHANGEABLE_IN_READONLY,
    cancel_http_readonly_queries_on_client_close = 1 CHANGEABLE_IN_READONLY,
    log_comment = 'polo-exporter' CHANGEABLE_IN_READONLY,
    skip_unavailable_shards = 0 MIN 0 MAX 1 CHANGEABLE_IN_READONLY,
    max_memory_usage = 1000000000 MAX 2000000000,
    max_result_rows = 200001,
    max_threads = 2;
CREATE USER IF NOT EXISTS polo_exporter ON CLUSTER polo_cluster IDENTIFIED WITH sha256_password BY 'CHANGE-ME'
    SETTINGS PROFILE 'polo_exporter_profile';
GRANT ON CLUSTER polo_cluster SELECT ON polo.collector_runs TO polo_exporter;
GRANT ON CLUSTER polo_cluster SELECT ON polo.aws_accounts TO polo_exporter;
GRANT ON CLUSTER polo_cluster SELECT ON system.disks TO polo_exporter;
GRANT ON CLUSTER polo_cluster SELECT ON system.query_log TO polo_exporter;
GRANT ON CLUSTER polo_cluster SELECT ON system.processes TO polo_exporter;
GRANT ON CLUSTER polo_cluster SELECT ON system.parts TO polo_exporter;
GRANT ON CLUSTER polo_cluster SELECT ON system.replicas TO polo_exporter;
GRANT ON CLUSTER polo_cluster SELECT ON system.mutations TO polo_exporter;
GRANT ON CLUSTER polo_cluster SELECT ON system.build_options TO polo_exporter;
GRANT ON CLUSTER polo_cluster SELECT ON system.events TO polo_exporter;
GRANT ON CLUSTER polo_cluster SELECT ON system.metrics TO polo_exporter;
GRANT ON CLUSTER polo_cluster SELECT ON system.errors TO polo_exporter;
GRANT ON CLUSTER polo_cluster SELECT ON system.detached_parts TO polo_exporter;
GRANT ON CLUSTER polo_cluster SELECT ON system.distribution_queue TO polo_exporter;

-- clusterAllReplicas (cluster mode) needs REMOTE.
GRANT ON CLUSTER polo_cluster REMOTE ON *.* TO polo_exporter;
