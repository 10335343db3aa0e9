//! ClickHouse access shared by the ClickHouse-backed sources: one client per source, every
//! query bounded on the server too, read rows recorded, errors classified.

use std::time::Duration;

use clickhouse::query::Query;
use clickhouse::{RowOwned, RowRead};

use crate::config::{ClickHouseConfig, Shared, DEFAULT_CLICKHOUSE_TIMEOUT};
use crate::framework::{ErrorKind, SourceContext, SourceError, Usage};

/// Classes of ClickHouse exception codes: one table for the exporter's own failures
/// (`polo_exporter_source_errors_total{kind}`) and for the failures it reports
/// (`polo_clickhouse_failed_queries_total{class}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CodeClass {
    Timeout,
    Memory,
    TooManyParts,
    Limit,
    Access,
    Query,
    Cancelled,
    Other,
}

impl CodeClass {
    pub const ALL: [CodeClass; 8] = [
        Self::Timeout,
        Self::Memory,
        Self::TooManyParts,
        Self::Limit,
        Self::Access,
        Self::Query,
        Self::Cancelled,
        Self::Other,
    ];

    pub fn of(code: i64) -> Self {
        match code {
            // TIMEOUT_EXCEEDED, TOO_SLOW, SOCKET_TIMEOUT
            159 | 160 | 209 => Self::Timeout,
            // MEMORY_LIMIT_EXCEEDED, CANNOT_ALLOCATE_MEMORY
            173 | 241 => Self::Memory,
            // TOO_MANY_PARTS
            252 => Self::TooManyParts,
            // TOO_MANY_ROWS, QUOTA_EXCEEDED, TOO_MANY_SIMULTANEOUS_QUERIES, TOO_MANY_BYTES, TOO_MANY_ROWS_OR_BYTES
            158 | 201 | 202 | 307 | 396 => Self::Limit,
            // READONLY, UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD, IP_ADDRESS_NOT_ALLOWED,
            // SETTING_CONSTRAINT_VIOLATION, ACCESS_DENIED, AUTHENTICATION_FAILED
            164 | 192 | 193 | 194 | 195 | 452 | 497 | 516 => Self::Access,
            // syntax, unknown identifiers, tables, databases, functions, types
            16 | 36 | 42 | 43 | 46 | 47 | 53 | 60 | 62 | 81 => Self::Query,
            // QUERY_WAS_CANCELLED
            394 => Self::Cancelled,
            _ => Self::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Memory => "memory",
            Self::TooManyParts => "too_many_parts",
            Self::Limit => "limit",
            Self::Access => "access",
            Self::Query => "query",
            Self::Cancelled => "cancelled",
            Self::Other => "other",
        }
    }

    /// How the exporter files its own query failing with a code of this class.
    pub fn error_kind(self) -> ErrorKind {
        match self {
            Self::Timeout => ErrorKind::Timeout,
            Self::Access => ErrorKind::Auth,
            Self::Limit | Self::TooManyParts => ErrorKind::Limit,
            Self::Memory | Self::Query | Self::Cancelled | Self::Other => ErrorKind::Query,
        }
    }
}

/// Starts the `log_comment` of every query the exporter sends.
pub const LOG_COMMENT_PREFIX: &str = "polo-exporter:";

/// Marks the exporter's own queries in `system.query_log` and `system.processes`.
pub fn log_comment(source: &str) -> String {
    format!("{LOG_COMMENT_PREFIX}{source}")
}

/// The default `timeout` of a ClickHouse source: `clickhouse.timeout`.
pub fn default_timeout(shared: &Shared) -> Duration {
    shared.clickhouse.map_or(DEFAULT_CLICKHOUSE_TIMEOUT, |c| c.timeout)
}

#[derive(Clone)]
pub struct ClickHouse {
    client: clickhouse::Client,
    database: String,
}

impl ClickHouse {
    pub fn new(cfg: &ClickHouseConfig, source: &str, timeout: Duration) -> Self {
        let client = clickhouse::Client::default()
            .with_url(&cfg.url)
            .with_user(&cfg.user)
            .with_password(cfg.password.expose())
            // Stop the work on the server when the exporter's deadline has passed.
            .with_setting("max_execution_time", timeout.as_secs().max(1).to_string())
            .with_setting("cancel_http_readonly_queries_on_client_close", "1")
            // Makes X-ClickHouse-Summary complete, so read_rows is exact. Results are small.
            .with_setting("wait_end_of_query", "1")
            .with_setting("log_comment", log_comment(source));
        Self { client, database: cfg.database.clone() }
    }

    /// A table of the configured database, qualified (the name was validated as an identifier).
    pub fn table(&self, name: &str) -> String {
        format!("{}.{}", self.database, name)
    }

    pub fn query(&self, sql: &str) -> Query {
        self.client.query(sql)
    }

    /// Runs `query` and decodes all rows; `what` names the query in errors.
    pub async fn fetch_all<T>(&self, ctx: &SourceContext, what: &str, query: Query) -> Result<Vec<T>, SourceError>
    where
        T: RowOwned + RowRead,
    {
        let fail = |err: clickhouse::error::Error| {
            SourceError::with_cause(classify(&err), format!("query {what} failed"), err)
        };
        let mut cursor = query.fetch::<T>().map_err(fail)?;
        let mut rows = Vec::new();
        while let Some(row) = cursor.next().await.map_err(fail)? {
            rows.push(row);
        }
        if let Some(read) = cursor.summary().and_then(|s| s.read_rows()) {
            ctx.add(Usage::ClickHouseReadRows, read);
        }
        Ok(rows)
    }
}

/// Maps a client error to the fixed set of error kinds.
pub fn classify(err: &clickhouse::error::Error) -> ErrorKind {
    use clickhouse::error::Error as E;
    match err {
        E::Network(_) => ErrorKind::Connect,
        E::TimedOut => ErrorKind::Timeout,
        E::BadResponse(text) => exception_code(text).map_or(ErrorKind::Query, |code| CodeClass::of(code).error_kind()),
        E::DataFormat(_)
        | E::NotEnoughData
        | E::InvalidUtf8Encoding(_)
        | E::InvalidTagEncoding(_)
        | E::Custom(_)
        | E::InvalidColumnsHeader(_)
        | E::SchemaMismatch(_)
        | E::DeserializeAnyNotSupported => ErrorKind::Decode,
        _ => ErrorKind::Query,
    }
}

/// The `N` of a ClickHouse error text starting `Code: N.`.
fn exception_code(text: &str) -> Option<i64> {
    let rest = &text[text.find("Code: ")? + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickhouse::error::Error as E;

    #[test]
    fn classifies_errors() {
        assert_eq!(
            classify(&E::BadResponse("Code: 516. DB::Exception: default: Authentication failed".into())),
            ErrorKind::Auth
        );
        assert_eq!(
            classify(&E::BadResponse("Code: 60. DB::Exception: Table polo.x does not exist".into())),
            ErrorKind::Query
        );
        assert_eq!(classify(&E::BadResponse("Code: 159. DB::Exception: Timeout exceeded".into())), ErrorKind::Timeout);
        assert_eq!(classify(&E::BadResponse("bad gateway".into())), ErrorKind::Query);
        assert_eq!(
            classify(&E::BadResponse("Code: 164. DB::Exception: Cannot modify setting in readonly mode".into())),
            ErrorKind::Auth
        );
        assert_eq!(
            classify(&E::BadResponse(
                "Code: 452. DB::Exception: Setting max_execution_time should not be greater than 5".into()
            )),
            ErrorKind::Auth
        );
        assert_eq!(
            classify(&E::BadResponse("Code: 158. DB::Exception: Limit for rows exceeded".into())),
            ErrorKind::Limit
        );
        assert_eq!(classify(&E::NotEnoughData), ErrorKind::Decode);
    }

    #[test]
    fn classes_of_codes() {
        assert_eq!(CodeClass::of(159), CodeClass::Timeout);
        assert_eq!(CodeClass::of(252), CodeClass::TooManyParts);
        assert_eq!(CodeClass::of(497), CodeClass::Access);
        assert_eq!(CodeClass::of(394), CodeClass::Cancelled);
        assert_eq!(CodeClass::of(395), CodeClass::Other);
    }

    #[test]
    fn parses_exception_code() {
        assert_eq!(exception_code("Code: 60. DB::Exception"), Some(60));
        assert_eq!(exception_code("nothing"), None);
    }
}
