//! `--web.config.file`: the Prometheus exporter-toolkit web configuration (TLS, basic auth,
//! response headers, rate limit), parsed strictly and validated at start.

mod rate;
mod sans;
mod tls;

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine;
use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use tokio_rustls::rustls;

pub use rate::RateLimit;
use tls::{tls_config, RawTls};

use crate::config::duration::PromDuration;

use crate::config::{bounds, line_of_key, parse, ConfigError};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    /// Serve HTTPS with this certificate and key.
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    /// user → bcrypt hash; when set, every request needs HTTP basic auth.
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
    #[serde(default)]
    http_server_config: Option<RawHttpServer>,
    /// Requests served per interval, with a burst; beyond, 429.
    #[serde(default)]
    rate_limit: Option<RawRateLimit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    /// One more request allowed per interval (a duration above 0).
    interval: PromDuration,
    /// Requests allowed at once (at least 1).
    burst: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpServer {
    /// Headers added to every response (e.g. Strict-Transport-Security).
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Accepted for compatibility (default true); this server speaks HTTP/1.1 only, so it
    /// changes nothing.
    #[serde(default)]
    #[allow(dead_code)] // parsed (a bool or an error), nothing to switch
    http2: Option<bool>,
}

/// The validated web configuration.
pub struct WebSecurity {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    users: BTreeMap<String, String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub rate_limit: Option<RateLimit>,
    /// Credentials already verified (keyed hashes), so bcrypt runs once per user and password.
    verified: Mutex<HashSet<u64>>,
    hasher: RandomState,
    /// A hash of the users' highest cost that no password matches: an unknown user costs what
    /// a known one does, so user names cannot be probed by timing.
    dummy_hash: Option<String>,
    /// bcrypt runs at most [`BCRYPT_CONCURRENCY`] at a time ...
    bcrypt: Arc<tokio::sync::Semaphore>,
    /// ... and at most [`BCRYPT_QUEUE`] requests wait for a turn; beyond, 401 at once.
    bcrypt_waiting: std::sync::atomic::AtomicUsize,
}

/// bcrypt verifications running at once (each takes a core for ~0.1 s at cost 10).
pub const BCRYPT_CONCURRENCY: usize = 2;
/// Requests waiting for a bcrypt turn; a request beyond is refused (401) without bcrypt.
pub const BCRYPT_QUEUE: usize = 16;

impl WebSecurity {
    /// No TLS, no authentication, no extra headers.
    pub fn open() -> Self {
        Self {
            tls: None,
            users: BTreeMap::new(),
            headers: Vec::new(),
            rate_limit: None,
            verified: Mutex::default(),
            hasher: RandomState::new(),
            dummy_hash: None,
            bcrypt: Arc::new(tokio::sync::Semaphore::new(BCRYPT_CONCURRENCY)),
            bcrypt_waiting: Default::default(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_yaml(&bounds::read(path)?, path)
    }

    /// Parses and validates `text`; `path` names it in errors and anchors relative file paths.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let text = &bounds::normalize_line_breaks(text);
        let raw: RawWebConfig = parse(text, path)?;
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            line: line_of_key(text, key),
            message,
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let tls = raw.tls_server_config.map(|t| tls_config(t, base, &invalid)).transpose()?;
        let users = raw.basic_auth_users.unwrap_or_default();
        let mut max_cost = None;
        for (user, hash) in &users {
            let key = format!("basic_auth_users.{user}");
            if user.contains(':') {
                return Err(invalid(&key, "a user name cannot hold ':' (HTTP basic auth splits there)".into()));
            }
            if !(hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$")) {
                return Err(invalid(&key, format!("the hash of user {user:?} must be a bcrypt hash ($2a$/$2b$/$2y$)")));
            }
            // The whole hash is parsed (cost, 22 characters of salt, 31 of hash), so a damaged
            // one is refused here instead of rejecting every request of that user in silence.
            let parts = hash
                .parse::<bcrypt::HashParts>()
                .map_err(|e| invalid(&key, format!("the hash of user {user:?} is not a valid bcrypt hash ({e})")))?;
            max_cost = max_cost.max(Some(parts.get_cost()));
        }
        let dummy_hash = match max_cost {
            None => None,
            Some(cost) => Some(
                bcrypt::hash(format!("{:x}", RandomState::new().hash_one(0u8)), cost)
                    .map_err(|e| invalid("basic_auth_users", format!("cannot make a bcrypt hash: {e}")))?,
            ),
        };
        let rate_limit = match raw.rate_limit {
            None => None,
            Some(r) if r.interval.0.is_zero() => {
                return Err(invalid(
                    "rate_limit.interval",
                    "must be above 0 (leave rate_limit out for no limit)".into(),
                ))
            }
            Some(r) if r.burst == 0 => {
                return Err(invalid("rate_limit.burst", "must be at least 1 (0 would refuse every request)".into()))
            }
            Some(r) => Some(RateLimit::new(r.interval.0, r.burst)),
        };
        let mut headers = Vec::new();
        for (name, value) in raw.http_server_config.map(|h| h.headers).unwrap_or_default() {
            let key = format!("http_server_config.headers.{name}");
            let n =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid(&key, "is not a header name".into()))?;
            let v = HeaderValue::from_str(&value).map_err(|_| invalid(&key, "is not a valid header value".into()))?;
            headers.push((n, v));
        }
        Ok(Self {
            tls,
            users,
            headers,
            rate_limit,
            verified: Mutex::default(),
            hasher: RandomState::new(),
            dummy_hash,
            bcrypt: Arc::new(tokio::sync::Semaphore::new(BCRYPT_CONCURRENCY)),
            bcrypt_waiting: Default::default(),
        })
    }

    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// Checks an `Authorization` header value against the users; bcrypt runs off the async
    /// threads, [`BCRYPT_CONCURRENCY`] at a time. The scheme is matched case-insensitively.
    pub async fn authorized(&self, header: Option<&str>) -> bool {
        let Some((user, password)) = header
            .and_then(|h| h.trim_start().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .and_then(|(_, b)| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_string(), p.to_string())))
        else {
            return false;
        };
        let known = self.users.get(&user).cloned();
        let Some(hash) = known.clone().or_else(|| self.dummy_hash.clone()) else { return false };
        let key = self.hasher.hash_one((&user, &password, &hash));
        if known.is_some() && self.verified.lock().expect("auth cache poisoned").contains(&key) {
            return true;
        }
        use std::sync::atomic::Ordering;
        if self.bcrypt_waiting.fetch_add(1, Ordering::AcqRel) >= BCRYPT_QUEUE {
            self.bcrypt_waiting.fetch_sub(1, Ordering::AcqRel);
            tracing::debug!("basic auth: too many requests waiting for bcrypt; refused without checking");
            return false;
        }
        let permit = Arc::clone(&self.bcrypt).acquire_owned().await;
        self.bcrypt_waiting.fetch_sub(1, Ordering::AcqRel);
        let Ok(permit) = permit else { return false };
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            bcrypt::verify(password, &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        // The dummy hash matches no password; and an unknown user is never let in.
        let ok = ok && known.is_some();
        if ok {
            self.verified.lock().expect("auth cache poisoned").insert(key);
        }
        ok
    }
}
