//! The HTTP front: `/metrics` (OpenMetrics), `/`, `/healthz`, `/readyz`, the status API.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::framework::Exporter;
use crate::metrics;
use crate::web::WebSecurity;

/// Paths of the status API: Polo's System Status page design names `/api/system/status`; `/api/v1/` is the versioned one.
pub const STATUS_PATHS: [&str; 2] = ["/api/v1/system/status", "/api/system/status"];
/// Without a Prometheus scrape-timeout header, a scrape waits at most this long.
const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(30);
/// Scrapes and status requests served at once; more get 503 instead of piling up.
const MAX_IN_FLIGHT: usize = 64;

pub struct WebConfig {
    pub telemetry_path: String,
    /// Subtracted from `X-Prometheus-Scrape-Timeout-Seconds` to leave time to encode and send.
    pub scrape_timeout_offset: Duration,
}

pub struct App {
    exporter: Exporter,
    web: WebConfig,
    security: WebSecurity,
    in_flight: Semaphore,
}

impl App {
    pub fn new(exporter: Exporter, web: WebConfig, security: WebSecurity) -> Arc<Self> {
        Arc::new(Self { exporter, web, security, in_flight: Semaphore::new(MAX_IN_FLIGHT) })
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let mut resp = if self.security.requires_auth()
            && !self
                .security
                .authorized(req.headers().get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok()))
                .await
        {
            let mut resp = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
            resp.headers_mut()
                .insert(hyper::header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"polo-exporter\""));
            resp
        } else {
            self.route(req).await
        };
        for (name, value) in &self.security.headers {
            resp.headers_mut().insert(name.clone(), value.clone());
        }
        resp
    }

    async fn route(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path();
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
            "/" => self.landing(),
            "/healthz" => text(StatusCode::OK, "OK\n"),
            // Config loaded and listener bound are both true once requests arrive here.
            "/readyz" => text(StatusCode::OK, "ready\n"),
            _ => {
                let Ok(_permit) = self.in_flight.try_acquire() else {
                    return text(StatusCode::SERVICE_UNAVAILABLE, "too many concurrent scrapes\n");
                };
                let deadline = Instant::now() + scrape_budget(&req, self.web.scrape_timeout_offset);
                let scrape = self.exporter.scrape(deadline).await;
                if path == self.web.telemetry_path {
                    let families = scrape.families();
                    let counters = metrics::counter_names(&families);
                    let text = metrics::encode_sets(families);
                    if wants_prometheus_text(&req) {
                        respond(
                            StatusCode::OK,
                            metrics::PROMETHEUS_TEXT_CONTENT_TYPE,
                            metrics::to_prometheus_text(&text, &counters),
                        )
                    } else {
                        respond(StatusCode::OK, metrics::OPENMETRICS_CONTENT_TYPE, text)
                    }
                } else {
                    let body = serde_json::to_string_pretty(&scrape.status()).expect("status JSON serializes");
                    respond(StatusCode::OK, "application/json", body)
                }
            }
        }
    }

    fn landing(&self) -> Response<Full<Bytes>> {
        let path = html_escape(&self.web.telemetry_path);
        let sources = self.exporter.source_names().join(", ");
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

/// How long a scrape may take: the scrape timeout Prometheus announces minus the offset,
/// or a default when the header is absent or unreadable.
pub fn scrape_budget<B>(req: &Request<B>, offset: Duration) -> Duration {
    let announced = req
        .headers()
        .get("X-Prometheus-Scrape-Timeout-Seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64);
    match announced {
        Some(timeout) => timeout.saturating_sub(offset).max(Duration::from_millis(100)),
        None => DEFAULT_SCRAPE_TIMEOUT,
    }
}

/// OpenMetrics unless the client asks for the classic text format and not for OpenMetrics.
pub fn wants_prometheus_text<B>(req: &Request<B>) -> bool {
    let accept = req
        .headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    accept.contains("text/plain") && !accept.contains("application/openmetrics-text")
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
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

/// Accepts connections until `shutdown` resolves; with TLS configured, each connection is
/// served after its handshake (bounded like the header read).
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let tls = app.security.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = Arc::clone(&app);
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, app, peer).await,
                Some(acceptor) => match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => serve_connection(tls_stream, app, peer).await,
                    Ok(Err(err)) => tracing::debug!(%peer, error = %err, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
        });
    }
}

async fn serve_connection<S>(io: S, app: Arc<App>, peer: std::net::SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(app.handle(req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(io), service);
    if let Err(err) = conn.await {
        tracing::debug!(%peer, error = %err, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_the_exposition_format() {
        let with = |accept: &str| Request::builder().header("Accept", accept).body(()).unwrap();
        assert!(!wants_prometheus_text(&Request::builder().body(()).unwrap()));
        assert!(!wants_prometheus_text(&with("*/*")));
        assert!(!wants_prometheus_text(&with(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )));
        assert!(wants_prometheus_text(&with("text/plain;version=0.0.4")));
    }

    #[test]
    fn budget_follows_prometheus_header() {
        let req = Request::builder().header("X-Prometheus-Scrape-Timeout-Seconds", "10").body(()).unwrap();
        assert_eq!(scrape_budget(&req, Duration::from_millis(500)), Duration::from_millis(9500));
        let req = Request::builder().header("X-Prometheus-Scrape-Timeout-Seconds", "junk").body(()).unwrap();
        assert_eq!(scrape_budget(&req, Duration::from_millis(500)), DEFAULT_SCRAPE_TIMEOUT);
        let req = Request::builder().header("X-Prometheus-Scrape-Timeout-Seconds", "0.2").body(()).unwrap();
        assert_eq!(scrape_budget(&req, Duration::from_millis(500)), Duration::from_millis(100));
    }
}
