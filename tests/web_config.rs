//! `--web.config.file` (exporter-toolkit format): basic auth with bcrypt, response headers, TLS.

mod common;

use std::process::Command;

use base64::Engine;
use common::{config, free_port, http, Exporter};

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn basic_auth_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret-pass", 4).unwrap();
    let web = write(
        dir.path(),
        "web.yml",
        &format!(
            "basic_auth_users:\n  prometheus: '{hash}'\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n"
        ),
    );
    let exporter = Exporter::start_with(
        &config(&format!("http://127.0.0.1:{}", free_port()), ""),
        &[],
        &["--web.config.file", &web],
    );
    let anonymous = http(exporter.port, "GET", "/metrics", &[], "");
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.header("www-authenticate"), Some("Basic realm=\"polo-exporter\""));
    assert_eq!(anonymous.header("x-frame-options"), Some("deny"));
    assert_eq!(
        http(exporter.port, "GET", "/metrics", &[("Authorization", &basic("prometheus", "wrong"))], "").status,
        401
    );
    assert_eq!(
        http(exporter.port, "GET", "/metrics", &[("Authorization", &basic("nobody", "s3cret-pass"))], "").status,
        401
    );
    for _ in 0..2 {
        let ok = http(exporter.port, "GET", "/metrics", &[("Authorization", &basic("prometheus", "s3cret-pass"))], "");
        assert_eq!(ok.status, 200);
        assert!(ok.body.ends_with("# EOF\n"));
        assert_eq!(ok.header("x-frame-options"), Some("deny"));
    }
    assert!(!exporter.log().contains("s3cret-pass"));
}

#[test]
fn serves_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(dir.path().join("key.pem"))
        .arg("-out")
        .arg(dir.path().join("cert.pem"))
        .output()
        .expect("openssl runs");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let web = write(dir.path(), "web.yml", "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n");
    let exporter = Exporter::start_with(
        &config(&format!("http://127.0.0.1:{}", free_port()), ""),
        &[],
        &["--web.config.file", &web],
    );
    let url = format!("https://127.0.0.1:{}/metrics", exporter.port);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(dir.path().join("cert.pem"))
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("# EOF\n"));
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = Command::new("curl").args(["-sS", "--max-time", "5", &url.replace("https", "http")]).output().unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("# EOF"));
}

#[test]
fn bad_web_config_is_rejected_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "c.yml", &config("http://127.0.0.1:1", ""));
    for (web, want) in [
        ("basic_auth_user:\n  a: b\n", "web.yml:1: key `basic_auth_user`"),
        ("basic_auth_users:\n  a: plaintext\n", "web.yml:2: key `basic_auth_users.a`"),
        // A valid prefix, a damaged rest: refused at start, naming the user.
        ("basic_auth_users:\n  alice: '$2y$10$tooshort'\n", "web.yml:2: key `basic_auth_users.alice`"),
        ("basic_auth_users:\n  alice: '$2y$10$tooshort'\n", "user \"alice\" is not a valid bcrypt hash"),
        // exporter-toolkit's refusal: a client CA without a policy would leave mTLS off.
        (
            "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  client_ca_file: ca.pem\n",
            "Client CA's have been configured without a Client Auth Policy",
        ),
        (
            "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  client_auth_type: RequireAnyClientCert\n",
            "RequireAnyClientCert is refused",
        ),
        (
            "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  client_auth_type: RequestClientCert\n",
            "RequestClientCert is refused",
        ),
        (
            "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  client_auth_type: VerifyClientCertIfGiven\n",
            "is required with client_auth_type VerifyClientCertIfGiven",
        ),
        (
            "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  client_auth_type: Sometimes\n",
            "\"Sometimes\" is not a client_auth_type",
        ),
        (
            "tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.pem\n",
            "web.yml:2: key `tls_server_config.cert_file`",
        ),
    ] {
        let web_path = write(dir.path(), "web.yml", web);
        // A real certificate, so that the TLS cases fail on what they test.
        let status = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(dir.path().join("k.pem"))
            .arg("-out")
            .arg(dir.path().join("c.pem"))
            .output()
            .unwrap();
        assert!(status.status.success());
        let out = Command::new(env!("CARGO_BIN_EXE_polo-exporter"))
            .args(["--config.file", &cfg, "--web.config.file", &web_path, "--config.check"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains(want), "expected {want}, got {stderr}");
    }
}

/// Issue 19, item 4: a flood of wrong passwords (300 at once, known and unknown users) cannot
/// take the CPU: bcrypt runs 2 at a time, 16 more wait, the rest are refused at once; /healthz
/// with good credentials stays answered throughout, and the exporter's threads stay few.
#[test]
fn a_password_flood_cannot_starve_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret-pass", 8).unwrap();
    let web = write(dir.path(), "web.yml", &format!("basic_auth_users:\n  prometheus: '{hash}'\n"));
    let exporter = Exporter::start_with(
        &config(&format!("http://127.0.0.1:{}", free_port()), ""),
        &[],
        &["--web.config.file", &web],
    );
    let good = basic("prometheus", "s3cret-pass");
    // The scheme is matched case-insensitively (RFC 7235).
    let lower = good.replacen("Basic", "basic", 1);
    assert_eq!(http(exporter.port, "GET", "/healthz", &[("Authorization", &lower)], "").status, 200);
    let port = exporter.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood: Vec<_> = (0..300)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let user = if i % 2 == 0 { "prometheus" } else { "nobody" };
                let mut statuses = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && statuses.len() < 20 {
                    let auth = basic(user, &format!("wrong-{i}-{}", statuses.len()));
                    statuses.push(http(port, "GET", "/metrics", &[("Authorization", &auth)], "").status);
                }
                statuses
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut max_threads = 0;
    for _ in 0..50 {
        let start = std::time::Instant::now();
        assert_eq!(http(port, "GET", "/healthz", &[("Authorization", &good)], "").status, 200);
        latencies.push(start.elapsed());
        max_threads = max_threads.max(common::proc_status(exporter.pid(), "Threads"));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses: Vec<u16> = flood.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert!(statuses.iter().all(|s| *s == 401), "every wrong password is refused");
    latencies.sort();
    eprintln!(
        "flood: {} wrong-password requests; /healthz p50 {:?}, max {:?}; exporter threads at most {max_threads}",
        statuses.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    // Runtime workers, the bcrypt pair and a few helpers: not one thread per request.
    assert!(max_threads <= 16, "{max_threads} threads under the flood");
}
