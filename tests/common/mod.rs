//! Test harness: real processes (the dev ClickHouse on chdb, the exporter binary) on free ports.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The project's Python with chdb, prepared by scripts/lib/python-env (installs if needed).
fn python() -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(". scripts/lib/python-env && polo_python_env && printf %s \"$POLO_PYTHON\"")
        .current_dir(root())
        .stderr(Stdio::inherit())
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "python env setup failed");
    String::from_utf8(out.stdout).unwrap()
}

/// Starts a dev backend as the one harness (`dev/stack/stack.py`) says to: its command line and
/// readiness path come from there. Output goes to `log`; returns once the backend is ready.
fn start_backend(kind: &str, port: u16, args: &[String], log: &Path) -> Child {
    let out = Command::new(python())
        .arg(root().join("dev/stack/stack.py"))
        .args(["argv", kind, "--port", &port.to_string(), "--"])
        .args(args)
        .output()
        .expect("stack.py runs");
    assert!(out.status.success(), "stack.py argv {kind}: {}", String::from_utf8_lossy(&out.stderr));
    let spec: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stack.py prints JSON");
    let argv: Vec<String> = spec["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start dev {kind}: {e}"));
    let ready = spec["ready"].as_str().unwrap().to_string();
    let timeout = Duration::from_secs(spec["timeout"].as_u64().unwrap());
    wait_until(&format!("dev {kind}"), timeout, || answers(port, &ready));
    child
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The body as sent (`body` is it read as UTF-8, lossily), for binary expositions.
    pub raw_body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `Connection: close`; enough for tests, no client library involved.
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw_body = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| raw[i + 4..].to_vec()).unwrap_or_default();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or("").split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    Response { status, headers, body, raw_body }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let Some((size, rest)) = body.split_once("\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} not ready after {timeout:?}");
}

fn answers(port: u16, path: &str) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok() && http(port, "GET", path, &[], "").status == 200
}

/// The ClickHouse engine version the dev ClickHouse runs (`POLO_TEST_CLICKHOUSE_ENGINE`, one of
/// `stack.py engines`); None: the default, the newest.
pub fn engine() -> Option<String> {
    std::env::var("POLO_TEST_CLICKHOUSE_ENGINE").ok().filter(|v| !v.is_empty())
}

/// The dev ClickHouse (real ClickHouse engine through chdb), stopped on drop.
pub struct DevClickHouse {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl DevClickHouse {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    pub fn start_with(password: Option<&str>) -> Self {
        Self::launch(password, &["--seed", "empty"])
    }

    /// With extra server arguments (e.g. `--no-query-log`).
    pub fn start_with_args(args: &[&str]) -> Self {
        Self::launch(None, args)
    }

    /// With the demo data set, frozen (no new runs inserted while the test runs).
    pub fn start_demo() -> Self {
        Self::launch(None, &["--seed", "demo", "--static"])
    }

    fn launch(password: Option<&str>, seed_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut args: Vec<String> = seed_args.iter().map(|a| a.to_string()).collect();
        args.extend(["--data".to_string(), dir.path().join("data").display().to_string()]);
        // The version matrix: scripts/test reruns the engine-level tests with each version.
        if let Some(engine) = engine() {
            args.extend(["--engine".to_string(), engine]);
        }
        if let Some(pw) = password {
            let file = dir.path().join("pw");
            std::fs::write(&file, pw).unwrap();
            args.extend(["--password-file".to_string(), file.display().to_string()]);
        }
        let child = start_backend("clickhouse", port, &args, &dir.path().join("server.log"));
        Self { port, child, _dir: dir }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs SQL as the test (not through the exporter); panics on a ClickHouse error.
    pub fn exec_as(&self, password: &str, sql: &str) -> String {
        let resp =
            http(self.port, "POST", "/", &[("X-ClickHouse-User", "default"), ("X-ClickHouse-Key", password)], sql);
        assert_eq!(resp.status, 200, "query failed: {sql}\n{}", resp.body);
        resp.body
    }

    pub fn exec(&self, sql: &str) -> String {
        self.exec_as("", sql)
    }

    /// Rows of a query as JSON objects (JSONEachRow); 64-bit integers come back as strings.
    pub fn rows(&self, sql: &str) -> Vec<serde_json::Value> {
        self.exec(&format!("{sql} FORMAT JSONEachRow"))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("JSONEachRow line"))
            .collect()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DevClickHouse {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The exporter binary with a given config, stopped on drop. Its log goes to a file.
pub struct Exporter {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Exporter {
    pub fn start(config_yaml: &str) -> Self {
        Self::start_env(config_yaml, &[])
    }

    pub fn start_env(config_yaml: &str, env: &[(&str, &str)]) -> Self {
        Self::start_with(config_yaml, env, &[])
    }

    /// With extra command-line arguments (e.g. `--web.config.file`); ready when `/healthz`
    /// answers anything over plain HTTP or the port accepts connections (TLS).
    pub fn start_with(config_yaml: &str, env: &[(&str, &str)], args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("polo-exporter.yml");
        std::fs::write(&config, config_yaml).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("exporter.log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_polo-exporter"));
        // No AWS identity leaks in from the machine, and never a call to the instance metadata service.
        for var in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent/polo-aws-config")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/polo-aws-credentials");
        let child = cmd
            .arg("--config.file")
            .arg(&config)
            .args(["--web.listen-address", &format!("127.0.0.1:{port}"), "--log.level", "debug"])
            .args(args)
            .envs(env.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start exporter");
        let exporter = Self { port, child, dir };
        if args.is_empty() {
            wait_until("exporter", Duration::from_secs(20), || answers(port, "/healthz"));
        } else {
            wait_until("exporter", Duration::from_secs(20), || TcpStream::connect(("127.0.0.1", port)).is_ok());
        }
        exporter
    }

    pub fn get(&self, path: &str) -> Response {
        http(self.port, "GET", path, &[], "")
    }

    pub fn scrape(&self) -> Metrics {
        let resp = self.get("/metrics");
        assert_eq!(resp.status, 200);
        Metrics::parse(&resp.body)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("exporter.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A field of /proc/PID/status (e.g. `Threads`, `VmHWM` in kB), as a number.
pub fn proc_status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("{field}:"))).unwrap_or_else(|| panic!("no {field}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config for the exporter against `url`, with the test's collector settings appended.
pub fn config(url: &str, extra: &str) -> String {
    format!("clickhouse:\n  url: {url}\n  timeout: 5s\n{extra}")
}

/// Parsed OpenMetrics text: (name, labels) → value.
#[derive(Debug, Default)]
pub struct Metrics(pub Vec<(String, BTreeMap<String, String>, f64)>);

impl Metrics {
    pub fn parse(text: &str) -> Self {
        let mut out = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (name, rest) = match line.find('{') {
                Some(i) if i < line.find(' ').unwrap_or(usize::MAX) => (&line[..i], &line[i..]),
                _ => line.split_at(line.find(' ').unwrap()),
            };
            let (labels, value) =
                if rest.starts_with('{') { parse_labels(rest) } else { (BTreeMap::new(), rest.trim()) };
            let value: f64 = match value.split_whitespace().next().unwrap() {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                "NaN" => f64::NAN,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
            };
            out.push((name.to_string(), labels, value));
        }
        // Every exporter output the tests read passes here (text and OpenMetrics alike): one
        // series must never be exported twice.
        let mut seen = std::collections::HashSet::new();
        for (name, labels, _) in &out {
            assert!(seen.insert((name, labels)), "duplicate series {name}{labels:?} in the exporter's output");
        }
        Self(out)
    }

    /// All samples of `name` whose labels include `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&(String, BTreeMap<String, String>, f64)> {
        self.0
            .iter()
            .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
            .collect()
    }

    /// The single sample of `name` with exactly these distinguishing labels.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found = self.find(name, labels);
        assert!(found.len() <= 1, "{name}{labels:?} matches {} samples", found.len());
        found.first().map(|s| s.2)
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _, _)| n == name)
    }
}

fn parse_labels(rest: &str) -> (BTreeMap<String, String>, &str) {
    let mut labels = BTreeMap::new();
    let bytes: Vec<char> = rest.chars().collect();
    let mut i = 1;
    let mut consumed_bytes = 1;
    loop {
        if bytes[i] == '}' {
            consumed_bytes += 1;
            break;
        }
        let mut key = String::new();
        while bytes[i] != '=' {
            key.push(bytes[i]);
            consumed_bytes += bytes[i].len_utf8();
            i += 1;
        }
        i += 2; // ="
        consumed_bytes += 2;
        let mut value = String::new();
        while bytes[i] != '"' {
            let c = bytes[i];
            consumed_bytes += c.len_utf8();
            if c == '\\' {
                i += 1;
                consumed_bytes += bytes[i].len_utf8();
                value.push(match bytes[i] {
                    'n' => '\n',
                    other => other,
                });
            } else {
                value.push(c);
            }
            i += 1;
        }
        i += 1;
        consumed_bytes += 1;
        if bytes[i] == ',' {
            i += 1;
            consumed_bytes += 1;
        }
        labels.insert(key, value);
    }
    (labels, rest[consumed_bytes..].trim())
}

/// The local AWS endpoint (moto for SQS, the CBOR CloudWatch front), stopped on drop.
pub struct DevAws {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl DevAws {
    pub fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let child = start_backend("aws", port, &args, &dir.path().join("aws.log"));
        Self { port, child, _dir: dir }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One SQS call in the AWS JSON protocol, as the test (not the exporter).
    pub fn sqs(&self, operation: &str, body: serde_json::Value) -> serde_json::Value {
        let target = format!("AmazonSQS.{operation}");
        let resp = http(
            self.port,
            "POST",
            "/",
            &[
                ("X-Amz-Target", &target),
                ("Content-Type", "application/x-amz-json-1.0"),
                ("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/eu-west-1/sqs/aws4_request, SignedHeaders=host, Signature=0"),
            ],
            &body.to_string(),
        );
        assert_eq!(resp.status, 200, "{operation}: {}", resp.body);
        serde_json::from_str(&resp.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn create_queue(&self, name: &str, dead_letter_target: Option<&str>) -> String {
        let mut body = serde_json::json!({"QueueName": name});
        if let Some(dlq) = dead_letter_target {
            let arn = format!("arn:aws:sqs:eu-west-1:123456789012:{dlq}");
            body["Attributes"] = serde_json::json!({"RedrivePolicy": serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": "3"}).to_string()});
        }
        self.sqs("CreateQueue", body)["QueueUrl"].as_str().unwrap().to_string()
    }

    pub fn send(&self, url: &str, n: usize, delay_seconds: u32) {
        for i in 0..n {
            self.sqs(
                "SendMessage",
                serde_json::json!({"QueueUrl": url, "MessageBody": format!("m{i}"), "DelaySeconds": delay_seconds}),
            );
        }
    }

    pub fn control(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let resp = http(self.port, "POST", path, &[("Content-Type", "application/json")], &body.to_string());
        assert_eq!(resp.status, 200, "{path}: {}", resp.body);
        serde_json::from_str(&resp.body).unwrap()
    }

    /// Forgets the calls counted so far (the seeding's own included).
    pub fn reset_calls(&self) {
        assert_eq!(http(self.port, "GET", "/_polo/stats/reset", &[], "").status, 200);
    }

    /// Calls per operation the emulator has served (e.g. "cloudwatch:GetMetricData").
    pub fn calls(&self, operation: &str) -> u64 {
        let stats: serde_json::Value =
            serde_json::from_str(&http(self.port, "GET", "/_polo/stats", &[], "").body).unwrap();
        stats[operation].as_u64().unwrap_or(0)
    }
}

impl Drop for DevAws {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Environment for an exporter talking to DevAws: static test credentials, no IMDS, no profile.
pub const AWS_TEST_ENV: [(&str, &str); 5] = [
    ("AWS_ACCESS_KEY_ID", "AKIDPOLOTEST"),
    ("AWS_SECRET_ACCESS_KEY", "polo-secret-never-logged-9f8e7d"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_CONFIG_FILE", "/nonexistent/polo-aws-config"),
    ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/polo-aws-credentials"),
];
