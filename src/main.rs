use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use polo_exporter::config::duration;
use polo_exporter::config_file::Config;
use polo_exporter::framework::error_chain;
use polo_exporter::http::{self, App, Stop, WebConfig};
use polo_exporter::reload::{self, Files, Loaded};
use polo_exporter::web::WebSecurity;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
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
    /// With --config.check: also connect and run every enabled source once, printing what works
    /// and what is missing (grant, table, setting, TLS); exit 1 if anything failed.
    #[arg(long = "online", requires = "config_check")]
    online: bool,
    /// Address to listen on, `[host]:port`; repeat the flag to listen on several.
    #[arg(long = "web.listen-address", default_value = ":9820")]
    listen_address: Vec<String>,
    /// Use the sockets systemd passes (socket activation: LISTEN_FDS, LISTEN_PID) instead of
    /// --web.listen-address.
    #[arg(long = "web.systemd-socket")]
    systemd_socket: bool,
    /// Path to an exporter-toolkit web configuration (TLS, basic auth, response headers).
    #[arg(long = "web.config.file")]
    web_config_file: Option<PathBuf>,
    /// Path under which to expose metrics.
    #[arg(long = "web.telemetry-path", default_value = "/metrics")]
    telemetry_path: String,
    /// Serve POST /-/reload (re-read the configuration files), as Prometheus does.
    #[arg(long = "web.enable-lifecycle")]
    enable_lifecycle: bool,
    /// On SIGTERM/SIGINT, how long requests in flight may take to finish before the exit.
    #[arg(long = "web.shutdown-grace-period", default_value = "10s", value_parser = parse_duration)]
    shutdown_grace_period: std::time::Duration,
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
            (Ok(config), Ok(_)) => {
                println!("config OK: {}", args.config_file.display());
                for warning in config.sources.warnings() {
                    println!("warning: {warning}");
                }
                if args.online {
                    init_logging(LogLevel::Warn, args.log_format);
                    if !polo_exporter::online::run(&config) {
                        return ExitCode::FAILURE;
                    }
                }
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
    polo_exporter::panics::log_as_one_line();
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
    // Signals first: from here on SIGHUP reloads and SIGTERM/SIGINT stop gracefully, instead
    // of the default actions (which end the process at once).
    let mut hangup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let (stop_tx, stop_rx) = watch::channel(Stop::Running);
    watch_stop_signals(stop_tx)?;

    let files = Files { config: args.config_file.clone(), web_config: args.web_config_file.clone() };
    let (config, security) = reload::read(&files).map_err(|e| anyhow::anyhow!(e))?;
    if !args.telemetry_path.starts_with('/')
        || polo_exporter::http::STATUS_PATHS.contains(&args.telemetry_path.as_str())
        || args.telemetry_path == polo_exporter::http::RELOAD_PATH
    {
        anyhow::bail!("--web.telemetry-path must start with / and not be a status API or lifecycle path");
    }
    let listeners = if args.systemd_socket {
        systemd_listeners()?
    } else {
        let mut listeners = Vec::new();
        for text in &args.listen_address {
            let address = listen_address(text)?;
            listeners.push(
                tokio::net::TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))?,
            );
        }
        listeners
    };
    let addresses =
        listeners.iter().map(|l| l.local_addr().map(|a| a.to_string())).collect::<Result<Vec<_>, _>>()?.join(",");
    let (tls, basic_auth) = (security.tls.is_some(), security.requires_auth());
    let (loaded, _) = Loaded::assemble(&config, security, None);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        revision = env!("POLO_EXPORTER_REVISION"),
        address = %addresses,
        systemd_socket = args.systemd_socket,
        telemetry_path = %args.telemetry_path,
        sources = %loaded.exporter.source_names().join(","),
        tls,
        basic_auth,
        lifecycle = args.enable_lifecycle,
        "listening"
    );
    let app = App::new(
        loaded,
        WebConfig {
            telemetry_path: args.telemetry_path,
            scrape_timeout_offset: args.scrape_timeout_offset,
            enable_lifecycle: args.enable_lifecycle,
        },
        Some(files),
    );
    let reloader = Arc::clone(&app);
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            // Logs its outcome; a failed reload keeps the running configuration.
            let _ = reloader.reload().await;
        }
    });
    let grace = args.shutdown_grace_period;
    let drained = http::serve(listeners, app, stop_rx.clone(), grace).await;
    let signal = match *stop_rx.borrow() {
        Stop::Graceful(name) | Stop::Now(name) => name,
        Stop::Running => "none",
    };
    tracing::info!(
        signal,
        connections_finished = drained.finished,
        connections_cut = drained.cut,
        grace_period = %duration::format(grace),
        "stopped"
    );
    Ok(())
}

/// SIGTERM or SIGINT: a graceful stop; a second one during the grace period: stop now.
fn watch_stop_signals(stop: watch::Sender<Stop>) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    tokio::spawn(async move {
        let mut next = async || -> &'static str {
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            }
        };
        let first = next().await;
        let _ = stop.send(Stop::Graceful(first));
        let second = next().await;
        let _ = stop.send(Stop::Now(second));
    });
    Ok(())
}

/// The sockets of systemd's socket activation: `LISTEN_PID` is this process and `LISTEN_FDS`
/// says how many descriptors, from 3 on, are listening TCP sockets.
fn systemd_listeners() -> anyhow::Result<Vec<tokio::net::TcpListener>> {
    use std::os::fd::FromRawFd;
    let var = |name: &str| std::env::var(name).with_context(|| format!("--web.systemd-socket: {name} is not set"));
    let pid: u32 = var("LISTEN_PID")?.parse().context("--web.systemd-socket: LISTEN_PID is not a number")?;
    anyhow::ensure!(pid == std::process::id(), "--web.systemd-socket: LISTEN_PID {pid} is another process");
    let count: i32 = var("LISTEN_FDS")?.parse().context("--web.systemd-socket: LISTEN_FDS is not a number")?;
    anyhow::ensure!((1..=64).contains(&count), "--web.systemd-socket: LISTEN_FDS is {count}, expected 1 to 64");
    (3..3 + count)
        .map(|fd| {
            // SAFETY: systemd hands these descriptors to this process (LISTEN_PID checked above)
            // and nothing else in it owns them; each is taken once.
            let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
            listener
                .local_addr()
                .with_context(|| format!("--web.systemd-socket: descriptor {fd} is not a TCP socket"))?;
            listener.set_nonblocking(true)?;
            Ok(tokio::net::TcpListener::from_std(listener)?)
        })
        .collect()
}

/// `:9820` means every interface, as in other Prometheus exporters.
fn listen_address(text: &str) -> anyhow::Result<SocketAddr> {
    let full = if text.starts_with(':') { format!("0.0.0.0{text}") } else { text.to_string() };
    full.parse().with_context(|| format!("--web.listen-address {text:?} is not [host]:port"))
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
