use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use polo_exporter::config::{duration, Config};
use polo_exporter::framework::Exporter;
use polo_exporter::http::{self, App, WebConfig};
use polo_exporter::sources;
use polo_exporter::web::WebSecurity;
use tracing_subscriber::prelude::*;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Logfmt,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// Prometheus exporter for the self-monitoring of Polo.
#[derive(Debug, Parser)]
#[command(name = "polo-exporter", version = concat!(env!("CARGO_PKG_VERSION"), " (revision ", env!("POLO_EXPORTER_REVISION"), ")"))]
struct Args {
    /// Path to the configuration file.
    #[arg(long = "config.file", default_value = "polo-exporter.yml")]
    config_file: PathBuf,
    /// Validate the configuration file, print the result and exit (0 if valid, 1 if not).
    #[arg(long = "config.check")]
    config_check: bool,
    /// Address to listen on, `[host]:port`.
    #[arg(long = "web.listen-address", default_value = ":9820")]
    listen_address: String,
    /// Path to an exporter-toolkit web configuration (TLS, basic auth, response headers).
    #[arg(long = "web.config.file")]
    web_config_file: Option<PathBuf>,
    /// Path under which to expose metrics.
    #[arg(long = "web.telemetry-path", default_value = "/metrics")]
    telemetry_path: String,
    /// Subtracted from Prometheus's scrape timeout to leave time to encode and send the answer.
    #[arg(long = "scrape.timeout-offset", default_value = "500ms", value_parser = parse_duration)]
    scrape_timeout_offset: std::time::Duration,
    /// Only log messages at or above this level.
    #[arg(long = "log.level", value_enum, default_value = "info")]
    log_level: LogLevel,
    /// Output format of log messages.
    #[arg(long = "log.format", value_enum, default_value = "logfmt")]
    log_format: LogFormat,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    duration::parse(text)
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.config_check {
        let web = args.web_config_file.as_deref().map(WebSecurity::load).transpose();
        return match (Config::load(&args.config_file), web) {
            (Ok(_), Ok(_)) => {
                println!("config OK: {}", args.config_file.display());
                ExitCode::SUCCESS
            }
            (config, web) => {
                for err in [config.err(), web.err()].into_iter().flatten() {
                    eprintln!("{}", error_chain(&err));
                }
                ExitCode::FAILURE
            }
        };
    }
    init_logging(args.log_level, args.log_format);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "exiting");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::load(&args.config_file).map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
    let security = match &args.web_config_file {
        Some(path) => WebSecurity::load(path).map_err(|e| anyhow::anyhow!(error_chain(&e)))?,
        None => WebSecurity::open(),
    };
    if !args.telemetry_path.starts_with('/')
        || polo_exporter::http::STATUS_PATHS.contains(&args.telemetry_path.as_str())
    {
        anyhow::bail!("--web.telemetry-path must start with / and not be a status API path");
    }
    let address = listen_address(&args.listen_address)?;
    let listener =
        tokio::net::TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))?;
    let runners = sources::build(&config);
    let exporter = Exporter::new(runners);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        revision = env!("POLO_EXPORTER_REVISION"),
        address = %listener.local_addr()?,
        telemetry_path = %args.telemetry_path,
        sources = %exporter.source_names().join(","),
        tls = security.tls.is_some(),
        basic_auth = security.requires_auth(),
        "listening"
    );
    let app = App::new(
        exporter,
        WebConfig { telemetry_path: args.telemetry_path, scrape_timeout_offset: args.scrape_timeout_offset },
        security,
    );
    http::serve(listener, app, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

/// `:9820` means every interface, as in other Prometheus exporters.
fn listen_address(text: &str) -> anyhow::Result<SocketAddr> {
    let full = if text.starts_with(':') { format!("0.0.0.0{text}") } else { text.to_string() };
    full.parse().with_context(|| format!("--web.listen-address {text:?} is not [host]:port"))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

fn init_logging(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Error => tracing::Level::ERROR,
    };
    // The clickhouse crate's own spans are noisy at debug; keep them at warn.
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(level)
        .with_target("clickhouse", tracing::Level::WARN)
        .with_target("hyper", tracing::Level::WARN);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        // Both formats on stderr, as Prometheus exporters do; stdout stays free for --config.check.
        LogFormat::Logfmt => registry.with(tracing_logfmt::builder().layer().with_writer(std::io::stderr)).init(),
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true).with_writer(std::io::stderr))
            .init(),
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}
