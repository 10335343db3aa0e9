//! Hostile or unlucky clients and inputs (issue 12), against the real binary: logs on stderr,
//! absurd headers, bounded config input, reload on SIGHUP, graceful stop on SIGTERM.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{config, free_port, http, DevClickHouse, Metrics};

fn exporter_cmd(config_path: &std::path::Path, port: u16, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_polo-exporter"));
    cmd.arg("--config.file")
        .arg(config_path)
        .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd
}

/// Waits for the child to exit by itself, at most `limit`; kills it after that.
fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").args(["-s", name, &child.id().to_string()]).status().unwrap();
    assert!(status.success(), "kill -s {name}");
}

fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("exporter did not listen on {port}");
}

#[test]
fn logs_go_to_stderr_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yml");
    std::fs::write(&path, config(&format!("http://127.0.0.1:{}", free_port()), "")).unwrap();
    for format in ["logfmt", "json"] {
        let port = free_port();
        let mut child = exporter_cmd(&path, port, &["--log.format", format])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_port(port);
        signal(&child, "TERM");
        let status = wait_exit(&mut child, Duration::from_secs(20)).expect("exits after SIGTERM");
        assert!(status.success(), "{format}: {status}");
        let (mut out, mut err) = (String::new(), String::new());
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert_eq!(out, "", "{format}: nothing on stdout");
        let listening = err.lines().find(|l| l.contains("listening")).unwrap_or_else(|| panic!("{format}: {err}"));
        match format {
            "json" => {
                let line: serde_json::Value = serde_json::from_str(listening).unwrap();
                assert_eq!(line["message"], "listening", "{listening}");
            }
            _ => assert!(listening.contains("msg=listening") || listening.contains("message=listening"), "{listening}"),
        }
    }
}

/// The exporter binary with its own config file, log file and signals.
struct Proc {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Proc {
    fn start(config_yaml: &str, args: &[&str]) -> Proc {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("polo-exporter.yml");
        std::fs::write(&path, config_yaml).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("exporter.log")).unwrap();
        let child = exporter_cmd(&path, port, &["--log.level", "debug"])
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        wait_for_port(port);
        Proc { child, port, dir }
    }

    fn write_config(&self, yaml: &str) {
        // Written aside and renamed, as config management tools do: never read half-written.
        let tmp = self.dir.path().join("polo-exporter.yml.tmp");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(tmp, self.dir.path().join("polo-exporter.yml")).unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("exporter.log")).unwrap()
    }

    fn signal(&self, name: &str) {
        signal(&self.child, name);
    }

    fn scrape(&self) -> Metrics {
        let resp = http(self.port, "GET", "/metrics", &[], "");
        assert_eq!(resp.status, 200, "{}", resp.body);
        Metrics::parse(&resp.body)
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 100 ms until it holds; fails after `limit` (a bound for a hang, not a
/// performance figure).
fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: not within {limit:?}");
}

/// A "ClickHouse" that accepts connections and never answers; counts the connections.
struct Hanging {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Hanging {
    fn start() -> Hanging {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming().take(64) {
                held.push(conn);
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        Hanging { port, accepted }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A TCP proxy to `upstream` that holds every chunk sent by the client for `delay`: a slow
/// ClickHouse with real answers.
fn delaying_proxy(upstream: u16, delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().take(1000) {
            let Ok(mut client) = client else { continue };
            let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
            let (mut client_r, mut server_w) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = client_r.read(&mut buf) {
                    std::thread::sleep(delay);
                    if server_w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = server_w.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut server, &mut client);
                let _ = client.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

/// Sends raw bytes as a request and returns the raw answer (empty if the connection closed).
fn raw_request(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn value(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.value(name, labels).unwrap_or_else(|| panic!("{name}{labels:?} missing"))
}

#[test]
fn absurd_headers_get_an_answer_and_nothing_panics() {
    let mut exporter = Proc::start(&config(&format!("http://127.0.0.1:{}", free_port()), ""), &[]);
    let nines = "9".repeat(5000);
    for timeout in [
        "1e20",
        "1e19",
        "1e300",
        "NaN",
        "inf",
        "-inf",
        "-1",
        "0",
        "junk",
        "",
        "99999999999999999999",
        &nines,
        "0.1",
        "10",
    ] {
        let resp = http(exporter.port, "GET", "/metrics", &[("X-Prometheus-Scrape-Timeout-Seconds", timeout)], "");
        assert_eq!(resp.status, 200, "timeout header {timeout:?}");
        assert!(resp.body.ends_with("# EOF\n"), "timeout header {timeout:?}: complete answer");
    }
    // Bytes that are not text in header values, an absurd Accept and Authorization.
    let answer = raw_request(
        exporter.port,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Prometheus-Scrape-Timeout-Seconds: \xff\xfe1e20\r\nAccept: \xff\x80, text/plain;q=NaN\r\nAuthorization: Basic \xff\xff\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Headers far beyond the read buffer are refused, not read without end.
    let huge = format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(1 << 20));
    let answer = raw_request(exporter.port, huge.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(exporter.alive(), "the process survives");
    assert_eq!(http(exporter.port, "GET", "/healthz", &[], "").status, 200);
    let log = exporter.log();
    assert!(!log.contains("panic"), "no panic, not even a contained one:\n{log}");
}

#[test]
fn lifecycle_reload_endpoint_only_with_the_flag() {
    let base = config(&format!("http://127.0.0.1:{}", free_port()), "");
    let closed = Proc::start(&base, &[]);
    let resp = http(closed.port, "POST", "/-/reload", &[], "");
    assert_eq!(resp.status, 403);
    assert_eq!(resp.body, "Lifecycle API is not enabled.\n");

    let exporter = Proc::start(&base, &["--web.enable-lifecycle"]);
    assert!(exporter.scrape().has("polo_exporter_source_up"));
    assert_eq!(exporter.scrape().value("polo_exporter_source_up", &[("source", "accounts")]), Some(0.0));
    assert_eq!(http(exporter.port, "GET", "/-/reload", &[], "").status, 405);

    exporter.write_config(&format!("{base}sources:\n  accounts:\n    enabled: false\n"));
    let resp = http(exporter.port, "POST", "/-/reload", &[], "");
    assert_eq!(resp.status, 200, "{}", resp.body);
    let m = exporter.scrape();
    assert_eq!(m.value("polo_exporter_source_up", &[("source", "accounts")]), None, "accounts disabled");
    assert_eq!(value(&m, "polo_exporter_config_last_reload_successful", &[]), 1.0);

    exporter.write_config(&format!("{base}sources:\n  accounts:\n    timeout: 1y\n"));
    let resp = http(exporter.port, "PUT", "/-/reload", &[], "");
    assert_eq!(resp.status, 500);
    assert!(
        resp.body.starts_with("failed to reload config: ")
            && resp.body.contains("polo-exporter.yml:6: key `sources.accounts.timeout`"),
        "{}",
        resp.body
    );
    let m = exporter.scrape();
    assert_eq!(m.value("polo_exporter_source_up", &[("source", "accounts")]), None, "the previous config stays");
    assert_eq!(value(&m, "polo_exporter_config_last_reload_successful", &[]), 0.0);
}

/// Issue 12, finding 3: SIGHUP killed the process (exit 129). Now it reloads; a bad config is
/// refused, logged once, and the running one stays; unchanged sources keep their state.
#[test]
fn sighup_reloads_and_a_bad_config_keeps_the_running_one() {
    let ch = DevClickHouse::start_demo();
    let base = config(&ch.url(), "");
    let with_interval = |interval: &str, extra: &str| {
        format!("{base}sources:\n  collector_runs:\n    expected_intervals:\n      config_ec2: {interval}\n{extra}")
    };
    let mut exporter = Proc::start(&with_interval("15m", ""), &[]);
    let interval = |m: &Metrics| value(m, "polo_collector_expected_interval_seconds", &[("collector", "config_ec2")]);
    let m = exporter.scrape();
    assert_eq!(interval(&m), 900.0);
    assert_eq!(value(&m, "polo_exporter_config_last_reload_successful", &[]), 1.0);
    let loaded_at = value(&m, "polo_exporter_config_last_reload_success_timestamp_seconds", &[]);

    // A changed expected interval is visible after kill -HUP.
    exporter.write_config(&with_interval("30m", ""));
    let before_hup = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    exporter.signal("HUP");
    eventually("30m after SIGHUP", Duration::from_secs(20), || interval(&exporter.scrape()) == 1800.0);
    assert!(exporter.alive());
    let m = exporter.scrape();
    assert_eq!(value(&m, "polo_exporter_config_last_reload_successful", &[]), 1.0);
    let reloaded_at = value(&m, "polo_exporter_config_last_reload_success_timestamp_seconds", &[]);
    assert!(reloaded_at >= before_hup.floor() && reloaded_at > loaded_at, "{loaded_at} -> {reloaded_at}");

    // A bad config is refused; the old one keeps running.
    exporter.write_config(&with_interval("30m", "    timeout: 99999999999d\n"));
    exporter.signal("HUP");
    eventually("failed reload reported", Duration::from_secs(20), || {
        exporter.scrape().value("polo_exporter_config_last_reload_successful", &[]) == Some(0.0)
    });
    let m = exporter.scrape();
    assert_eq!(interval(&m), 1800.0);
    assert_eq!(value(&m, "polo_exporter_config_last_reload_success_timestamp_seconds", &[]), reloaded_at);
    assert_eq!(value(&m, "polo_exporter_source_up", &[("source", "collector_runs")]), 1.0);
    let log = exporter.log();
    let failed: Vec<&str> = log.lines().filter(|l| l.contains("configuration reload failed")).collect();
    assert_eq!(failed.len(), 1, "one log line: {log}");
    assert!(failed[0].contains("polo-exporter.yml:8: key `sources.collector_runs.timeout`"), "{}", failed[0]);

    // Only clickhouse_system's section changes: collector_runs and accounts keep their runners,
    // so their counters go on instead of restarting with a first load.
    let rows = |m: &Metrics, source: &str| value(m, "polo_exporter_clickhouse_read_rows_total", &[("source", source)]);
    let before = rows(&exporter.scrape(), "collector_runs");
    exporter.write_config(&with_interval("30m", "  clickhouse_system:\n    max_rows: 5000\n"));
    exporter.signal("HUP");
    eventually("successful reload", Duration::from_secs(20), || {
        exporter.scrape().value("polo_exporter_config_last_reload_successful", &[]) == Some(1.0)
    });
    let after = rows(&exporter.scrape(), "collector_runs");
    assert!(after > before, "kept runner: read rows go on ({before} -> {after})");
    let log = exporter.log();
    let reloaded: Vec<&str> = log.lines().filter(|l| l.contains("configuration reloaded")).collect();
    assert_eq!(reloaded.len(), 2, "{log}");
    assert!(reloaded[0].contains("kept=accounts,clickhouse_system started=collector_runs"), "{}", reloaded[0]);
    assert!(
        reloaded[1].contains("kept=collector_runs,accounts") && reloaded[1].contains("started=clickhouse_system"),
        "{}",
        reloaded[1]
    );
    assert!(exporter.alive());
}

/// Issue 12, finding 4: SIGTERM cut the scrape in flight. Now the listener closes, the scrape
/// in flight gets its complete answer, and the process exits 0 with one log line.
#[test]
fn sigterm_lets_the_scrape_in_flight_finish() {
    let backend = Hanging::start();
    let mut exporter =
        Proc::start(&config(&backend.url(), "sources:\n  collector_runs:\n    timeout: 4s\n  accounts:\n    timeout: 4s\n  clickhouse_system:\n    timeout: 4s\n"), &[]);
    let port = exporter.port;
    let scrape = std::thread::spawn(move || http(port, "GET", "/metrics", &[], ""));
    eventually("the scrape reached the backend", Duration::from_secs(10), || {
        backend.accepted.load(Ordering::SeqCst) > 0
    });
    exporter.signal("TERM");
    eventually("the listener closes", Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", port)).is_err());
    let resp = scrape.join().unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.body.ends_with("# EOF\n"), "complete answer: {}", resp.body);
    let m = Metrics::parse(&resp.body);
    assert_eq!(
        value(&m, "polo_exporter_source_errors_total", &[("source", "collector_runs"), ("kind", "timeout")]),
        1.0
    );
    let status = wait_exit(&mut exporter.child, Duration::from_secs(20)).expect("exits by itself");
    assert!(status.success(), "{status}");
    let log = exporter.log();
    let stopped: Vec<&str> = log.lines().filter(|l| l.contains("stopped")).collect();
    assert_eq!(stopped.len(), 1, "{log}");
    assert!(stopped[0].contains("signal=SIGTERM") && stopped[0].contains("connections_cut=0"), "{}", stopped[0]);
}

#[test]
fn the_grace_period_is_bounded_and_a_second_signal_stops_at_once() {
    let backend = Hanging::start();
    let slow = "sources:\n  collector_runs:\n    timeout: 10m\n  accounts:\n    timeout: 10m\n  clickhouse_system:\n    timeout: 10m\n";
    for (args, signals, log_signal) in [
        (vec!["--web.shutdown-grace-period", "1s"], vec!["TERM"], "signal=SIGTERM"),
        (vec!["--web.shutdown-grace-period", "10m"], vec!["INT", "INT"], "signal=SIGINT"),
    ] {
        let mut exporter = Proc::start(&config(&backend.url(), slow), &args);
        let port = exporter.port;
        let accepted = backend.accepted.load(Ordering::SeqCst);
        // Without a header a scrape waits 30 s; the sources would take 10 minutes.
        let scrape = std::thread::spawn(move || raw_request(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
        eventually("the scrape reached the backend", Duration::from_secs(10), || {
            backend.accepted.load(Ordering::SeqCst) > accepted
        });
        for name in &signals {
            exporter.signal(name);
            std::thread::sleep(Duration::from_millis(200));
        }
        let status = wait_exit(&mut exporter.child, Duration::from_secs(20)).expect("exits before the scrape ends");
        assert!(status.success(), "{status}");
        assert_eq!(scrape.join().unwrap(), "", "the scrape in flight was cut");
        let log = exporter.log();
        let stopped = log.lines().find(|l| l.contains("stopped")).unwrap_or_else(|| panic!("{log}"));
        assert!(stopped.contains(log_signal) && stopped.contains("connections_cut=1"), "{stopped}");
    }
}

/// Issue 12, finding 1, through the binary: a 0.1 s scrape and a 10 s scrape together against
/// a slow ClickHouse (every request held 0.5 s): the 10 s one gets `up 1`, no timeout anywhere.
#[test]
fn a_short_scrape_timeout_cannot_make_sources_look_down_for_another_scraper() {
    let ch = DevClickHouse::start();
    let proxy = delaying_proxy(ch.port, Duration::from_millis(500));
    let exporter = Proc::start(&config(&format!("http://127.0.0.1:{proxy}"), ""), &[]);
    let port = exporter.port;
    for attempt in 0..3 {
        let short = std::thread::spawn(move || {
            http(port, "GET", "/metrics", &[("X-Prometheus-Scrape-Timeout-Seconds", "0.1")], "")
        });
        std::thread::sleep(Duration::from_millis(50));
        let normal = http(port, "GET", "/metrics", &[("X-Prometheus-Scrape-Timeout-Seconds", "10")], "");
        assert_eq!(short.join().unwrap().status, 200);
        assert_eq!(normal.status, 200);
        let m = Metrics::parse(&normal.body);
        for source in ["collector_runs", "accounts", "clickhouse_system"] {
            assert_eq!(value(&m, "polo_exporter_source_up", &[("source", source)]), 1.0, "attempt {attempt}: {source}");
            assert_eq!(
                value(&m, "polo_exporter_source_errors_total", &[("source", source), ("kind", "timeout")]),
                0.0,
                "attempt {attempt}: {source}"
            );
        }
    }
}

/// Issue 12, finding 8: format characters and a 5,000-character collector name from the data.
#[test]
fn label_values_from_the_data_are_clean_and_bounded() {
    let ch = DevClickHouse::start();
    let long = format!("{}{}", "c".repeat(5000), "\u{202E}");
    ch.exec(&format!(
        "INSERT INTO polo.collector_runs (collector, aws_account_id, aws_region, started_at, completed_at, status, events_produced, rows_inserted, error, duration_ms) VALUES \
         ('{long}', '111111111111', 'eu-west-1', now64(3) - 60, now64(3) - 50, 'failed', 0, 0, 'boom', 10000), \
         ('rtl\u{202E}name', '111111111111', 'eu\u{FEFF}-west-1', now64(3) - 60, now64(3) - 50, 'failed', 0, 0, 'bad\u{200B} thing\u{202E}', 10000)"
    ));
    let exporter = Proc::start(&config(&ch.url(), ""), &[]);
    let body = http(exporter.port, "GET", "/metrics", &[], "").body;
    assert!(!body.contains('\u{202E}') && !body.contains('\u{FEFF}') && !body.contains('\u{200B}'), "{body}");
    let m = Metrics::parse(&body);
    let errors = m.find("polo_collector_last_error_info", &[]);
    let names: std::collections::BTreeSet<&str> = errors.iter().map(|s| s.1["collector"].as_str()).collect();
    let cut = names.iter().find(|n| n.starts_with('c')).expect("the long collector is exported");
    assert_eq!(cut.chars().count(), 200);
    assert!(cut.starts_with(&"c".repeat(191)) && cut.chars().nth(191) == Some('…'), "{cut}");
    // Cleaned values carry a hash of the original, so that cleaning never merges two values.
    let stem = |v: &str| {
        v.rsplit_once('~').map(|(stem, hash)| {
            assert!(hash.len() == 8 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{v}");
            stem.to_string()
        })
    };
    let rtl = errors.iter().find(|s| stem(&s.1["collector"]).as_deref() == Some("rtlname")).expect("rtl collector");
    assert_eq!(stem(&rtl.1["aws_region"]).as_deref(), Some("eu-west-1"));
    assert_eq!(stem(&rtl.1["error"]).as_deref(), Some("bad thing"));
}

/// Issue 12, finding 7: clients that connect, send a scrape and hang up (2 ms later, so that
/// the request is read), one every 50 ms for 3 s, while ClickHouse holds each request 300 ms.
/// A hung-up client stops waiting (hyper drops its request), so the run it started is one
/// nobody waits for, and the quiet gap after it holds off the next: at most two runs per
/// source, where the clients used to keep each source running back to back (about 8 runs
/// each). Runs are counted by their one log line each.
#[test]
fn clients_that_hang_up_cannot_drive_the_backend() {
    let ch = DevClickHouse::start();
    let proxy = delaying_proxy(ch.port, Duration::from_millis(300));
    let exporter = Proc::start(&config(&format!("http://127.0.0.1:{proxy}"), ""), &[]);
    let runs = || {
        let log = exporter.log();
        log.matches("message=\"source collected\"").count() + log.matches("message=\"source failed\"").count()
    };
    exporter.scrape();
    let before = runs();
    let m = exporter.scrape();
    let sources = m.find("polo_exporter_source_up", &[]).len();
    assert_eq!(sources, 3);
    assert_eq!(runs() - before, sources, "a waiting scrape runs each source once");
    let before = runs();
    for _ in 0..60 {
        let mut s = TcpStream::connect(("127.0.0.1", exporter.port)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(2));
        drop(s);
        std::thread::sleep(Duration::from_millis(48));
    }
    std::thread::sleep(Duration::from_secs(2));
    let flood = runs() - before;
    assert!(flood <= 2 * sources, "60 hang-ups made {flood} runs of {sources} sources");
}
