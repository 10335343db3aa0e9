//! Messages said by key (issue 19, item 7): no internal type name in any config error, a large
//! file reported with its size, and the request head bound of 64 KiB exactly.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::{config, free_port, Exporter};

/// `--config.check` of `yaml` (and of `web`, a web config, when given): (ok, stderr+stdout).
fn check(yaml: &str, web: Option<&str>) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("polo.yml");
    std::fs::write(&path, yaml).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_polo-exporter"));
    cmd.arg("--config.file").arg(&path).arg("--config.check");
    if let Some(web) = web {
        let web_path = dir.path().join("web.yml");
        std::fs::write(&web_path, web).unwrap();
        cmd.arg("--web.config.file").arg(&web_path);
    }
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    (out.status.success(), text)
}

fn assert_no_type_name(text: &str) {
    for leak in ["struct ", "enum ", "Raw", "YAML tag"] {
        assert!(!text.contains(leak), "internal name {leak:?} in: {text}");
    }
}

#[test]
fn config_errors_name_keys_never_types() {
    let ok = "clickhouse:\n  url: http://127.0.0.1:1\n";
    let cases: &[(&str, &str)] = &[
        ("- a\n", "polo.yml:1: the file must be a mapping of sections (clickhouse, aws, sources), not a sequence"),
        ("42\n", "polo.yml:1: the file must be a mapping of sections (clickhouse, aws, sources), not an integer `42`"),
        ("clickhouse:\n  - a\n", "key `clickhouse`: must be a mapping of keys, not a sequence"),
        ("clickhouse: 5\n", "key `clickhouse`: must be a mapping of keys, not an integer `5`"),
        ("sources: [1]\n", "key `sources`: must be a mapping of keys, not a sequence"),
        ("clickhouse:\n  url: http://x\n  tls: 3\n", "key `clickhouse.tls`: must be a mapping of keys"),
        ("sources:\n  sqs:\n    queues: [3]\n", "key `sources.sqs.queues[0]`: must be a mapping of keys"),
        (
            "clickhouse:\n  url: http://x\nsources:\n  collector_runs:\n    per_key_series: [a]\n",
            "key `sources.collector_runs.per_key_series`: must be one of the documented words, not a sequence",
        ),
    ];
    for (yaml, expected) in cases {
        let (passed, text) = check(yaml, None);
        assert!(!passed, "{yaml:?} passed");
        assert!(text.contains(expected), "{yaml:?}: expected {expected:?} in: {text}");
        assert_no_type_name(&text);
    }
    let web_cases: &[(&str, &str)] = &[
        ("- a\n", "the file must be a mapping of sections (tls_server_config, basic_auth_users, http_server_config, rate_limit)"),
        ("tls_server_config: [1]\n", "key `tls_server_config`: must be a mapping of keys, not a sequence"),
        ("http_server_config: 1\n", "key `http_server_config`: must be a mapping of keys, not an integer `1`"),
        ("basic_auth_users: [1]\n", "key `basic_auth_users`: must be a mapping, not a sequence"),
    ];
    for (web, expected) in web_cases {
        let (passed, text) = check(ok, Some(web));
        assert!(!passed, "web {web:?} passed");
        assert!(text.contains(expected), "web {web:?}: expected {expected:?} in: {text}");
        assert_no_type_name(&text);
    }
}

#[test]
fn a_large_config_is_reported_with_its_size() {
    let (passed, text) = check(&format!("# {}\n", "x".repeat(5_300_000)), None);
    assert!(!passed);
    assert!(text.contains("polo.yml:1: the file is 5300003 bytes (5.1 MiB), more than the 1 MiB accepted"), "{text}");
}

/// The status line of the answer to a GET with one header `X-Pad` making the head `head` bytes.
fn status_for_head_of(port: u16, head: usize) -> String {
    let start = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: ";
    let end = "\r\n\r\n";
    let pad = "a".repeat(head - start.len() - end.len());
    let request = format!("{start}{pad}{end}");
    assert_eq!(request.len(), head);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).lines().next().unwrap_or("").to_string()
}

#[test]
fn request_heads_are_bounded_at_64_kib() {
    let exporter = Exporter::start(&config(&format!("http://127.0.0.1:{}", free_port()), ""));
    assert_eq!(status_for_head_of(exporter.port, 63 * 1024), "HTTP/1.1 200 OK");
    assert_eq!(status_for_head_of(exporter.port, 64 * 1024), "HTTP/1.1 200 OK");
    for head in [64 * 1024 + 1, 65 * 1024, 100 * 1024, 127 * 1024] {
        assert_eq!(status_for_head_of(exporter.port, head), "HTTP/1.1 431 Request Header Fields Too Large", "{head}");
    }
}
