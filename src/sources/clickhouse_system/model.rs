//! Pure part of `clickhouse_system`: rows → metric families, the query-latency histogram
//! accumulated across scrapes, and the status section.

use std::collections::BTreeSet;

use clickhouse::Row;
use serde::Deserialize;

use crate::clickhouse::text::RowKey;
use crate::metrics::{Def, MetricFamily};

#[derive(Debug, Clone, Row, Deserialize, PartialEq)]
pub struct DiskRow {
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub replica: String,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub disk: String,
    /// `system.disks.type`: `Local`, `ObjectStorage`, `s3`, ... depending on the version.
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub disk_type: String,
    pub free: u64,
    pub total: u64,
    pub unreserved: u64,
    pub keep_free: u64,
}

#[derive(Debug, Clone, Row, Deserialize, PartialEq)]
pub struct QueryLogRow {
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub replica: String,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub query_kind: String,
    /// 0 for finished queries.
    pub exception_code: i32,
    pub queries: u64,
    pub duration_ms_sum: u64,
    /// Queries with duration <= each bucket bound.
    pub cumulative: Vec<u64>,
    /// Queries logged with 0 ms (the native histogram's zero bucket).
    pub zero_ms: u64,
    /// Native bucket indexes (schema [`NATIVE_SCHEMA`]) of the queries above 0 ms, and
    /// the number of queries in each (two arrays of one length, from `sumMap`).
    pub native_index: Vec<i32>,
    pub native_count: Vec<u64>,
}

#[derive(Debug, Clone, Row, Deserialize, PartialEq)]
pub struct ProcessesRow {
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub replica: String,
    pub active: u64,
    pub longest_seconds: f64,
}

#[derive(Debug, Clone, Row, Deserialize, PartialEq)]
pub struct PartsRow {
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub replica: String,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub database: String,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub table: String,
    pub bytes_on_disk: u64,
    pub rows: u64,
    pub active_parts: u64,
    pub max_parts_in_partition: u64,
}

#[derive(Debug, Clone, Row, Deserialize, PartialEq)]
pub struct ReplicaRow {
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub replica: String,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub database: String,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub table: String,
    pub readonly: u8,
    pub absolute_delay: u64,
    pub queue_size: u64,
    /// The replica's Keeper session expired (system.replicas is_session_expired).
    pub session_expired: u8,
}

#[derive(Debug, Clone, Row, Deserialize, PartialEq)]
pub struct MutationRow {
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub replica: String,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub database: String,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub table: String,
    pub pending: u64,
    pub oldest_created: i64,
}

#[derive(Debug, Clone, Row, Deserialize, PartialEq)]
pub struct VersionRow {
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub replica: String,
    /// clusterAllReplicas' number of the replica (`_shard_num`), 1 on a single node.
    pub replica_index: u32,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub version: String,
    /// `uptime()` of the node.
    pub uptime_seconds: u64,
}

/// One replica of the configured cluster, as `system.clusters` lists it.
#[derive(Debug, Clone, Row, Deserialize, PartialEq)]
pub struct ClusterReplicaRow {
    pub shard_num: u32,
    pub replica_num: u32,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub host_name: String,
    pub port: u16,
}

#[derive(Debug, Clone, Row, Deserialize, PartialEq)]
pub struct NowRow {
    pub now_us: i64,
}

impl RowKey for DiskRow {
    fn key(&self) -> String {
        format!("{}/{}", self.replica, self.disk)
    }
}

impl RowKey for QueryLogRow {
    fn key(&self) -> String {
        format!("{}/{}", self.replica, self.query_kind)
    }
}

impl RowKey for ProcessesRow {
    fn key(&self) -> String {
        self.replica.clone()
    }
}

impl RowKey for PartsRow {
    fn key(&self) -> String {
        format!("{}/{}.{}", self.replica, self.database, self.table)
    }
}

impl RowKey for ReplicaRow {
    fn key(&self) -> String {
        format!("{}/{}.{}", self.replica, self.database, self.table)
    }
}

impl RowKey for MutationRow {
    fn key(&self) -> String {
        format!("{}/{}.{}", self.replica, self.database, self.table)
    }
}

impl RowKey for VersionRow {
    fn key(&self) -> String {
        self.replica.clone()
    }
}

impl RowKey for ClusterReplicaRow {
    fn key(&self) -> String {
        format!("{}:{}", self.host_name, self.port)
    }
}

impl RowKey for NowRow {
    fn key(&self) -> String {
        String::new()
    }
}

/// What `system.disks` reports for a space it cannot tell (object storage, ClickHouse Cloud).
pub const UNKNOWN_SPACE: u64 = u64::MAX;

/// A disk space, None where the disk cannot tell: the sentinel is never used as a value.
pub fn known_space(bytes: u64) -> Option<u64> {
    (bytes != UNKNOWN_SPACE).then_some(bytes)
}

/// The system tables the source reads, one query each; a query that fails leaves the others'
/// families in place and sets `polo_clickhouse_system_table_up{table}` to 0.
pub const TABLES: [&str; 12] = [
    "disks",
    "processes",
    "parts",
    "replicas",
    "mutations",
    "build_options",
    "query_log",
    "events",
    "metrics",
    "errors",
    "detached_parts",
    "distribution_queue",
];

/// The point-in-time system tables of one scrape.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub disks: Vec<DiskRow>,
    pub processes: Vec<ProcessesRow>,
    pub parts: Vec<PartsRow>,
    pub replicas: Vec<ReplicaRow>,
    pub mutations: Vec<MutationRow>,
    pub versions: Vec<VersionRow>,
    /// events, metrics, errors, detached_parts, distribution_queue (and uptime).
    pub health: super::health::HealthRows,
    /// In cluster mode, the replicas `system.clusters` lists (None: single node, or not read).
    pub cluster: Option<Vec<ClusterReplicaRow>>,
    /// Per table of [`TABLES`] read this scrape: whether its query succeeded.
    pub tables_up: Vec<(&'static str, bool)>,
}

pub static DISK_INFO: Def = Def::gauge(
    "polo_clickhouse_disk_info",
    "Always 1, per disk; space_known is false for disks that cannot report their space (object storage, ClickHouse Cloud), which then have no free/total/unreserved series.",
    &["replica", "disk", "type", "space_known"],
);
pub static DISK_FREE: Def = Def::gauge(
    "polo_clickhouse_disk_free_bytes",
    "Free space on the disk (system.disks free_space); absent for disks that cannot tell.",
    &["replica", "disk"],
);
pub static DISK_TOTAL: Def = Def::gauge(
    "polo_clickhouse_disk_total_bytes",
    "Size of the disk (system.disks total_space); absent for disks that cannot tell.",
    &["replica", "disk"],
);
pub static DISK_UNRESERVED: Def = Def::gauge(
    "polo_clickhouse_disk_unreserved_bytes",
    "Free space not reserved by merges and fetches (system.disks unreserved_space); absent for disks that cannot tell.",
    &["replica", "disk"],
);
pub static DISK_KEEP_FREE: Def = Def::gauge(
    "polo_clickhouse_disk_keep_free_bytes",
    "Space ClickHouse keeps free on the disk (system.disks keep_free_space).",
    &["replica", "disk"],
);
pub static QUERY_DURATION: Def = Def::histogram(
    "polo_clickhouse_query_duration_seconds",
    "Duration of finished initial queries (system.query_log), excluding the exporter's own, counted since the exporter started.",
    &["replica", "query_kind"],
);
pub static FAILED_QUERIES: Def = Def::counter(
    "polo_clickhouse_failed_queries",
    "Initial queries that failed (system.query_log exceptions), excluding the exporter's own, by class of exception code, since the exporter started.",
    &["replica", "class"],
);
pub static ACTIVE_QUERIES: Def = Def::gauge(
    "polo_clickhouse_active_queries",
    "Initial queries running now (system.processes), excluding the exporter's own.",
    &["replica"],
);
pub static LONGEST_QUERY: Def = Def::gauge(
    "polo_clickhouse_longest_running_query_seconds",
    "Elapsed time of the longest-running initial query (system.processes), excluding the exporter's own; 0 if none.",
    &["replica"],
);
const TABLE: &[&str] = &["replica", "database", "table"];
pub static TABLE_BYTES: Def = Def::gauge(
    "polo_clickhouse_table_bytes_on_disk",
    "Bytes on disk of the table's active parts (system.parts).",
    TABLE,
);
pub static TABLE_ROWS: Def =
    Def::gauge("polo_clickhouse_table_rows", "Rows in the table's active parts (system.parts).", TABLE);
pub static TABLE_PARTS: Def =
    Def::gauge("polo_clickhouse_table_active_parts", "Active parts of the table (system.parts).", TABLE);
pub static TABLE_MAX_PARTS: Def = Def::gauge(
    "polo_clickhouse_table_max_parts_in_partition",
    "Most active parts in one partition of the table; inserts are delayed, then rejected, when it reaches parts_to_delay_insert / parts_to_throw_insert.",
    TABLE,
);
pub static REPLICA_READONLY: Def = Def::gauge(
    "polo_clickhouse_replica_readonly",
    "1 if the replicated table is read-only on this replica (system.replicas is_readonly).",
    TABLE,
);
pub static REPLICA_DELAY: Def = Def::gauge(
    "polo_clickhouse_replica_absolute_delay_seconds",
    "How far this replica lags behind (system.replicas absolute_delay).",
    TABLE,
);
pub static REPLICA_QUEUE: Def = Def::gauge(
    "polo_clickhouse_replica_queue_size",
    "Replication tasks waiting on this replica (system.replicas queue_size).",
    TABLE,
);
pub static REPLICA_SESSION_EXPIRED: Def = Def::gauge(
    "polo_clickhouse_replica_session_expired",
    "1 if this replica's Keeper session expired (system.replicas is_session_expired): it is read-only until it reconnects.",
    TABLE,
);
pub static MUTATIONS_PENDING: Def =
    Def::gauge("polo_clickhouse_mutations_pending", "Mutations of the table not done yet (system.mutations).", TABLE);
pub static OLDEST_MUTATION: Def = Def::gauge(
    "polo_clickhouse_oldest_pending_mutation_timestamp_seconds",
    "create_time of the oldest mutation of the table not done yet (system.mutations).",
    TABLE,
);
pub static CLUSTER_REPLICAS: Def = Def::gauge(
    "polo_clickhouse_cluster_replicas",
    "Cluster mode: replicas of clickhouse.cluster in system.clusters (state=expected) and those that answered this scrape's queries (state=answering).",
    &["state"],
);
pub static CLUSTER_REPLICA_UP: Def = Def::gauge(
    "polo_clickhouse_cluster_replica_up",
    "Cluster mode: 1 if the replica (host:port as in system.clusters) answered this scrape's queries, 0 if it was skipped as unavailable.",
    &["shard", "address"],
);
pub static SYSTEM_TABLE_UP: Def = Def::gauge(
    "polo_clickhouse_system_table_up",
    "1 if this scrape's query of the system table succeeded; on 0 its families are absent and the error is in the log and polo_exporter_source_errors_total.",
    &["table"],
);
pub static BUILD_INFO: Def = Def::gauge(
    "polo_clickhouse_build_info",
    "Always 1; the version label is the ClickHouse server's version.",
    &["replica", "version"],
);

/// Every family of the source, from one scrape's snapshot and the accumulated query statistics.
pub fn families(snapshot: &Snapshot, stats: &QueryStats) -> Vec<MetricFamily> {
    let mut out = disk_families(&snapshot.disks);
    out.extend(cluster_families(snapshot));
    out.extend(query_families(stats));
    out.extend(process_families(&snapshot.processes));
    out.extend(table_families(snapshot));
    out.extend(super::health::families(&snapshot.health, &snapshot.tables_up));
    out.push(BUILD_INFO.family());
    let build = out.last_mut().expect("just pushed");
    for v in &snapshot.versions {
        build.push([v.replica.clone(), v.version.clone()], 1.0);
    }
    out
}

fn disk_families(disks: &[DiskRow]) -> Vec<MetricFamily> {
    let mut info = DISK_INFO.family();
    let mut free = DISK_FREE.family();
    let mut total = DISK_TOTAL.family();
    let mut unreserved = DISK_UNRESERVED.family();
    let mut keep_free = DISK_KEEP_FREE.family();
    for d in disks {
        let labels = || [d.replica.clone(), d.disk.clone()];
        // A disk that cannot tell one of free/total cannot give a used ratio either: no space series.
        let space = known_space(d.free).zip(known_space(d.total));
        let known = if space.is_some() { "true" } else { "false" };
        info.push([d.replica.clone(), d.disk.clone(), d.disk_type.clone(), known.to_string()], 1.0);
        if let Some((f, t)) = space {
            free.push(labels(), f as f64);
            total.push(labels(), t as f64);
            if let Some(u) = known_space(d.unreserved) {
                unreserved.push(labels(), u as f64);
            }
        }
        if let Some(k) = known_space(d.keep_free) {
            keep_free.push(labels(), k as f64);
        }
    }
    vec![info, free, total, unreserved, keep_free]
}

/// Expected replicas against those that answered, and which tables could be read.
fn cluster_families(snapshot: &Snapshot) -> Vec<MetricFamily> {
    let mut tables = SYSTEM_TABLE_UP.family();
    for (table, up) in &snapshot.tables_up {
        tables.push([table.to_string()], f64::from(u8::from(*up)));
    }
    let Some(expected) = &snapshot.cluster else { return vec![tables] };
    let answered: BTreeSet<u32> = snapshot.versions.iter().map(|v| v.replica_index).collect();
    let mut count = CLUSTER_REPLICAS.family();
    let mut up = CLUSTER_REPLICA_UP.family();
    let mut answering = 0;
    for (i, r) in expected.iter().enumerate() {
        let ok = answered.contains(&(i as u32 + 1));
        answering += usize::from(ok);
        up.push([r.shard_num.to_string(), format!("{}:{}", r.host_name, r.port)], f64::from(u8::from(ok)));
    }
    count.push(["expected".to_string()], expected.len() as f64);
    count.push(["answering".to_string()], answering as f64);
    vec![tables, count, up]
}

fn process_families(processes: &[ProcessesRow]) -> Vec<MetricFamily> {
    let mut active = ACTIVE_QUERIES.family();
    let mut longest = LONGEST_QUERY.family();
    for p in processes {
        active.push([p.replica.clone()], p.active as f64);
        longest.push([p.replica.clone()], p.longest_seconds);
    }
    vec![active, longest]
}

fn table_families(snapshot: &Snapshot) -> Vec<MetricFamily> {
    let table =
        |replica: &str, database: &str, name: &str| [replica.to_string(), database.to_string(), name.to_string()];
    let mut bytes = TABLE_BYTES.family();
    let mut rows = TABLE_ROWS.family();
    let mut parts = TABLE_PARTS.family();
    let mut max_parts = TABLE_MAX_PARTS.family();
    for p in &snapshot.parts {
        let labels = || table(&p.replica, &p.database, &p.table);
        bytes.push(labels(), p.bytes_on_disk as f64);
        rows.push(labels(), p.rows as f64);
        parts.push(labels(), p.active_parts as f64);
        max_parts.push(labels(), p.max_parts_in_partition as f64);
    }
    let mut readonly = REPLICA_READONLY.family();
    let mut delay = REPLICA_DELAY.family();
    let mut queue = REPLICA_QUEUE.family();
    let mut expired = REPLICA_SESSION_EXPIRED.family();
    for r in &snapshot.replicas {
        let labels = || table(&r.replica, &r.database, &r.table);
        readonly.push(labels(), f64::from(r.readonly));
        delay.push(labels(), r.absolute_delay as f64);
        queue.push(labels(), r.queue_size as f64);
        expired.push(labels(), f64::from(r.session_expired));
    }
    let mut pending = MUTATIONS_PENDING.family();
    let mut oldest = OLDEST_MUTATION.family();
    for m in &snapshot.mutations {
        let labels = || table(&m.replica, &m.database, &m.table);
        pending.push(labels(), m.pending as f64);
        oldest.push(labels(), m.oldest_created as f64);
    }
    vec![bytes, rows, parts, max_parts, readonly, delay, queue, expired, pending, oldest]
}

/// The status document's `clickhouse` section: `disk_used_gb` and `query_p95_ms` as Polo's status page shows them, and more.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClickHouseStatus {
    /// Used space of the disks that report it; null when none does (object storage only).
    pub disk_used_gb: Option<f64>,
    /// Disks that cannot report their space (`replica/disk`), left out of `disk_used_gb` and the ratio.
    pub disks_space_unknown: Vec<String>,
    pub disk_used_ratio_max: Option<f64>,
    pub query_p50_ms: Option<f64>,
    pub query_p95_ms: Option<f64>,
    pub query_p99_ms: Option<f64>,
    pub active_queries: u64,
    pub replicas: Vec<ReplicaVersion>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReplicaVersion {
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub replica: String,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub version: String,
}

pub fn status(snapshot: &Snapshot, stats: &QueryStats) -> ClickHouseStatus {
    let known: Vec<(u64, u64)> =
        snapshot.disks.iter().filter_map(|d| known_space(d.free).zip(known_space(d.total))).collect();
    let unknown = snapshot
        .disks
        .iter()
        .filter(|d| known_space(d.free).zip(known_space(d.total)).is_none())
        .map(|d| format!("{}/{}", d.replica, d.disk))
        .collect();
    let used: Option<u64> =
        (!known.is_empty()).then(|| known.iter().map(|(free, total)| total.saturating_sub(*free)).sum());
    let max_ratio = known
        .iter()
        .filter(|(_, total)| *total > 0)
        .map(|(free, total)| total.saturating_sub(*free) as f64 / *total as f64)
        .fold(None, |acc: Option<f64>, r| Some(acc.map_or(r, |a| a.max(r))));
    let ms = |q: f64| stats.recent_quantile(q).map(|s| (s * 1000.0).round());
    ClickHouseStatus {
        disk_used_gb: used.map(|used| (used as f64 / 1e9 * 10.0).round() / 10.0),
        disks_space_unknown: unknown,
        disk_used_ratio_max: max_ratio.map(|r| (r * 1000.0).round() / 1000.0),
        query_p50_ms: ms(0.5),
        query_p95_ms: ms(0.95),
        query_p99_ms: ms(0.99),
        active_queries: snapshot.processes.iter().map(|p| p.active).sum(),
        replicas: snapshot
            .versions
            .iter()
            .map(|v| ReplicaVersion { replica: v.replica.clone(), version: v.version.clone() })
            .collect(),
    }
}

mod queries;
#[cfg(test)]
mod tests;

use queries::query_families;
pub use queries::{quantile, Histogram, QueryStats, NATIVE_SCHEMA, NATIVE_ZERO_THRESHOLD};
