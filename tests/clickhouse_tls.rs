//! HTTPS to ClickHouse: the exporter scrapes the dev ClickHouse's HTTPS listener (Python ssl on
//! the real engine) with a throwaway CA made by openssl at test time; a wrong CA, an expired
//! certificate and a host-name mismatch each give a TLS error of kind `connect` and
//! `polo_exporter_source_up 0`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{config, free_port, DevClickHouse, Exporter};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA, and a server certificate signed by it for `san`, valid for `days` (negative: expired).
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let pki = Self { dir: tempfile::tempdir().unwrap() };
        for ca in ["ca", "other-ca"] {
            openssl(
                pki.path(),
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.pem"),
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN=polo test {ca}"),
                ],
            );
        }
        pki
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    fn server_cert(&self, name: &str, san: &str, days: i32) -> (PathBuf, PathBuf) {
        let (key, csr, pem, ext) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"));
        std::fs::write(self.file(&ext), format!("subjectAltName={san}\n")).unwrap();
        openssl(
            self.path(),
            &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", "/CN=dev-clickhouse"],
        );
        openssl(
            self.path(),
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                &days.to_string(),
                "-extfile",
                &ext,
            ],
        );
        (self.file(&pem), self.file(&key))
    }
}

/// The dev ClickHouse with an HTTPS listener serving `cert`; returns it and the HTTPS port.
fn https_clickhouse(cert: &Path, key: &Path) -> (DevClickHouse, u16) {
    https_clickhouse_with(cert, key, &[])
}

fn https_clickhouse_with(cert: &Path, key: &Path, extra: &[&str]) -> (DevClickHouse, u16) {
    let port = free_port();
    let (cert, key, port_s) = (cert.display().to_string(), key.display().to_string(), port.to_string());
    let mut args =
        vec!["--seed", "empty", "--no-query-log", "--https-port", &port_s, "--tls-cert", &cert, "--tls-key", &key];
    args.extend_from_slice(extra);
    let ch = DevClickHouse::start_with_args(&args);
    (ch, port)
}

fn exporter(url: &str, tls: &str) -> Exporter {
    Exporter::start(&config(url, &format!("  tls:\n{tls}sources:\n  clickhouse_system:\n    query_log: false\n")))
}

fn up(e: &Exporter, source: &str) -> Option<f64> {
    e.scrape().value("polo_exporter_source_up", &[("source", source)])
}

fn assert_tls_failure(e: &Exporter, why: &str) {
    let m = e.scrape();
    for source in ["clickhouse_system", "collector_runs", "accounts"] {
        assert_eq!(m.value("polo_exporter_source_up", &[("source", source)]), Some(0.0), "{source}: {}", e.log());
        assert_eq!(
            m.value("polo_exporter_source_errors_total", &[("source", source), ("kind", "connect")]),
            Some(1.0),
            "{}",
            e.log()
        );
    }
    let log = e.log();
    assert!(log.contains("TLS handshake with the ClickHouse server failed"), "{log}");
    assert!(log.contains(why), "expected {why:?} in\n{log}");
}

#[test]
fn https_with_the_test_ca_and_with_a_wrong_ca() {
    let pki = Pki::new();
    let (cert, key) = pki.server_cert("server", "DNS:localhost,IP:127.0.0.1", 1);
    let (_ch, port) = https_clickhouse(&cert, &key);
    let ca = pki.file("ca.pem").display().to_string();

    let good = exporter(&format!("https://localhost:{port}"), &format!("    ca_file: {ca}\n"));
    for source in ["clickhouse_system", "collector_runs", "accounts"] {
        assert_eq!(up(&good, source), Some(1.0), "{source} over HTTPS: {}", good.log());
    }
    assert!(good.scrape().has("polo_clickhouse_disk_total_bytes"));

    let other = pki.file("other-ca.pem").display().to_string();
    let wrong_ca = exporter(&format!("https://localhost:{port}"), &format!("    ca_file: {other}\n"));
    assert_tls_failure(&wrong_ca, "not signed by a trusted CA");

    // insecure_skip_verify: works without the CA, and says so loudly at start.
    let insecure = exporter(&format!("https://localhost:{port}"), "    insecure_skip_verify: true\n");
    assert_eq!(up(&insecure, "clickhouse_system"), Some(1.0), "{}", insecure.log());
    assert!(insecure.log().contains("NOT verified"), "{}", insecure.log());
}

#[test]
fn a_certificate_for_another_host_is_a_tls_error() {
    let pki = Pki::new();
    let (cert, key) = pki.server_cert("elsewhere", "DNS:elsewhere.example", 1);
    let (_ch, port) = https_clickhouse(&cert, &key);
    let ca = pki.file("ca.pem").display().to_string();
    let e = exporter(&format!("https://localhost:{port}"), &format!("    ca_file: {ca}\n"));
    assert_tls_failure(&e, "not valid for the host name");
}

#[test]
fn an_expired_certificate_is_a_tls_error() {
    let pki = Pki::new();
    let (cert, key) = pki.server_cert("expired", "DNS:localhost,IP:127.0.0.1", -1);
    let (_ch, port) = https_clickhouse(&cert, &key);
    let ca = pki.file("ca.pem").display().to_string();
    let e = exporter(&format!("https://localhost:{port}"), &format!("    ca_file: {ca}\n"));
    assert_tls_failure(&e, "expired");
}

/// A server that requires a client certificate: refused without one, works with one signed by
/// the CA it trusts (clickhouse.tls.cert_file / key_file).
#[test]
fn a_client_certificate_when_the_server_requires_one() {
    let pki = Pki::new();
    let (cert, key) = pki.server_cert("server", "DNS:localhost,IP:127.0.0.1", 1);
    // The client's certificate, from the same CA (any SAN will do for a client).
    let (client_cert, client_key) = pki.server_cert("client", "DNS:polo-exporter", 1);
    let ca = pki.file("ca.pem").display().to_string();
    let (_ch, port) = https_clickhouse_with(&cert, &key, &["--tls-client-ca", &ca]);
    let url = format!("https://localhost:{port}");

    let without = exporter(&url, &format!("    ca_file: {ca}\n"));
    let m = without.scrape();
    assert_eq!(m.value("polo_exporter_source_up", &[("source", "clickhouse_system")]), Some(0.0), "{}", without.log());
    assert_eq!(
        m.value("polo_exporter_source_errors_total", &[("source", "clickhouse_system"), ("kind", "connect")]),
        Some(1.0),
        "{}",
        without.log()
    );
    assert!(without.log().contains("TLS handshake with the ClickHouse server failed"), "{}", without.log());

    let with = exporter(
        &url,
        &format!(
            "    ca_file: {ca}\n    cert_file: {}\n    key_file: {}\n",
            client_cert.display(),
            client_key.display()
        ),
    );
    for source in ["clickhouse_system", "collector_runs", "accounts"] {
        assert_eq!(up(&with, source), Some(1.0), "{source} with a client certificate: {}", with.log());
    }
}

#[test]
fn tls_keys_are_checked_at_start() {
    let bin = env!("CARGO_BIN_EXE_polo-exporter");
    let dir = tempfile::tempdir().unwrap();
    let check = |yaml: &str| {
        let file = dir.path().join("c.yml");
        std::fs::write(&file, yaml).unwrap();
        let out = Command::new(bin).args(["--config.file", file.to_str().unwrap(), "--config.check"]).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout))
    };
    let (ok, text) = check("clickhouse:\n  url: http://127.0.0.1:8123\n  tls:\n    ca_file: x.pem\n");
    assert!(!ok && text.contains("clickhouse.tls") && text.contains("https://"), "{text}");
    let (ok, text) = check("clickhouse:\n  url: https://127.0.0.1:8443\n  tls:\n    ca_file: missing.pem\n");
    assert!(!ok && text.contains("clickhouse.tls.ca_file") && text.contains(":4:"), "{text}");
    let (ok, text) = check("clickhouse:\n  url: https://127.0.0.1:8443\n  tls:\n    cert_file: c.pem\n");
    assert!(!ok && text.contains("needs clickhouse.tls.key_file"), "{text}");
    let (ok, text) = check("clickhouse:\n  url: https://127.0.0.1:8443\n");
    assert!(ok, "https with the system's CAs is accepted: {text}");
}
