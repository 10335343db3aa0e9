//! ClickHouse access shared by the ClickHouse-backed sources: one client per source, every
//! query bounded on the server too, read rows recorded, errors classified.

pub mod bounded;
pub mod config;
pub mod text;

use std::path::Path;
use std::sync::{Arc, Once};
use std::time::Duration;

use clickhouse::query::Query;
use clickhouse::{RowOwned, RowRead};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::config::ConfigError;
use crate::framework::{ErrorKind, SourceContext, SourceError, Usage};
use config::{ClickHouseConfig, RawClickHouseTls, DEFAULT_CLICKHOUSE_TIMEOUT};

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

/// `max_execution_time`'s MAX in the shipped monitoring profile (deploy/clickhouse/monitoring-user*.sql;
/// tests/monitoring_user.rs checks they agree): a source timeout above it fails with code 452.
pub const PROFILE_MAX_EXECUTION_TIME: Duration = Duration::from_secs(60);
/// `max_result_rows` of the shipped monitoring profile: a larger result fails with code 158.
pub const PROFILE_MAX_RESULT_ROWS: u64 = 200_001;

/// The warning of `--config.check` for a ClickHouse source whose `timeout` the shipped
/// monitoring profile would refuse (every query fails with code 452), if it would.
pub fn timeout_warning(source: &str, timeout: Duration) -> Option<String> {
    // Sent as whole seconds, at least 1 (see ClickHouse::new).
    (timeout.as_secs() > PROFILE_MAX_EXECUTION_TIME.as_secs()).then(|| {
        format!(
            "sources.{source}.timeout {}s is sent as max_execution_time, above the shipped profile's MAX {}s: \
             such a server refuses every query with code 452 (lower the timeout or raise the MAX)",
            timeout.as_secs(),
            PROFILE_MAX_EXECUTION_TIME.as_secs()
        )
    })
}

/// Starts the `log_comment` of every query the exporter sends.
pub const LOG_COMMENT_PREFIX: &str = "polo-exporter:";

/// Marks the exporter's own queries in `system.query_log` and `system.processes`.
pub fn log_comment(source: &str) -> String {
    format!("{LOG_COMMENT_PREFIX}{source}")
}

/// The default `timeout` of a ClickHouse source: `clickhouse.timeout`.
pub fn default_timeout(clickhouse: Option<&ClickHouseConfig>) -> Duration {
    clickhouse.map_or(DEFAULT_CLICKHOUSE_TIMEOUT, |c| c.timeout)
}

/// TLS to an `https://` ClickHouse (ClickHouse Cloud serves only HTTPS, port 8443): rustls
/// with the system's CA certificates or `clickhouse.tls.ca_file`, optionally a client certificate.
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<rustls::ClientConfig>,
    pub insecure_skip_verify: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("Tls").field("insecure_skip_verify", &self.insecure_skip_verify).finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the files of `clickhouse.tls` (relative to `base`); errors name the key.
    pub fn from_raw(
        raw: RawClickHouseTls,
        base: &Path,
        invalid: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<Tls, ConfigError> {
        let resolve = |p: &Path| if p.is_relative() { base.join(p) } else { p.to_path_buf() };
        let read_certs = |key: &str, path: &Path| -> Result<Vec<CertificateDer<'static>>, ConfigError> {
            let path = resolve(path);
            let certs = CertificateDer::pem_file_iter(&path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| invalid(key, format!("cannot read certificates from {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(invalid(key, format!("{} holds no PEM certificate", path.display())));
            }
            Ok(certs)
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("clickhouse.tls", e.to_string()))?;
        let insecure = raw.insecure_skip_verify.unwrap_or(false);
        let builder = if insecure {
            if raw.ca_file.is_some() {
                return Err(invalid(
                    "clickhouse.tls.insecure_skip_verify",
                    "contradicts clickhouse.tls.ca_file; set one of them".into(),
                ));
            }
            builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            if let Some(ca_file) = &raw.ca_file {
                for ca in read_certs("clickhouse.tls.ca_file", ca_file)? {
                    roots.add(ca).map_err(|e| invalid("clickhouse.tls.ca_file", format!("not a usable CA: {e}")))?;
                }
            } else {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
                if roots.is_empty() {
                    return Err(invalid(
                        "clickhouse.url",
                        "is https and this system has no CA certificates (install ca-certificates or set clickhouse.tls.ca_file)"
                            .into(),
                    ));
                }
            }
            builder.with_root_certificates(roots)
        };
        let config = match (&raw.cert_file, &raw.key_file) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert_file), Some(key_file)) => {
                let certs = read_certs("clickhouse.tls.cert_file", cert_file)?;
                let key_path = resolve(key_file);
                let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| {
                    invalid(
                        "clickhouse.tls.key_file",
                        format!("cannot read a private key from {}: {e}", key_path.display()),
                    )
                })?;
                builder.with_client_auth_cert(certs, key).map_err(|e| {
                    invalid("clickhouse.tls.key_file", format!("does not match clickhouse.tls.cert_file: {e}"))
                })?
            }
            (Some(_), None) => return Err(invalid("clickhouse.tls.cert_file", "needs clickhouse.tls.key_file".into())),
            (None, Some(_)) => return Err(invalid("clickhouse.tls.key_file", "needs clickhouse.tls.cert_file".into())),
        };
        // ALPN is set by the connector (HTTP/1.1 only).
        Ok(Tls { config: Arc::new(config), insecure_skip_verify: insecure })
    }
}

/// `insecure_skip_verify`: any certificate is accepted; signatures are still checked.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

// Every connection bounds error answers (bounded.rs). As the clickhouse crate's own client: TCP
// keepalive, and idle connections dropped before the server's 3 s keep-alive timeout closes them.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

fn http_client(tls: Option<&Tls>) -> clickhouse::Client {
    let mut http = HttpConnector::new();
    http.set_keepalive(Some(TCP_KEEPALIVE));
    let mut builder = hyper_util::client::legacy::Client::builder(TokioExecutor::new());
    builder.pool_idle_timeout(POOL_IDLE_TIMEOUT);
    match tls {
        None => clickhouse::Client::with_http_client(builder.build(bounded::Bounded(http))),
        Some(tls) => {
            static WARN: Once = Once::new();
            if tls.insecure_skip_verify {
                WARN.call_once(|| {
                    tracing::warn!(
                        "clickhouse.tls.insecure_skip_verify is set: the ClickHouse server's certificate is NOT verified; \
                         anyone on the path can read the queries and the password"
                    )
                });
            }
            http.enforce_http(false);
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config((*tls.config).clone())
                .https_only()
                .enable_http1()
                .wrap_connector(http);
            clickhouse::Client::with_http_client(builder.build(bounded::Bounded(https)))
        }
    }
}

/// Keys whose invalid bytes were logged, per source; beyond this many, no more such lines.
const MAX_LOGGED_INVALID_KEYS: usize = 1000;
/// Longest key in a log line, in characters.
const MAX_LOGGED_KEY_CHARS: usize = 120;

#[derive(Clone)]
pub struct ClickHouse {
    client: clickhouse::Client,
    database: String,
    source: &'static str,
    /// Keys already logged for holding invalid bytes (each is logged once).
    logged_invalid: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl ClickHouse {
    pub fn new(cfg: &ClickHouseConfig, source: &'static str, timeout: Duration) -> Self {
        let client = http_client(cfg.tls.as_ref())
            .with_url(&cfg.url)
            .with_user(&cfg.user)
            .with_password(cfg.password.expose())
            // Stop the work on the server when the exporter's deadline has passed.
            .with_setting("max_execution_time", timeout.as_secs().max(1).to_string())
            .with_setting("cancel_http_readonly_queries_on_client_close", "1")
            // Makes X-ClickHouse-Summary complete, so read_rows is exact. Results are small.
            .with_setting("wait_end_of_query", "1")
            .with_setting("log_comment", log_comment(source));
        Self { client, database: cfg.database.clone(), source, logged_invalid: Arc::default() }
    }

    /// A table of the configured database, qualified (the name was validated as an identifier).
    pub fn table(&self, name: &str) -> String {
        format!("{}.{}", self.database, name)
    }

    /// The configured database's name.
    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn query(&self, sql: &str) -> Query {
        self.client.query(sql)
    }

    /// Runs `query` and decodes all rows; `what` names the query in errors.
    pub async fn fetch_all<T>(&self, ctx: &SourceContext, what: &str, query: Query) -> Result<Vec<T>, SourceError>
    where
        T: RowOwned + RowRead + text::RowKey,
    {
        let mut rows = Vec::new();
        self.fetch_each(ctx, what, query, |row| rows.push(row)).await?;
        Ok(rows)
    }

    /// Runs `query` and hands each row to `each` as it is decoded, so a large answer is never
    /// held whole; on an error the rows handed so far were all real rows of the answer.
    pub async fn fetch_each<T>(
        &self,
        ctx: &SourceContext,
        what: &str,
        query: Query,
        mut each: impl FnMut(T),
    ) -> Result<(), SourceError>
    where
        T: RowOwned + RowRead + text::RowKey,
    {
        let fail = |err: clickhouse::error::Error| match tls_problem(&err) {
            Some(problem) => SourceError::with_cause(
                ErrorKind::Connect,
                format!("query {what} failed: TLS handshake with the ClickHouse server failed: {problem}"),
                err,
            ),
            None => {
                let hint = match &err {
                    clickhouse::error::Error::BadResponse(text) => {
                        exception_code(text).and_then(|code| explain_code(code, text))
                    }
                    _ => None,
                };
                let context = match hint {
                    Some(hint) => format!("query {what} failed: {hint}"),
                    None => format!("query {what} failed"),
                };
                SourceError::with_cause(classify(&err), context, err)
            }
        };
        let mut cursor = query.fetch::<T>().map_err(fail)?;
        loop {
            let (next, invalid) = text::counting(cursor.next()).await;
            let Some(row) = next.map_err(fail)? else { break };
            if invalid > 0 {
                ctx.add(Usage::InvalidValues, invalid);
                self.log_invalid(what, &row.key(), invalid);
            }
            each(row);
        }
        if let Some(read) = cursor.summary().and_then(|s| s.read_rows()) {
            ctx.add(Usage::ClickHouseReadRows, read);
        }
        Ok(())
    }
}

impl ClickHouse {
    /// One warning per key (up to [`MAX_LOGGED_INVALID_KEYS`]) with the key, never the value.
    fn log_invalid(&self, what: &str, key: &str, fields: u64) {
        let mut logged = self.logged_invalid.lock().expect("logged keys poisoned");
        if logged.len() >= MAX_LOGGED_INVALID_KEYS || !logged.insert(key.to_string()) {
            return;
        }
        let last = logged.len() == MAX_LOGGED_INVALID_KEYS;
        tracing::warn!(
            source = self.source,
            query = what,
            key = %text::shorten(key, MAX_LOGGED_KEY_CHARS),
            fields,
            "a row holds bytes that are not UTF-8: decoded with U+FFFD and a hash suffix \
             (counted in polo_exporter_invalid_values_total){}",
            if last { "; no more such lines for this source" } else { "" }
        );
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

/// The TLS failure behind a client error, said for an operator (which certificate check failed
/// and what to change), or None when the failure is not about TLS.
pub fn tls_problem(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        // io::Error::source() skips the error it wraps (and the connector wraps one io::Error
        // in another), so look inside explicitly.
        let mut inner: &(dyn std::error::Error + 'static) = e;
        while let Some(wrapped) = inner.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            inner = wrapped;
        }
        if let Some(tls) = inner.downcast_ref::<rustls::Error>().or_else(|| e.downcast_ref()) {
            return Some(explain_tls(tls));
        }
        next = e.source();
    }
    None
}

fn explain_tls(err: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match err {
        rustls::Error::InvalidCertificate(cert) => {
            let why = match cert {
                C::UnknownIssuer => "the server's certificate is not signed by a trusted CA (set clickhouse.tls.ca_file to the CA that signed it)".to_string(),
                C::Expired | C::ExpiredContext { .. } => "the server's certificate has expired".to_string(),
                C::NotValidYet | C::NotValidYetContext { .. } => "the server's certificate is not valid yet (check the clocks)".to_string(),
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    "the server's certificate is not valid for the host name in clickhouse.url".to_string()
                }
                C::Revoked => "the server's certificate is revoked".to_string(),
                other => format!("the server's certificate was rejected: {other:?}"),
            };
            format!("{why} ({err})")
        }
        rustls::Error::AlertReceived(alert) => {
            format!("the server refused the handshake ({alert:?}; a client certificate may be required: clickhouse.tls.cert_file)")
        }
        other => other.to_string(),
    }
}

/// What an operator must change for the exception codes a first deployment meets; None for
/// the others. `text` is ClickHouse's message (the setting or grant is taken from it).
pub fn explain_code(code: i64, text: &str) -> Option<String> {
    let quoted = |after: &str| {
        let rest = &text[text.find(after)? + after.len()..];
        let rest = rest.trim_start_matches(['\'', '`', ' ']);
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        (!name.is_empty()).then_some(name)
    };
    let profile = "deploy/clickhouse/monitoring-user.sql";
    Some(match code {
        164 => match quoted("Cannot modify ") {
            Some(setting) => format!(
                "the user's settings profile is readonly=1 and refuses the setting {setting} the exporter sends with every query \
                 (make it CHANGEABLE_IN_READONLY or use readonly=2 with constraints: {profile})"
            ),
            None => format!("the user is readonly and the statement needs more ({profile})"),
        },
        452 => {
            let setting = quoted("Setting ").unwrap_or_else(|| "a setting".into());
            format!(
                "a constraint of the user's settings profile refuses {setting} as the exporter sends it \
                 (max_execution_time is the source's timeout: lower it below the profile's MAX, or raise the MAX in {profile})"
            )
        }
        497 => format!("the user lacks a grant; ClickHouse names it above; the grants are in {profile}"),
        516 | 192 | 193 | 194 => "authentication failed: check clickhouse.user and its password".to_string(),
        195 => "the user may not connect from the exporter's address (HOST clause of the user)".to_string(),
        159 => "the query ran past max_execution_time (the source's timeout, or a lower limit of the user's profile)"
            .to_string(),
        158 | 396 => format!(
            "the result is larger than the profile's max_result_rows allows: lower the source's row bound or raise the limit in {profile}"
        ),
        279 | 210 => "a replica could not be reached (cluster mode sends skip_unavailable_shards = 1, which the user's profile must allow)"
            .to_string(),
        _ => return None,
    })
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
    fn first_deployment_errors_name_what_to_fix() {
        let readonly = "Code: 164. DB::Exception: Cannot modify 'log_comment' setting in readonly mode. (READONLY)";
        let hint = explain_code(164, readonly).unwrap();
        assert!(hint.contains("setting log_comment") && hint.contains("CHANGEABLE_IN_READONLY"), "{hint}");
        let constraint =
            "Code: 452. DB::Exception: Setting max_execution_time shouldn't be greater than 60. (SETTING_CONSTRAINT_VIOLATION)";
        let hint = explain_code(452, constraint).unwrap();
        assert!(hint.contains("refuses max_execution_time") && hint.contains("timeout"), "{hint}");
        assert!(explain_code(158, "Code: 158. Limit for rows").unwrap().contains("max_result_rows"));
        assert!(explain_code(159, "Code: 159. Timeout exceeded").unwrap().contains("max_execution_time"));
        assert_eq!(explain_code(60, "Code: 60. Table x does not exist"), None);
        // Each is filed as auth, limit or timeout, not as a query error.
        for (code, kind) in [
            (164, ErrorKind::Auth),
            (452, ErrorKind::Auth),
            (497, ErrorKind::Auth),
            (158, ErrorKind::Limit),
            (159, ErrorKind::Timeout),
        ] {
            assert_eq!(CodeClass::of(code).error_kind(), kind, "{code}");
        }
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
