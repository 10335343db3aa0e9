//! The HTTP front: `/metrics` (OpenMetrics, classic text or protobuf, from `Accept`), `/`, `/healthz`, `/readyz`, the status API,
//! `/-/reload`; graceful stop.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

mod collect;

use crate::metrics::{self, Def, FamilySet};
use crate::reload::{self, Files, Loaded};

/// Paths of the status API: Polo's System Status page design names `/api/system/status`; `/api/v1/` is the versioned one.
pub const STATUS_PATHS: [&str; 2] = ["/api/v1/system/status", "/api/system/status"];
/// The lifecycle endpoint (with `--web.enable-lifecycle`), as in Prometheus.
pub const RELOAD_PATH: &str = "/-/reload";
/// Without a Prometheus scrape-timeout header, a scrape waits at most this long.
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(30);
/// A scrape-timeout header above this counts as this (no source may run longer: `timeout` <= 10m).
pub const MAX_SCRAPE_TIMEOUT: Duration = Duration::from_secs(600);
/// A scrape waits at least this long, whatever its header says.
pub const MIN_SCRAPE_BUDGET: Duration = Duration::from_millis(100);
/// Scrapes and status requests served at once; more get 503 instead of piling up.
const MAX_IN_FLIGHT: usize = 64;
/// The largest request head (request line and headers, as sent) served; beyond it, 431.
/// hyper's own bound is its read buffer ([`READ_BUFFER`]), which may grow to about twice that
/// before it refuses: the exact bound is checked on the parsed request.
pub const MAX_REQUEST_HEAD: usize = 64 * 1024;
const READ_BUFFER: usize = 64 * 1024;

/// Prometheus's own names for the state of the configuration reloads.
pub static CONFIG_LAST_RELOAD_SUCCESSFUL: Def = Def::gauge(
    "polo_exporter_config_last_reload_successful",
    "1 if the latest configuration reload (SIGHUP or POST /-/reload) succeeded, 0 if it failed and the previous configuration stays in force.",
    &[],
);
pub static CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP: Def = Def::gauge(
    "polo_exporter_config_last_reload_success_timestamp_seconds",
    "When the configuration in force was loaded (start or latest successful reload).",
    &[],
);

/// The families of the configuration's reload state.
pub const RELOAD_FAMILIES: &[&Def] = &[&CONFIG_LAST_RELOAD_SUCCESSFUL, &CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP];

pub struct WebConfig {
    pub telemetry_path: String,
    /// Subtracted from `X-Prometheus-Scrape-Timeout-Seconds` to leave time to encode and send.
    pub scrape_timeout_offset: Duration,
    /// Serve `POST /-/reload` (Prometheus's `--web.enable-lifecycle`).
    pub enable_lifecycle: bool,
}

/// Prometheus's own reload gauges.
#[derive(Debug, Clone, Copy)]
struct ReloadState {
    successful: bool,
    last_success_unix: f64,
}

pub struct App {
    loaded: RwLock<Arc<Loaded>>,
    web: WebConfig,
    files: Option<Files>,
    reload_state: Mutex<ReloadState>,
    reloading: tokio::sync::Mutex<()>,
    in_flight: Semaphore,
}

/// How the server is asked to stop (by signals, see `main`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Running,
    /// Stop accepting; let requests in flight finish within the grace period.
    Graceful(&'static str),
    /// Stop now (a second signal during the grace period).
    Now(&'static str),
}

/// What happened to the connections open when the server was asked to stop.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Connections that ended by themselves (their request answered, or idle and closed).
    pub finished: usize,
    /// Connections still busy when the grace period ended (or a second signal came).
    pub cut: usize,
}

impl App {
    /// `files`: what to read again on reload (None: reload is refused).
    pub fn new(loaded: Loaded, web: WebConfig, files: Option<Files>) -> Arc<Self> {
        Arc::new(Self {
            loaded: RwLock::new(Arc::new(loaded)),
            web,
            files,
            reload_state: Mutex::new(ReloadState { successful: true, last_success_unix: crate::clock::unix_seconds() }),
            reloading: tokio::sync::Mutex::new(()),
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
        })
    }

    /// The configuration in force; a request keeps the one it started with.
    pub fn current(&self) -> Arc<Loaded> {
        Arc::clone(&self.loaded.read().expect("config lock poisoned"))
    }

    /// Reads both configuration files again and, if both are valid, switches to them. On error
    /// the running configuration stays and the reload gauge says so. One log line either way.
    pub async fn reload(&self) -> Result<reload::Summary, String> {
        let _one_at_a_time = self.reloading.lock().await;
        let Some(files) = self.files.clone() else {
            return Err("this server was started without configuration files to reload".into());
        };
        let read = tokio::task::spawn_blocking(move || reload::read(&files))
            .await
            .unwrap_or_else(|e| Err(format!("reading the configuration failed: {e}")));
        let mut state = self.reload_state.lock().expect("reload state poisoned");
        match read {
            Ok((config, security)) => {
                let previous = self.current();
                let (loaded, summary) = Loaded::assemble(&config, security, Some(&previous));
                *self.loaded.write().expect("config lock poisoned") = Arc::new(loaded);
                *state = ReloadState { successful: true, last_success_unix: crate::clock::unix_seconds() };
                tracing::info!(
                    kept = %summary.kept.join(","),
                    started = %summary.started.join(","),
                    stopped = %summary.stopped.join(","),
                    "configuration reloaded"
                );
                Ok(summary)
            }
            Err(error) => {
                state.successful = false;
                tracing::error!(error = %error, "configuration reload failed; the previous configuration stays in force");
                Err(error)
            }
        }
    }

    /// Serves one request; a panic anywhere below answers 500 and logs one line instead of
    /// dropping the connection.
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let what = format!("{} {}", req.method(), req.uri().path());
        contain_panics(&what, self.handle_inner(req)).await
    }

    async fn handle_inner(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let loaded = self.current();
        let security = &loaded.security;
        let mut resp = if security.rate_limit.as_ref().is_some_and(|limit| !limit.allow()) {
            text(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n")
        } else if security.requires_auth()
            && !security.authorized(req.headers().get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok())).await
        {
            let mut resp = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
            resp.headers_mut()
                .insert(hyper::header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"polo-exporter\""));
            resp
        } else {
            self.route(req, &loaded).await
        };
        for (name, value) in &security.headers {
            resp.headers_mut().insert(name.clone(), value.clone());
        }
        resp
    }

    async fn route(&self, req: Request<Incoming>, loaded: &Loaded) -> Response<Full<Bytes>> {
        let path = req.uri().path();
        if path == RELOAD_PATH {
            return self.lifecycle_reload(req.method()).await;
        }
        let is_get = matches!(*req.method(), Method::GET | Method::HEAD);
        let known = path == "/"
            || path == "/healthz"
            || path == "/readyz"
            || path == self.web.telemetry_path
            || STATUS_PATHS.contains(&path);
        if !known {
            return text(StatusCode::NOT_FOUND, "not found\n");
        }
        if !is_get {
            let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            resp.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        match path {
            "/" => self.landing(loaded),
            "/healthz" => text(StatusCode::OK, "OK\n"),
            // Config loaded and listener bound are both true once requests arrive here.
            "/readyz" => text(StatusCode::OK, "ready\n"),
            _ => {
                let Ok(_permit) = self.in_flight.try_acquire() else {
                    return text(StatusCode::SERVICE_UNAVAILABLE, "too many concurrent scrapes\n");
                };
                // `collect[]` filters the metrics path only; the status API always has every source.
                let only = if path == self.web.telemetry_path {
                    match collect::sources_asked(req.uri().query(), &loaded.exporter.source_names()) {
                        Ok(only) => only,
                        Err(message) => {
                            return respond(StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", message + "\n")
                        }
                    }
                } else {
                    None
                };
                let budget = scrape_budget(&req, self.web.scrape_timeout_offset);
                let deadline = Instant::now().checked_add(budget).unwrap_or_else(Instant::now);
                let scrape = loaded.exporter.scrape_only(only.as_deref(), deadline).await;
                if path == self.web.telemetry_path {
                    let mut families = scrape.families();
                    families.push(self.reload_families());
                    let format = exposition_format(&req);
                    respond(StatusCode::OK, format.content_type(), metrics::encode_sets_as(format, families))
                } else {
                    let body = serde_json::to_string_pretty(&scrape.status()).expect("status JSON serializes");
                    respond(StatusCode::OK, "application/json", body)
                }
            }
        }
    }

    /// `POST /-/reload` (or PUT), only with `--web.enable-lifecycle`, as in Prometheus.
    async fn lifecycle_reload(&self, method: &Method) -> Response<Full<Bytes>> {
        if !self.web.enable_lifecycle {
            return text(StatusCode::FORBIDDEN, "Lifecycle API is not enabled.\n");
        }
        if !matches!(*method, Method::POST | Method::PUT) {
            let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            resp.headers_mut().insert(ALLOW, HeaderValue::from_static("POST, PUT"));
            return resp;
        }
        match self.reload().await {
            Ok(_) => text(StatusCode::OK, "configuration reloaded\n"),
            Err(error) => respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                format!("failed to reload config: {error}\n"),
            ),
        }
    }

    fn reload_families(&self) -> FamilySet {
        let state = *self.reload_state.lock().expect("reload state poisoned");
        Arc::new(vec![
            CONFIG_LAST_RELOAD_SUCCESSFUL.family().with([], if state.successful { 1.0 } else { 0.0 }),
            CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP.family().with([], state.last_success_unix),
        ])
    }

    fn landing(&self, loaded: &Loaded) -> Response<Full<Bytes>> {
        let path = html_escape(&self.web.telemetry_path);
        let sources = loaded.exporter.source_names().join(", ");
        let body = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>polo-exporter</title></head><body>\n\
             <h1>polo-exporter {}</h1>\n<p>Prometheus exporter for the self-monitoring of Polo. Sources: {sources}.</p>\n<ul>\n\
             <li><a href=\"{path}\">Metrics</a></li>\n<li><a href=\"/api/v1/system/status\">System status (JSON)</a></li>\n\
             <li><a href=\"/healthz\">Health</a> &middot; <a href=\"/readyz\">Readiness</a></li>\n</ul>\n</body></html>\n",
            env!("CARGO_PKG_VERSION")
        );
        respond(StatusCode::OK, "text/html; charset=utf-8", body)
    }
}

/// Runs a request handler; if it panics, answers 500 and logs one line naming the request.
pub async fn contain_panics(
    request: &str,
    handler: impl std::future::Future<Output = Response<Full<Bytes>>>,
) -> Response<Full<Bytes>> {
    match AssertUnwindSafe(handler).catch_unwind().await {
        Ok(resp) => resp,
        Err(panic) => {
            let request: String = request.chars().take(200).collect();
            tracing::error!(request = %request, panic = %crate::panics::message(panic.as_ref()), "request handler panicked");
            text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
        }
    }
}

/// Reads `X-Prometheus-Scrape-Timeout-Seconds`: a positive, finite number of seconds, capped at
/// [`MAX_SCRAPE_TIMEOUT`]. Anything else (empty, garbage, NaN, infinities, zero, negative,
/// not ASCII) is None: the header is ignored.
pub fn parse_scrape_timeout(value: &[u8]) -> Option<Duration> {
    let seconds: f64 = std::str::from_utf8(value).ok()?.trim().parse().ok()?;
    if !(seconds.is_finite() && seconds > 0.0) {
        return None;
    }
    Some(Duration::from_secs_f64(seconds.min(MAX_SCRAPE_TIMEOUT.as_secs_f64())))
}

/// How long a scrape may wait: the scrape timeout Prometheus announces minus the offset, at
/// least [`MIN_SCRAPE_BUDGET`]; [`DEFAULT_SCRAPE_TIMEOUT`] when the header is absent or unusable.
pub fn scrape_budget<B>(req: &Request<B>, offset: Duration) -> Duration {
    let announced =
        req.headers().get("X-Prometheus-Scrape-Timeout-Seconds").and_then(|v| parse_scrape_timeout(v.as_bytes()));
    match announced {
        Some(timeout) => timeout.saturating_sub(offset).max(MIN_SCRAPE_BUDGET),
        None => DEFAULT_SCRAPE_TIMEOUT,
    }
}

/// The exposition a scrape asks for in its `Accept` headers ([`metrics::negotiate`]).
pub fn exposition_format<B>(req: &Request<B>) -> metrics::Format {
    let accept = req
        .headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    metrics::negotiate(&accept)
}

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body.to_string())
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Accepts connections on every listener until `stop` leaves [`Stop::Running`]; then stops
/// accepting (the listeners are closed), lets the open connections finish the requests in flight (idle ones
/// close at once) for at most `grace`, and cuts what is left. With TLS configured, each
/// connection is served after its handshake (bounded like the header read).
pub async fn serve(
    listeners: Vec<TcpListener>,
    app: Arc<App>,
    mut stop: watch::Receiver<Stop>,
    grace: Duration,
) -> Drained {
    assert!(!listeners.is_empty(), "serve needs a listener");
    let mut connections = JoinSet::new();
    loop {
        // Whichever listener has a connection first (accept is cancel-safe).
        let accept_any = futures::future::select_all(listeners.iter().map(|l| Box::pin(l.accept())));
        let (stream, peer) = tokio::select! {
            (accepted, _, _) = accept_any => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                log_task_end(done);
                continue;
            }
            () = stopping(&mut stop, |s| *s != Stop::Running) => break,
        };
        let app = Arc::clone(&app);
        let tls = app.current().security.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let stop = stop.clone();
        connections.spawn(async move {
            match tls {
                None => serve_connection(stream, app, peer, stop).await,
                Some(acceptor) => match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => serve_connection(tls_stream, app, peer, stop).await,
                    Ok(Err(err)) => tracing::debug!(%peer, error = %err, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
        });
    }
    drop(listeners);
    let mut drained = Drained::default();
    let grace_end = tokio::time::sleep(grace);
    tokio::pin!(grace_end);
    while !connections.is_empty() {
        tokio::select! {
            Some(done) = connections.join_next() => {
                log_task_end(done);
                drained.finished += 1;
            }
            () = &mut grace_end => break,
            () = stopping(&mut stop, |s| matches!(s, Stop::Now(_))) => break,
        }
    }
    drained.cut = connections.len();
    connections.shutdown().await;
    drained
}

/// Resolves once `stop` satisfies `condition` (or its sender is gone, which means stop too).
async fn stopping(stop: &mut watch::Receiver<Stop>, condition: impl FnMut(&Stop) -> bool) {
    let _ = stop.wait_for(condition).await;
}

fn log_task_end(done: Result<(), tokio::task::JoinError>) {
    if let Err(err) = done {
        if err.is_panic() {
            tracing::error!(panic = %crate::panics::message(err.into_panic().as_ref()), "connection task panicked");
        }
    }
}

/// The size of a request's head as it was sent: `METHOD URI HTTP/1.1\r\n`, each
/// `name: value\r\n`, the final `\r\n`.
fn head_size<B>(req: &Request<B>) -> usize {
    let line = req.method().as_str().len() + 1 + req.uri().to_string().len() + " HTTP/1.1\r\n".len();
    let headers: usize = req.headers().iter().map(|(name, value)| name.as_str().len() + 2 + value.len() + 2).sum();
    line + headers + 2
}

async fn serve_connection<S>(io: S, app: Arc<App>, peer: std::net::SocketAddr, mut stop: watch::Receiver<Stop>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let app = Arc::clone(&app);
        async move {
            if head_size(&req) > MAX_REQUEST_HEAD {
                return Ok::<_, Infallible>(text(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "request headers larger than 64 KiB\n",
                ));
            }
            Ok::<_, Infallible>(app.handle(req).await)
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .max_buf_size(READ_BUFFER)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopping(&mut stop, |s| *s != Stop::Running) => {
            // Answer the request in flight, if any, then close; an idle connection closes now.
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%peer, error = %err, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_the_exposition_format() {
        use metrics::Format::{OpenMetrics, PrometheusText, Protobuf};
        let with = |accept: &str| exposition_format(&Request::builder().header("Accept", accept).body(()).unwrap());
        assert_eq!(exposition_format(&Request::builder().body(()).unwrap()), OpenMetrics);
        assert_eq!(with("*/*"), OpenMetrics);
        // Prometheus 2.42's two headers, without and with native histograms.
        assert_eq!(with(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ), OpenMetrics);
        assert_eq!(with(
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ), Protobuf);
        // Prometheus 3's default scrape_protocols (no protobuf), and with PrometheusProto first.
        assert_eq!(with(
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
        ), OpenMetrics);
        assert_eq!(with(
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.2"
        ), Protobuf);
        assert_eq!(with("text/plain;version=0.0.4"), PrometheusText);
        assert_eq!(with("text/plain, application/openmetrics-text"), PrometheusText, "first listed on a tie");
        assert_eq!(with("*/*, text/plain"), PrometheusText, "specific before wildcard on a tie");
        assert_eq!(with("text/plain;q=0, */*;q=0.1"), OpenMetrics, "q=0 refuses");
        assert_eq!(with("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text, text/plain;q=0.1"), PrometheusText, "only the delimited encoding");
        assert_eq!(with("application/vnd.google.protobuf;proto=other.Message"), OpenMetrics);
        assert_eq!(with("application/json"), OpenMetrics);
        assert_eq!(with("APPLICATION/VND.GOOGLE.PROTOBUF;Q=0.9, text/plain;q=0.5"), Protobuf, "case-insensitive");
    }

    #[test]
    fn budget_follows_prometheus_header() {
        let offset = Duration::from_millis(500);
        let budget = |value: &str| {
            let req = Request::builder().header("X-Prometheus-Scrape-Timeout-Seconds", value).body(()).unwrap();
            scrape_budget(&req, offset)
        };
        assert_eq!(budget("10"), Duration::from_millis(9500));
        assert_eq!(budget(" 2.5 "), Duration::from_millis(2000));
        assert_eq!(budget("0.2"), MIN_SCRAPE_BUDGET, "never below the floor");
        assert_eq!(budget("0.1"), Duration::from_millis(100));
        assert_eq!(scrape_budget(&Request::builder().body(()).unwrap(), offset), DEFAULT_SCRAPE_TIMEOUT);
        // Issue 12, finding 2: these panicked ("overflow when adding duration to instant").
        for huge in ["1e20", "1e19", "1e300", "1.7976931348623157e308", "601", "86400"] {
            assert_eq!(budget(huge), Duration::from_millis(599_500), "{huge}: capped at 10 minutes");
        }
        for unusable in
            ["junk", "", "NaN", "nan", "inf", "-inf", "+Inf", "infinity", "-1", "0", "-0", "0x10", "1e-400", "10s"]
        {
            assert_eq!(budget(unusable), DEFAULT_SCRAPE_TIMEOUT, "{unusable:?} is ignored");
        }
    }

    #[test]
    fn scrape_timeout_parser_never_panics_and_stays_in_bounds() {
        for value in [&b"\xff\xfe"[..], b"1e20", b"4.9e-324", b"00000000000000000000000000001", b"1_000", b"\x00"] {
            if let Some(d) = parse_scrape_timeout(value) {
                assert!(d <= MAX_SCRAPE_TIMEOUT, "{value:?}: {d:?}");
                assert!(Instant::now().checked_add(d).is_some());
            }
        }
        assert_eq!(parse_scrape_timeout(b"4.9e-324"), Some(Duration::ZERO), "rounds to 0; the budget floor applies");
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500() {
        let resp = contain_panics("GET /metrics", async { panic!("boom") }).await;
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let fine = contain_panics("GET /", async { text(StatusCode::OK, "ok") }).await;
        assert_eq!(fine.status(), StatusCode::OK);
    }
}
