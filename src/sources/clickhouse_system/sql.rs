//! The system-table queries, single node or a whole cluster. Pure string building.
//!
//! Every query names the node it ran on (`hostName() AS replica`), is bounded by `LIMIT`, and
//! reads only in-memory system tables or, for `query_log`, the time range since the last scrape
//! (the table is ordered by `(event_date, event_time)`, so that range is all it reads).

use crate::clickhouse::LOG_COMMENT_PREFIX;

pub struct Sql {
    cluster: Option<String>,
    databases: String,
    limit: u64,
}

impl Sql {
    /// `cluster` and `databases` were validated ([A-Za-z0-9_.-] and identifiers).
    pub fn new(cluster: Option<&str>, databases: &[String], limit: u64) -> Self {
        let databases = databases.iter().map(|d| format!("'{d}'")).collect::<Vec<_>>().join(", ");
        Self { cluster: cluster.map(str::to_string), databases, limit }
    }

    /// `system.NAME` on the node answering, or on every replica of the cluster.
    fn table(&self, name: &str) -> String {
        match &self.cluster {
            None => format!("system.{name}"),
            Some(cluster) => format!("clusterAllReplicas('{cluster}', system.{name})"),
        }
    }

    /// Ends a statement: `LIMIT`, and in cluster mode `skip_unavailable_shards = 1` so that a
    /// replica that does not answer (clusterAllReplicas makes each replica a shard) leaves the
    /// others reported instead of failing the query (code 279 ALL_CONNECTION_TRIES_FAILED).
    fn end(&self) -> String {
        match &self.cluster {
            None => format!("LIMIT {}", self.limit),
            Some(_) => format!("LIMIT {} SETTINGS skip_unavailable_shards = 1", self.limit),
        }
    }

    /// The server's clock (microseconds since the epoch): query-log windows are cut on it, not
    /// on the exporter's, so a skewed exporter clock neither drops nor double-counts queries.
    pub fn server_now(&self) -> String {
        "SELECT toInt64(toUnixTimestamp64Micro(now64(6))) AS now_us".to_string()
    }

    /// The replicas the cluster has (system.clusters of the node answering), in the order
    /// clusterAllReplicas numbers them (`_shard_num`): by shard, then replica. None without a cluster.
    pub fn cluster_replicas(&self) -> Option<String> {
        self.cluster.as_ref().map(|cluster| {
            format!(
                "SELECT toUInt32(shard_num) AS shard_num, toUInt32(replica_num) AS replica_num, host_name, \
                 toUInt16(port) AS port FROM system.clusters WHERE cluster = '{cluster}' \
                 ORDER BY shard_num, replica_num LIMIT {}",
                self.limit
            )
        })
    }

    pub fn disks(&self) -> String {
        format!(
            "SELECT hostName() AS replica, name AS disk, toString(type) AS disk_type, toUInt64(free_space) AS free, toUInt64(total_space) AS total, \
             toUInt64(unreserved_space) AS unreserved, toUInt64(keep_free_space) AS keep_free \
             FROM {} ORDER BY replica, disk {}",
            self.table("disks"),
            self.end()
        )
    }

    /// Finished and failed initial queries with `event_time_microseconds` in `[from_us, to_us)`,
    /// not the exporter's own; per node, kind and exception code (0 = finished), with cumulative
    /// counts at each bucket bound, the 0 ms queries and the native bucket counts.
    pub fn query_log(&self, from_us: i64, to_us: i64, bucket_bounds_s: &[f64]) -> String {
        let buckets = bucket_bounds_s
            .iter()
            .map(|b| format!("countIf(query_duration_ms <= {})", (b * 1000.0).floor() as u64))
            .collect::<Vec<_>>()
            .join(", ");
        // Native bucket of schema s: ceil(log2(seconds) × 2^s); 0 ms queries add 0 (the zero bucket counts them).
        let native = format!(
            "sumMap([toInt32(ceil(log2(greatest(query_duration_ms, 1) / 1000) * {}))], [toUInt64(query_duration_ms > 0)])",
            1u32 << super::model::NATIVE_SCHEMA
        );
        format!(
            "SELECT hostName() AS replica, toString(query_kind) AS query_kind, \
             if(type = 'QueryFinish', 0, exception_code) AS exception_code, \
             count() AS queries, sum(query_duration_ms) AS duration_ms_sum, [{buckets}] AS cumulative, \
             countIf(query_duration_ms = 0) AS zero_ms, \
             tupleElement({native}, 1) AS native_index, tupleElement({native}, 2) AS native_count \
             FROM {} \
             WHERE event_date >= toDate(fromUnixTimestamp64Micro({from_us})) \
               AND event_date <= toDate(fromUnixTimestamp64Micro({to_us})) \
               AND event_time >= toDateTime(fromUnixTimestamp64Micro({from_us})) \
               AND event_time <= toDateTime(fromUnixTimestamp64Micro({to_us})) \
               AND event_time_microseconds >= fromUnixTimestamp64Micro({from_us}) \
               AND event_time_microseconds < fromUnixTimestamp64Micro({to_us}) \
               AND type IN ('QueryFinish', 'ExceptionBeforeStart', 'ExceptionWhileProcessing') \
               AND is_initial_query \
               AND NOT startsWith(log_comment, '{LOG_COMMENT_PREFIX}') \
             GROUP BY replica, query_kind, exception_code \
             {}",
            self.table("query_log"),
            self.end()
        )
    }

    pub fn processes(&self) -> String {
        // The exporter's own query is always running, so every node returns a row.
        format!(
            "SELECT hostName() AS replica, \
             countIf(is_initial_query AND NOT startsWith(Settings['log_comment'], '{LOG_COMMENT_PREFIX}')) AS active, \
             maxIf(elapsed, is_initial_query AND NOT startsWith(Settings['log_comment'], '{LOG_COMMENT_PREFIX}')) AS longest_seconds \
             FROM {} GROUP BY replica {}",
            self.table("processes"),
            self.end()
        )
    }

    pub fn parts(&self) -> String {
        format!(
            "SELECT replica, database, table, sum(bytes) AS bytes_on_disk, sum(part_rows) AS rows, \
             sum(parts) AS active_parts, max(parts) AS max_parts_in_partition \
             FROM (SELECT hostName() AS replica, database, table, partition_id, sum(bytes_on_disk) AS bytes, \
                   sum(rows) AS part_rows, count() AS parts \
                   FROM {} WHERE active AND database IN ({}) \
                   GROUP BY replica, database, table, partition_id) \
             GROUP BY replica, database, table ORDER BY replica, database, table {}",
            self.table("parts"),
            self.databases,
            self.end()
        )
    }

    pub fn replicas(&self) -> String {
        format!(
            "SELECT hostName() AS replica, database, table, toUInt8(is_readonly) AS readonly, \
             toUInt64(absolute_delay) AS absolute_delay, toUInt64(queue_size) AS queue_size, \
             toUInt8(is_session_expired) AS session_expired \
             FROM {} WHERE database IN ({}) ORDER BY replica, database, table {}",
            self.table("replicas"),
            self.databases,
            self.end()
        )
    }

    pub fn mutations(&self) -> String {
        format!(
            "SELECT hostName() AS replica, database, table, count() AS pending, \
             toInt64(toUnixTimestamp(min(create_time))) AS oldest_created \
             FROM {} WHERE NOT is_done AND database IN ({}) \
             GROUP BY replica, database, table ORDER BY replica, database, table {}",
            self.table("mutations"),
            self.databases,
            self.end()
        )
    }

    /// One row per node: the value of each of `names` in `system.events` (`metrics: false`) or
    /// `system.metrics`, in order, 0 for a name the table has no row for.
    pub fn counters(&self, metrics: bool, names: &[&str]) -> String {
        let (table, column) = if metrics { (self.table("metrics"), "metric") } else { (self.table("events"), "event") };
        let values =
            names.iter().map(|n| format!("toInt64(sumIf(value, {column} = '{n}'))")).collect::<Vec<_>>().join(", ");
        // No WHERE: a node with none of the names must still give its row of zeros (the
        // exporter's own query is always among the events, and every metric is always listed).
        format!(
            "SELECT hostName() AS replica, [{values}] AS values FROM {} \
             GROUP BY replica ORDER BY replica {}",
            table,
            self.end()
        )
    }

    /// Errors the server raised itself (not those received from other servers), per code.
    pub fn errors(&self) -> String {
        format!(
            "SELECT hostName() AS replica, code, sum(value) AS errors FROM {} WHERE NOT remote \
             GROUP BY replica, code ORDER BY replica, code {}",
            self.table("errors"),
            self.end()
        )
    }

    /// Detached parts per table and reason; `groups` counts the groups before the `LIMIT`.
    pub fn detached_parts(&self) -> String {
        format!(
            "SELECT hostName() AS replica, database, table, ifNull(reason, '') AS reason, count() AS parts, \
             toUInt64(count() OVER ()) AS groups FROM {} WHERE database IN ({}) \
             GROUP BY replica, database, table, reason ORDER BY replica, database, table, reason {}",
            self.table("detached_parts"),
            self.databases,
            self.end()
        )
    }

    /// Distributed tables' queues of files to send; `groups` counts the tables before the `LIMIT`.
    pub fn distribution_queue(&self) -> String {
        format!(
            "SELECT hostName() AS replica, database, table, sum(data_files) AS files, \
             sum(broken_data_files) AS broken_files, sum(error_count) AS errors, \
             toUInt64(count() OVER ()) AS groups FROM {} WHERE database IN ({}) \
             GROUP BY replica, database, table ORDER BY replica, database, table {}",
            self.table("distribution_queue"),
            self.databases,
            self.end()
        )
    }

    /// The version from a table column, so that in cluster mode each node reports its own, with
    /// the number clusterAllReplicas gave the replica (`_shard_num`; 1 on a single node).
    pub fn version(&self) -> String {
        let index = if self.cluster.is_some() { "toUInt32(_shard_num)" } else { "toUInt32(1)" };
        format!(
            "SELECT hostName() AS replica, {index} AS replica_index, value AS version, \
             toUInt64(uptime()) AS uptime_seconds FROM {} \
             WHERE name = 'VERSION_DESCRIBE' {}",
            self.table("build_options"),
            self.end()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(cluster: Option<&str>) -> Sql {
        Sql::new(cluster, &["polo".to_string(), "other".to_string()], 100)
    }

    #[test]
    fn single_node_reads_local_system_tables() {
        let s = sql(None);
        for q in [
            s.disks(),
            s.processes(),
            s.parts(),
            s.replicas(),
            s.mutations(),
            s.version(),
            s.query_log(0, 1, &[0.1]),
            s.counters(false, &["RejectedInserts"]),
            s.counters(true, &["ZooKeeperSession"]),
            s.errors(),
            s.detached_parts(),
            s.distribution_queue(),
        ] {
            assert!(q.contains("FROM system.") && !q.contains("clusterAllReplicas"), "{q}");
            assert!(q.contains("hostName() AS replica") && q.contains("LIMIT 100"), "{q}");
            assert!(!q.contains("SETTINGS"), "a readonly=1 profile refuses any SETTINGS clause: {q}");
        }
        assert!(s.parts().contains("database IN ('polo', 'other')"));
        assert!(s.detached_parts().contains("database IN ('polo', 'other')"));
        assert!(s.distribution_queue().contains("database IN ('polo', 'other')"));
        let events = s.counters(false, &["DelayedInserts", "RejectedInserts"]);
        assert!(events.contains(
            "[toInt64(sumIf(value, event = 'DelayedInserts')), toInt64(sumIf(value, event = 'RejectedInserts'))] AS values"
        ));
        assert!(events.contains("FROM system.events GROUP BY replica"));
        assert!(s.counters(true, &["ZooKeeperSession"]).contains("sumIf(value, metric = 'ZooKeeperSession')"));
    }

    #[test]
    fn cluster_mode_reads_every_replica() {
        let s = sql(Some("polo_cluster"));
        for (q, table) in [
            (s.disks(), "disks"),
            (s.processes(), "processes"),
            (s.parts(), "parts"),
            (s.replicas(), "replicas"),
            (s.mutations(), "mutations"),
            (s.version(), "build_options"),
            (s.query_log(0, 1, &[0.1]), "query_log"),
            (s.counters(false, &["RejectedInserts"]), "events"),
            (s.counters(true, &["ZooKeeperSession"]), "metrics"),
            (s.errors(), "errors"),
            (s.detached_parts(), "detached_parts"),
            (s.distribution_queue(), "distribution_queue"),
        ] {
            assert!(q.contains(&format!("FROM clusterAllReplicas('polo_cluster', system.{table})")), "{q}");
            // One replica down must not fail the statement: it is skipped, the others answer.
            assert!(q.ends_with("LIMIT 100 SETTINGS skip_unavailable_shards = 1"), "{q}");
        }
        assert!(s.version().contains("toUInt32(_shard_num) AS replica_index"));
        let clusters = s.cluster_replicas().unwrap();
        assert!(clusters.contains("FROM system.clusters WHERE cluster = 'polo_cluster'"), "{clusters}");
        assert!(clusters.contains("ORDER BY shard_num, replica_num"), "{clusters}");
        assert!(!clusters.contains("clusterAllReplicas"), "{clusters}");
        assert!(sql(None).cluster_replicas().is_none());
    }

    #[test]
    fn query_log_window_and_buckets() {
        let q = sql(None).query_log(1_000_000, 2_500_000, &[0.005, 0.25, 1.0]);
        assert!(q.contains("event_time_microseconds >= fromUnixTimestamp64Micro(1000000)"));
        assert!(q.contains("event_time_microseconds < fromUnixTimestamp64Micro(2500000)"));
        assert!(q.contains(
            "[countIf(query_duration_ms <= 5), countIf(query_duration_ms <= 250), countIf(query_duration_ms <= 1000)]"
        ));
        assert!(q.contains("NOT startsWith(log_comment, 'polo-exporter:')"));
        assert!(q.contains("tupleElement(sumMap([toInt32(ceil(log2(greatest(query_duration_ms, 1) / 1000) * 8))], [toUInt64(query_duration_ms > 0)]), 2) AS native_count"), "{q}");
        assert!(q.contains("is_initial_query"));
    }
}
