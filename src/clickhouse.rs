//! ClickHouse access shared by the ClickHouse-backed sources: one client per source, every
//! query bounded on the server too, read rows recorded, errors classified.

use std::time::Duration;

use clickhouse::query::Query;
use clickhouse::{RowOwned, RowRead};

use crate::config::ClickHouseConfig;
use crate::framework::{ErrorKind, SourceContext, SourceError};

/// ClickHouse error codes that mean "who you are / what you may do" rather than a bad query.
const AUTH_CODES: [u32; 6] = [192, 193, 194, 195, 497, 516];
/// TIMEOUT_EXCEEDED: the server-side `max_execution_time` stopped the query.
const TIMEOUT_CODE: u32 = 159;

/// Starts the `log_comment` of every query the exporter sends.
pub const LOG_COMMENT_PREFIX: &str = "polo-exporter:";

/// Marks the exporter's own queries in `system.query_log` and `system.processes`.
pub fn log_comment(source: &str) -> String {
    format!("{LOG_COMMENT_PREFIX}{source}")
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
            ctx.add_read_rows(read);
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
        E::BadResponse(text) => match exception_code(text) {
            Some(code) if AUTH_CODES.contains(&code) => ErrorKind::Auth,
            Some(TIMEOUT_CODE) => ErrorKind::Timeout,
            _ => ErrorKind::Query,
        },
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
fn exception_code(text: &str) -> Option<u32> {
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
        assert_eq!(classify(&E::NotEnoughData), ErrorKind::Decode);
    }

    #[test]
    fn parses_exception_code() {
        assert_eq!(exception_code("Code: 60. DB::Exception"), Some(60));
        assert_eq!(exception_code("nothing"), None);
    }
}
