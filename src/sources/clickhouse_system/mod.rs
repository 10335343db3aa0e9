//! Source `clickhouse_system`: ClickHouse health from its system tables (disks, query latency
//! and failures, running queries, parts, replication, mutations, version), on the node
//! answering or, with `clickhouse.cluster`, on every replica of the cluster.

pub mod health;
pub mod model;
pub mod sql;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clickhouse::config::ClickHouseConfig;
use crate::clickhouse::ClickHouse;
use crate::config::duration::PromDuration;
use crate::config::{is_identifier, ConfigError, SourceSettings, Validator};
use crate::framework::{Source, SourceContext, SourceError, SourceOutput, Usage};
use crate::metrics::Def;
use crate::source_kind::Shared;
use crate::source_kind::SourceKind;
use crate::status::StatusSection;
use model::{NowRow, QueryStats, Snapshot};
use sql::Sql;

/// Default of `databases`.
pub const DEFAULT_DATABASES: [&str; 1] = ["polo"];
/// Default of `query_log_delay`: above a real server's query-log flush interval (7.5 s).
pub const DEFAULT_QUERY_LOG_DELAY: Duration = Duration::from_secs(15);
/// Default of `query_log_max_catchup`.
pub const DEFAULT_QUERY_LOG_MAX_CATCHUP: Duration = Duration::from_secs(600);
/// Default of `query_duration_buckets`, seconds.
pub const DEFAULT_QUERY_DURATION_BUCKETS: [f64; 15] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];
/// Default of `max_rows`.
pub const DEFAULT_MAX_ROWS: u64 = 10_000;

crate::source_section! {
    /// `sources.clickhouse_system`.
    pub struct RawClickHouseSystem {
        /// Databases whose tables are reported (parts, replication, mutations). Default: `[polo]`.
        pub databases: Option<Vec<String>>,
        /// Read latency and failures from `system.query_log`; set `false` where the query log is disabled
        /// (the source fails while the table is missing). Default: `true`.
        pub query_log: Option<bool>,
        /// A query is counted once it finished at least this long ago; must exceed the server's
        /// `query_log.flush_interval_milliseconds` (7.5 s by default) so that each query falls in exactly one
        /// window. Default: `15s`.
        pub query_log_delay: Option<PromDuration>,
        /// After a failure or a pause, read at most this much missed log (older queries are skipped, not
        /// counted). Default: `10m`.
        pub query_log_max_catchup: Option<PromDuration>,
        /// Histogram bucket bounds in seconds (1–100 of them); `+Inf` is implied. Default: `[0.005, 0.01,
        /// 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]`.
        pub query_duration_buckets: Option<Vec<f64>>,
        /// `LIMIT` on every system-table query (1–1,000,000). Default: `10000`.
        pub max_rows: Option<u64>,
    }
}

#[derive(Debug, Clone)]
pub struct ClickHouseSystemConfig {
    pub clickhouse: ClickHouseConfig,
    pub databases: Vec<String>,
    pub query_log: bool,
    pub query_log_delay: Duration,
    pub query_log_max_catchup: Duration,
    /// Strictly increasing, finite, positive; +Inf is implied.
    pub query_duration_buckets: Vec<f64>,
    pub max_rows: u64,
}

pub struct ClickHouseSystem {
    ch: ClickHouse,
    sql: Sql,
    cfg: ClickHouseSystemConfig,
    state: Mutex<QueryLogState>,
}

/// Query statistics so far, and where the next query-log window starts.
struct QueryLogState {
    stats: QueryStats,
    /// None until the first scrape has read the server's clock.
    next_from_us: Option<i64>,
}

impl SourceKind for ClickHouseSystem {
    const NAME: &'static str = "clickhouse_system";
    const ENABLED_BY_DEFAULT: bool = true;
    const FAMILIES: &'static [&'static Def] = &[
        &model::DISK_INFO,
        &model::DISK_FREE,
        &model::DISK_TOTAL,
        &model::DISK_UNRESERVED,
        &model::DISK_KEEP_FREE,
        &model::QUERY_DURATION,
        &model::FAILED_QUERIES,
        &model::ACTIVE_QUERIES,
        &model::LONGEST_QUERY,
        &model::TABLE_BYTES,
        &model::TABLE_ROWS,
        &model::TABLE_PARTS,
        &model::TABLE_MAX_PARTS,
        &model::REPLICA_READONLY,
        &model::REPLICA_DELAY,
        &model::REPLICA_QUEUE,
        &model::REPLICA_SESSION_EXPIRED,
        &model::MUTATIONS_PENDING,
        &model::OLDEST_MUTATION,
        &model::CLUSTER_REPLICAS,
        &model::CLUSTER_REPLICA_UP,
        &model::SYSTEM_TABLE_UP,
        &model::BUILD_INFO,
        &health::INSERTS_DELAYED,
        &health::INSERTS_DELAYED_SECONDS,
        &health::INSERTS_REJECTED,
        &health::KEEPER_HARDWARE_EXCEPTIONS,
        &health::FAILED_FETCHES,
        &health::PART_CHECKS_FAILED,
        &health::DATA_LOSS,
        &health::DISTRIBUTED_CONNECTION_FAILURES,
        &health::INSERTS_DELAYED_NOW,
        &health::KEEPER_SESSIONS,
        &health::READONLY_REPLICAS,
        &health::DISTRIBUTED_FILES,
        &health::SERVER_ERRORS,
        &health::DETACHED_PARTS,
        &health::DISTRIBUTION_FILES,
        &health::DISTRIBUTION_BROKEN_FILES,
        &health::DISTRIBUTION_ERRORS,
        &health::ROWS_OVER_LIMIT,
        &health::UPTIME,
    ];
    const STATUS_SECTIONS: &'static [&'static str] = &["clickhouse"];
    type Raw = RawClickHouseSystem;
    type Config = ClickHouseSystemConfig;

    fn validate(
        raw: RawClickHouseSystem,
        v: &Validator,
        shared: &Shared,
    ) -> Result<ClickHouseSystemConfig, ConfigError> {
        let key = |k: &str| format!("sources.clickhouse_system.{k}");
        let databases = raw.databases.unwrap_or_else(|| DEFAULT_DATABASES.map(String::from).to_vec());
        if let Some(bad) = databases.iter().find(|d| !is_identifier(d)) {
            return Err(v.invalid(&key("databases"), format!("{bad:?} is not a plain identifier")));
        }
        let buckets = raw.query_duration_buckets.unwrap_or_else(|| DEFAULT_QUERY_DURATION_BUCKETS.to_vec());
        let increasing = buckets.windows(2).all(|w| w[0] < w[1]);
        if buckets.is_empty()
            || buckets.len() > 100
            || !increasing
            || buckets.iter().any(|b| !b.is_finite() || *b <= 0.0)
        {
            return Err(v.invalid(
                &key("query_duration_buckets"),
                "must be a strictly increasing list of 1 to 100 positive seconds (+Inf is implied)",
            ));
        }
        let max_rows = raw.max_rows.unwrap_or(DEFAULT_MAX_ROWS);
        if !(1..=1_000_000).contains(&max_rows) {
            return Err(v.invalid(&key("max_rows"), "must be between 1 and 1000000"));
        }
        let hour = Duration::from_secs(3600);
        Ok(ClickHouseSystemConfig {
            clickhouse: shared.clickhouse(v, Self::NAME)?,
            databases,
            query_log: raw.query_log.unwrap_or(true),
            query_log_delay: v.duration(
                &key("query_log_delay"),
                raw.query_log_delay,
                DEFAULT_QUERY_LOG_DELAY,
                (Duration::ZERO, hour),
            )?,
            query_log_max_catchup: v.duration(
                &key("query_log_max_catchup"),
                raw.query_log_max_catchup,
                DEFAULT_QUERY_LOG_MAX_CATCHUP,
                (Duration::from_secs(1), 24 * hour),
            )?,
            query_duration_buckets: buckets,
            max_rows,
        })
    }

    fn default_timeout(shared: &Shared) -> Duration {
        crate::clickhouse::default_timeout(shared.clickhouse)
    }

    fn warnings(config: &Self::Config, settings: &SourceSettings) -> Vec<String> {
        use crate::clickhouse::PROFILE_MAX_RESULT_ROWS;
        let mut out: Vec<String> =
            crate::clickhouse::timeout_warning(Self::NAME, settings.timeout).into_iter().collect();
        if config.max_rows > PROFILE_MAX_RESULT_ROWS {
            out.push(format!(
                "sources.clickhouse_system.max_rows lets a query return {} rows, above the shipped profile's \
                 max_result_rows {PROFILE_MAX_RESULT_ROWS}: a result that large fails with code 158 (lower it or raise the limit)",
                config.max_rows
            ));
        }
        out
    }

    fn build(config: &ClickHouseSystemConfig, settings: &SourceSettings) -> Arc<dyn Source> {
        let sql = Sql::new(config.clickhouse.cluster.as_deref(), &config.databases, config.max_rows);
        Arc::new(Self {
            ch: ClickHouse::new(&config.clickhouse, Self::NAME, settings.timeout),
            sql,
            state: Mutex::new(QueryLogState {
                stats: QueryStats::new(config.query_duration_buckets.clone()),
                next_from_us: None,
            }),
            cfg: config.clone(),
        })
    }
}

#[async_trait::async_trait]
impl Source for ClickHouseSystem {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn usage(&self) -> &'static [Usage] {
        &[Usage::ClickHouseReadRows, Usage::InvalidValues]
    }

    async fn collect(&self, ctx: &SourceContext) -> Result<SourceOutput, SourceError> {
        let ch = &self.ch;
        // The server's clock cuts the query-log windows. This first query also tells whether
        // the server answers at all: if not, the source is down with that error.
        let now_us = ch.fetch_all::<NowRow>(ctx, "server time (now64)", ch.query(&self.sql.server_now())).await?;
        let now_us = now_us.first().map(|r| r.now_us).ok_or_else(|| {
            SourceError::new(crate::framework::ErrorKind::Decode, "query server time (now64) returned no row")
        })?;
        // Only queries that finished at least `query_log_delay` ago are read: by then the log
        // has been flushed, so each query falls into exactly one window.
        let to_us = now_us - self.cfg.query_log_delay.as_micros() as i64;
        let from_us = {
            let mut state = self.state.lock().expect("query log state poisoned");
            // Counting starts with the queries that finish from the first scrape on.
            let next = *state.next_from_us.get_or_insert(to_us);
            next.max(to_us - self.cfg.query_log_max_catchup.as_micros() as i64)
        };
        // Also on the first scrape, with an empty window: a missing table or grant shows at once.
        let read_log = self.cfg.query_log && to_us >= from_us;
        let query_log = async {
            if read_log {
                let q = ch.query(&self.sql.query_log(from_us, to_us, &self.cfg.query_duration_buckets));
                Some(ch.fetch_all(ctx, "system.query_log", q).await)
            } else {
                None
            }
        };
        let cluster = async {
            match self.sql.cluster_replicas() {
                Some(sql) => Some(ch.fetch_all(ctx, "system.clusters", ch.query(&sql)).await),
                None => None,
            }
        };
        // Each table on its own: one failing query (a missing grant, a missing table) leaves the
        // others reported; its error is a partial error of the source.
        let event_names = health::EVENTS.map(|(name, _, _)| name);
        let metric_names = health::METRICS.map(|(name, _, _)| name);
        let (disks, processes, parts, replicas, mutations, versions, log_rows, cluster, health_rows) = tokio::join!(
            ch.fetch_all(ctx, "system.disks", ch.query(&self.sql.disks())),
            ch.fetch_all(ctx, "system.processes", ch.query(&self.sql.processes())),
            ch.fetch_all(ctx, "system.parts", ch.query(&self.sql.parts())),
            ch.fetch_all(ctx, "system.replicas", ch.query(&self.sql.replicas())),
            ch.fetch_all(ctx, "system.mutations", ch.query(&self.sql.mutations())),
            ch.fetch_all(ctx, "system.build_options", ch.query(&self.sql.version())),
            query_log,
            cluster,
            async {
                tokio::join!(
                    ch.fetch_all(ctx, "system.events", ch.query(&self.sql.counters(false, &event_names))),
                    ch.fetch_all(ctx, "system.metrics", ch.query(&self.sql.counters(true, &metric_names))),
                    ch.fetch_all(ctx, "system.errors", ch.query(&self.sql.errors())),
                    ch.fetch_all(ctx, "system.detached_parts", ch.query(&self.sql.detached_parts())),
                    ch.fetch_all(ctx, "system.distribution_queue", ch.query(&self.sql.distribution_queue())),
                )
            },
        );
        let mut errors = Vec::new();
        let mut tables_up = Vec::new();
        let mut seen = |table: &'static str, ok: bool| tables_up.push((table, ok));
        let disks = take("disks", disks, &mut seen, &mut errors);
        let processes = take("processes", processes, &mut seen, &mut errors);
        let parts = take("parts", parts, &mut seen, &mut errors);
        let replicas = take("replicas", replicas, &mut seen, &mut errors);
        let mutations = take("mutations", mutations, &mut seen, &mut errors);
        let versions = take("build_options", versions, &mut seen, &mut errors);
        let log_rows = log_rows.map(|r| take("query_log", r, &mut seen, &mut errors));
        let (events, metrics, server_errors, detached, distribution) = health_rows;
        let health = health::HealthRows {
            events: take("events", events, &mut seen, &mut errors),
            metrics: take("metrics", metrics, &mut seen, &mut errors),
            errors: take("errors", server_errors, &mut seen, &mut errors),
            detached: take("detached_parts", detached, &mut seen, &mut errors),
            distribution: take("distribution_queue", distribution, &mut seen, &mut errors),
            uptime: versions.iter().map(|v: &model::VersionRow| (v.replica.clone(), v.uptime_seconds)).collect(),
        };
        let cluster = cluster.and_then(|r| r.map_err(|e| errors.push(e)).ok());
        if tables_up.iter().all(|(_, up)| !up) {
            // Nothing could be read: the source is down, with the first error.
            return Err(errors.remove(0));
        }
        let snapshot = Snapshot { disks, processes, parts, replicas, mutations, versions, health, cluster, tables_up };
        let mut state = self.state.lock().expect("query log state poisoned");
        if let Some(rows) = &log_rows {
            if snapshot.tables_up.contains(&("query_log", true)) {
                state.stats.apply(rows, to_us);
                state.next_from_us = Some(to_us);
            }
        }
        Ok(SourceOutput {
            families: model::families(&snapshot, &state.stats),
            status: Some(StatusSection::new("clickhouse", &model::status(&snapshot, &state.stats))),
            partial_errors: errors,
        })
    }
}

/// The rows of one table's query, or none with its error kept for the source's partial errors.
fn take<T>(
    table: &'static str,
    result: Result<Vec<T>, SourceError>,
    seen: &mut impl FnMut(&'static str, bool),
    errors: &mut Vec<SourceError>,
) -> Vec<T> {
    seen(table, result.is_ok());
    result.unwrap_or_else(|e| {
        errors.push(e);
        Vec::new()
    })
}
