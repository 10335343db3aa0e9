//! Source `clickhouse_system`: ClickHouse health from its system tables (disks, query latency
//! and failures, running queries, parts, replication, mutations, version), on the node
//! answering or, with `clickhouse.cluster`, on every replica of the cluster.

pub mod model;
pub mod sql;

use std::sync::Mutex;

use crate::clickhouse::ClickHouse;
use crate::config::{ClickHouseSystemConfig, Config};
use crate::framework::{Backend, Source, SourceContext, SourceError, SourceOutput};
use model::{QueryStats, Snapshot};
use sql::Sql;

pub struct ClickHouseSystem {
    ch: ClickHouse,
    sql: Sql,
    cfg: ClickHouseSystemConfig,
    state: Mutex<QueryLogState>,
}

/// Query statistics so far, and where the next query-log window starts.
struct QueryLogState {
    stats: QueryStats,
    next_from_us: i64,
}

impl ClickHouseSystem {
    pub fn new(cfg: &Config) -> Self {
        let system = cfg.clickhouse_system.clone();
        let sql = Sql::new(cfg.clickhouse.cluster.as_deref(), &system.databases, system.max_rows);
        // Counting starts with the queries that finish from now on.
        let next_from_us = now_us() - system.query_log_delay.as_micros() as i64;
        Self {
            ch: ClickHouse::new(&cfg.clickhouse, "clickhouse_system", cfg.sources.clickhouse_system.timeout),
            sql,
            state: Mutex::new(QueryLogState {
                stats: QueryStats::new(system.query_duration_buckets.clone()),
                next_from_us,
            }),
            cfg: system,
        }
    }
}

#[async_trait::async_trait]
impl Source for ClickHouseSystem {
    fn name(&self) -> &'static str {
        "clickhouse_system"
    }

    fn backend(&self) -> Backend {
        Backend::ClickHouse
    }

    async fn collect(&self, ctx: &SourceContext) -> Result<SourceOutput, SourceError> {
        // Only queries that finished at least `query_log_delay` ago are read: by then the log
        // has been flushed, so each query falls into exactly one window.
        let to_us = now_us() - self.cfg.query_log_delay.as_micros() as i64;
        let from_us = {
            let state = self.state.lock().expect("query log state poisoned");
            state.next_from_us.max(to_us - self.cfg.query_log_max_catchup.as_micros() as i64)
        };
        let read_log = self.cfg.query_log && to_us > from_us;
        let ch = &self.ch;
        let query_log = async {
            if read_log {
                let q = ch.query(&self.sql.query_log(from_us, to_us, &self.cfg.query_duration_buckets));
                ch.fetch_all(ctx, "system.query_log", q).await
            } else {
                Ok(Vec::new())
            }
        };
        let (disks, processes, parts, replicas, mutations, versions, log_rows) = tokio::try_join!(
            ch.fetch_all(ctx, "system.disks", ch.query(&self.sql.disks())),
            ch.fetch_all(ctx, "system.processes", ch.query(&self.sql.processes())),
            ch.fetch_all(ctx, "system.parts", ch.query(&self.sql.parts())),
            ch.fetch_all(ctx, "system.replicas", ch.query(&self.sql.replicas())),
            ch.fetch_all(ctx, "system.mutations", ch.query(&self.sql.mutations())),
            ch.fetch_all(ctx, "system.build_options", ch.query(&self.sql.version())),
            query_log,
        )?;
        let snapshot = Snapshot { disks, processes, parts, replicas, mutations, versions };
        let mut state = self.state.lock().expect("query log state poisoned");
        if read_log {
            state.stats.apply(&log_rows, to_us);
            state.next_from_us = to_us;
        }
        Ok(SourceOutput {
            families: model::families(&snapshot, &state.stats),
            status: vec![("clickhouse", model::status(&snapshot, &state.stats))],
            ..SourceOutput::default()
        })
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}
