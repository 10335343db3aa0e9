//! Pure part of the server-health families: `system.events` and `system.metrics` counters,
//! `system.errors` by class of code, `system.detached_parts` by reason and
//! `system.distribution_queue`, rows → metric families.

use clickhouse::Row;
use serde::Deserialize;

use crate::clickhouse::text::RowKey;
use crate::clickhouse::CodeClass;
use crate::metrics::{Def, MetricFamily};

/// One node's values of the listed `system.events` or `system.metrics` names, in list order
/// (0 where the table has no row: `system.events` lists only events that happened).
#[derive(Debug, Clone, Row, Deserialize, PartialEq)]
pub struct CountersRow {
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub replica: String,
    pub values: Vec<i64>,
}

/// `system.errors` of one node and code, local errors only.
#[derive(Debug, Clone, Row, Deserialize, PartialEq)]
pub struct ErrorsRow {
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub replica: String,
    pub code: i32,
    pub errors: u64,
}

/// Detached parts of one table by reason; `groups` is how many (replica, table, reason) groups
/// the query found before its `LIMIT`.
#[derive(Debug, Clone, Row, Deserialize, PartialEq)]
pub struct DetachedRow {
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub replica: String,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub database: String,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub table: String,
    /// Empty for a part detached by `ALTER TABLE … DETACH PART` (reported as `detached_by_user`).
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub reason: String,
    pub parts: u64,
    pub groups: u64,
}

/// The Distributed table's queue of files not yet sent to its shards.
#[derive(Debug, Clone, Row, Deserialize, PartialEq)]
pub struct DistributionRow {
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub replica: String,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub database: String,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub table: String,
    pub files: u64,
    pub broken_files: u64,
    pub errors: u64,
    pub groups: u64,
}

impl RowKey for CountersRow {
    fn key(&self) -> String {
        self.replica.clone()
    }
}

impl RowKey for ErrorsRow {
    fn key(&self) -> String {
        format!("{}/{}", self.replica, self.code)
    }
}

impl RowKey for DetachedRow {
    fn key(&self) -> String {
        format!("{}/{}.{}/{}", self.replica, self.database, self.table, self.reason)
    }
}

impl RowKey for DistributionRow {
    fn key(&self) -> String {
        format!("{}/{}.{}", self.replica, self.database, self.table)
    }
}

/// The health tables of one scrape (empty where the table's query failed).
#[derive(Debug, Default, Clone)]
pub struct HealthRows {
    pub events: Vec<CountersRow>,
    pub metrics: Vec<CountersRow>,
    pub errors: Vec<ErrorsRow>,
    pub detached: Vec<DetachedRow>,
    pub distribution: Vec<DistributionRow>,
    /// Per node, `uptime()` in seconds (read with the version).
    pub uptime: Vec<(String, u64)>,
}

const REPLICA: &[&str] = &["replica"];
const TABLE: &[&str] = &["replica", "database", "table"];

pub static INSERTS_DELAYED: Def = Def::counter(
    "polo_clickhouse_inserts_delayed",
    "INSERTs throttled because a partition had parts_to_delay_insert active parts (system.events DelayedInserts), since the server started.",
    REPLICA,
);
pub static INSERTS_DELAYED_SECONDS: Def = Def::counter(
    "polo_clickhouse_inserts_delayed_seconds",
    "Time INSERTs spent throttled (system.events DelayedInsertsMilliseconds / 1000), since the server started.",
    REPLICA,
);
pub static INSERTS_REJECTED: Def = Def::counter(
    "polo_clickhouse_inserts_rejected",
    "INSERTs refused with TOO_MANY_PARTS at parts_to_throw_insert (system.events RejectedInserts), since the server started.",
    REPLICA,
);
pub static KEEPER_HARDWARE_EXCEPTIONS: Def = Def::counter(
    "polo_clickhouse_keeper_hardware_exceptions",
    "Network and session errors talking to ClickHouse Keeper or ZooKeeper (system.events ZooKeeperHardwareExceptions), since the server started.",
    REPLICA,
);
pub static FAILED_FETCHES: Def = Def::counter(
    "polo_clickhouse_replicated_part_failed_fetches",
    "Parts a replica failed to download from another (system.events ReplicatedPartFailedFetches), since the server started.",
    REPLICA,
);
pub static PART_CHECKS_FAILED: Def = Def::counter(
    "polo_clickhouse_replicated_part_checks_failed",
    "Part checks that found a part broken or missing (system.events ReplicatedPartChecksFailed), since the server started.",
    REPLICA,
);
pub static DATA_LOSS: Def = Def::counter(
    "polo_clickhouse_replicated_data_loss",
    "Parts wanted that exist on no replica: data lost (system.events ReplicatedDataLoss), since the server started.",
    REPLICA,
);
pub static DISTRIBUTED_CONNECTION_FAILURES: Def = Def::counter(
    "polo_clickhouse_distributed_connection_failures",
    "Distributed connections that failed after every retry (system.events DistributedConnectionFailAtAll), since the server started.",
    REPLICA,
);

/// `system.events` names read, each with its family and the factor to its unit.
pub const EVENTS: [(&str, &Def, f64); 8] = [
    ("DelayedInserts", &INSERTS_DELAYED, 1.0),
    ("DelayedInsertsMilliseconds", &INSERTS_DELAYED_SECONDS, 0.001),
    ("RejectedInserts", &INSERTS_REJECTED, 1.0),
    ("ZooKeeperHardwareExceptions", &KEEPER_HARDWARE_EXCEPTIONS, 1.0),
    ("ReplicatedPartFailedFetches", &FAILED_FETCHES, 1.0),
    ("ReplicatedPartChecksFailed", &PART_CHECKS_FAILED, 1.0),
    ("ReplicatedDataLoss", &DATA_LOSS, 1.0),
    ("DistributedConnectionFailAtAll", &DISTRIBUTED_CONNECTION_FAILURES, 1.0),
];

pub static INSERTS_DELAYED_NOW: Def = Def::gauge(
    "polo_clickhouse_inserts_delayed_now",
    "INSERTs being throttled right now (system.metrics DelayedInserts).",
    REPLICA,
);
pub static KEEPER_SESSIONS: Def = Def::gauge(
    "polo_clickhouse_keeper_sessions",
    "Sessions to ClickHouse Keeper or ZooKeeper (system.metrics ZooKeeperSession): 1 where replication is configured, 0 without Keeper; above 1 risks stale reads.",
    REPLICA,
);
pub static READONLY_REPLICAS: Def = Def::gauge(
    "polo_clickhouse_readonly_replicas",
    "Replicated tables read-only on this node, every database (system.metrics ReadonlyReplica).",
    REPLICA,
);
pub static DISTRIBUTED_FILES: Def = Def::gauge(
    "polo_clickhouse_distributed_files_to_insert",
    "Files Distributed tables still have to send to their shards, every database (system.metrics DistributedFilesToInsert).",
    REPLICA,
);

/// `system.metrics` names read, each with its family.
pub const METRICS: [(&str, &Def, f64); 4] = [
    ("DelayedInserts", &INSERTS_DELAYED_NOW, 1.0),
    ("ZooKeeperSession", &KEEPER_SESSIONS, 1.0),
    ("ReadonlyReplica", &READONLY_REPLICAS, 1.0),
    ("DistributedFilesToInsert", &DISTRIBUTED_FILES, 1.0),
];

pub static SERVER_ERRORS: Def = Def::counter(
    "polo_clickhouse_server_errors",
    "Errors the server raised itself since it started, every client's (system.errors, remote = 0), by class of exception code.",
    &["replica", "class"],
);
pub static DETACHED_PARTS: Def = Def::gauge(
    "polo_clickhouse_detached_parts",
    "Parts in the table's detached directory (system.detached_parts), by reason (detached_by_user for ALTER … DETACH).",
    &["replica", "database", "table", "reason"],
);
pub static DISTRIBUTION_FILES: Def = Def::gauge(
    "polo_clickhouse_distribution_queue_files",
    "Files of the Distributed table waiting to be sent to its shards (system.distribution_queue data_files).",
    TABLE,
);
pub static DISTRIBUTION_BROKEN_FILES: Def = Def::gauge(
    "polo_clickhouse_distribution_queue_broken_files",
    "Files of the Distributed table that could not be sent and were set aside (system.distribution_queue broken_data_files).",
    TABLE,
);
pub static DISTRIBUTION_ERRORS: Def = Def::gauge(
    "polo_clickhouse_distribution_queue_errors",
    "Failed attempts to send the Distributed table's files since the last success (system.distribution_queue error_count).",
    TABLE,
);
pub static ROWS_OVER_LIMIT: Def = Def::gauge(
    "polo_clickhouse_system_rows_over_limit",
    "Groups (table, reason) the per-table query found beyond max_rows, not reported this scrape; 0 when all are.",
    &["table"],
);
pub static UPTIME: Def =
    Def::gauge("polo_clickhouse_uptime_seconds", "Seconds since the server started (uptime()).", REPLICA);

/// Every family of the health tables, including the ones without rows (so absent tables show
/// as empty families, not missing names).
pub fn families(rows: &HealthRows, tables_up: &[(&'static str, bool)]) -> Vec<MetricFamily> {
    let mut out = counters(&EVENTS, &rows.events);
    out.extend(counters(&METRICS, &rows.metrics));
    let mut errors = SERVER_ERRORS.family();
    let mut per_class = std::collections::BTreeMap::<(String, CodeClass), u64>::new();
    // Every class of every node that answered: a server that has raised no error yet has no
    // system.errors row, yet its counters are 0, not absent.
    let nodes = rows.errors.iter().map(|r| &r.replica).chain(rows.events.iter().map(|r| &r.replica));
    for replica in nodes {
        for class in CodeClass::ALL {
            per_class.entry((replica.clone(), class)).or_insert(0);
        }
    }
    for r in &rows.errors {
        *per_class.entry((r.replica.clone(), CodeClass::of(i64::from(r.code)))).or_insert(0) += r.errors;
    }
    for ((replica, class), n) in per_class {
        errors.push([replica, class.as_str().to_string()], n as f64);
    }
    out.push(errors);
    let mut detached = DETACHED_PARTS.family();
    for d in &rows.detached {
        let reason = if d.reason.is_empty() { "detached_by_user" } else { d.reason.as_str() };
        detached.push([d.replica.clone(), d.database.clone(), d.table.clone(), reason.to_string()], d.parts as f64);
    }
    let (mut files, mut broken, mut errors) =
        (DISTRIBUTION_FILES.family(), DISTRIBUTION_BROKEN_FILES.family(), DISTRIBUTION_ERRORS.family());
    for d in &rows.distribution {
        let labels = || [d.replica.clone(), d.database.clone(), d.table.clone()];
        files.push(labels(), d.files as f64);
        broken.push(labels(), d.broken_files as f64);
        errors.push(labels(), d.errors as f64);
    }
    let mut over = ROWS_OVER_LIMIT.family();
    let dropped = |groups: Option<u64>, returned: usize| groups.unwrap_or(0).saturating_sub(returned as u64) as f64;
    for (table, up) in tables_up {
        match *table {
            "detached_parts" if *up => {
                over.push([table.to_string()], dropped(rows.detached.first().map(|r| r.groups), rows.detached.len()))
            }
            "distribution_queue" if *up => over.push(
                [table.to_string()],
                dropped(rows.distribution.first().map(|r| r.groups), rows.distribution.len()),
            ),
            _ => {}
        }
    }
    let mut uptime = UPTIME.family();
    for (replica, seconds) in &rows.uptime {
        uptime.push([replica.clone()], *seconds as f64);
    }
    out.extend([detached, files, broken, errors, over, uptime]);
    out
}

/// One family per listed name, a sample per node (a node whose row is short reads 0).
fn counters(names: &[(&str, &'static Def, f64)], rows: &[CountersRow]) -> Vec<MetricFamily> {
    names
        .iter()
        .enumerate()
        .map(|(i, (_, def, factor))| {
            let mut family = def.family();
            for r in rows {
                family.push([r.replica.clone()], r.values.get(i).copied().unwrap_or(0) as f64 * factor);
            }
            family
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Value;

    fn value(fams: &[MetricFamily], def: &Def, labels: &[(&str, &str)]) -> Option<Value> {
        let family = fams.iter().find(|f| f.def() == def)?;
        family
            .samples()
            .iter()
            .find(|s| labels.iter().all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v)))
            .map(|s| s.value.clone())
    }

    #[test]
    fn counters_follow_the_name_lists_in_order() {
        let rows = HealthRows {
            events: vec![CountersRow { replica: "n1".into(), values: vec![3, 1500, 2, 0, 0, 0, 0, 0] }],
            metrics: vec![CountersRow { replica: "n1".into(), values: vec![1, 2] }],
            ..HealthRows::default()
        };
        let fams = families(&rows, &[]);
        assert_eq!(value(&fams, &INSERTS_DELAYED, &[("replica", "n1")]), Some(Value::Counter(3.0)));
        assert_eq!(value(&fams, &INSERTS_DELAYED_SECONDS, &[]), Some(Value::Counter(1.5)));
        assert_eq!(value(&fams, &INSERTS_REJECTED, &[]), Some(Value::Counter(2.0)));
        assert_eq!(value(&fams, &KEEPER_SESSIONS, &[]), Some(Value::Gauge(2.0)));
        // A row shorter than the list reads 0, never a neighbour's value.
        assert_eq!(value(&fams, &DISTRIBUTED_FILES, &[]), Some(Value::Gauge(0.0)));
    }

    #[test]
    fn errors_by_class_with_every_class_present() {
        let row = |code, errors| ErrorsRow { replica: "n1".into(), code, errors };
        let rows = HealthRows { errors: vec![row(60, 2), row(81, 1), row(252, 4), row(9999, 5)], ..Default::default() };
        let fams = families(&rows, &[]);
        let class = |c: &str| value(&fams, &SERVER_ERRORS, &[("class", c)]);
        assert_eq!(class("query"), Some(Value::Counter(3.0)));
        assert_eq!(class("too_many_parts"), Some(Value::Counter(4.0)));
        assert_eq!(class("other"), Some(Value::Counter(5.0)));
        assert_eq!(class("timeout"), Some(Value::Counter(0.0)));
        // A node without any error row still has every class, at 0.
        let quiet =
            HealthRows { events: vec![CountersRow { replica: "n2".into(), values: vec![] }], ..HealthRows::default() };
        let fams = families(&quiet, &[]);
        assert_eq!(value(&fams, &SERVER_ERRORS, &[("replica", "n2"), ("class", "query")]), Some(Value::Counter(0.0)));
        assert_eq!(fams.iter().find(|f| f.def() == &SERVER_ERRORS).unwrap().samples().len(), CodeClass::ALL.len());
    }

    #[test]
    fn detached_parts_name_the_user_reason_and_count_the_overflow() {
        let row = |table: &str, reason: &str, parts| DetachedRow {
            replica: "n1".into(),
            database: "polo".into(),
            table: table.into(),
            reason: reason.into(),
            parts,
            groups: 5,
        };
        let rows = HealthRows { detached: vec![row("a", "", 2), row("b", "broken", 1)], ..Default::default() };
        let fams = families(&rows, &[("detached_parts", true), ("distribution_queue", true)]);
        assert_eq!(
            value(&fams, &DETACHED_PARTS, &[("table", "a"), ("reason", "detached_by_user")]),
            Some(Value::Gauge(2.0))
        );
        assert_eq!(value(&fams, &DETACHED_PARTS, &[("table", "b"), ("reason", "broken")]), Some(Value::Gauge(1.0)));
        assert_eq!(value(&fams, &ROWS_OVER_LIMIT, &[("table", "detached_parts")]), Some(Value::Gauge(3.0)));
        assert_eq!(value(&fams, &ROWS_OVER_LIMIT, &[("table", "distribution_queue")]), Some(Value::Gauge(0.0)));
        // A table whose query failed reports no overflow figure (it is not known).
        let fams = families(&rows, &[("detached_parts", false)]);
        assert_eq!(value(&fams, &ROWS_OVER_LIMIT, &[]), None);
    }
}
