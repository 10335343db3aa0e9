//! The rest of exporter-toolkit's web configuration, through the real binary: TLS versions,
//! TLS 1.2 cipher suites and curves checked with `openssl s_client`, names rustls cannot do
//! refused naming them, `rate_limit` answering 429 to curl, `http_server_config.http2` accepted.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{config, free_port, Exporter};

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// A P-256 certificate for localhost in `dir` (cert.pem, key.pem).
fn certificate(dir: &Path) {
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// An exporter serving TLS with `tls` (keys under tls_server_config) and `rest` of the web config.
fn exporter(dir: &Path, tls: &str, rest: &str) -> Exporter {
    let web =
        write(dir, "web.yml", &format!("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n{tls}{rest}"));
    Exporter::start_with(&config(&format!("http://127.0.0.1:{}", free_port()), ""), &[], &["--web.config.file", &web])
}

/// `openssl s_client` with `args`: whether the handshake succeeded, and what it printed.
fn handshake(port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["s_client", "-brief", "-connect", &format!("127.0.0.1:{port}")])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success() && text.contains("CONNECTION ESTABLISHED"), text)
}

#[test]
fn tls_versions_cipher_suites_and_curves_are_what_openssl_can_negotiate() {
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path());

    let only13 = exporter(dir.path(), "  min_version: TLS13\n", "");
    let (ok, text) = handshake(only13.port, &["-tls1_2"]);
    assert!(!ok, "TLS 1.2 refused with min_version TLS13: {text}");
    let (ok, text) = handshake(only13.port, &["-tls1_3"]);
    assert!(ok && text.contains("TLSv1.3"), "{text}");
    drop(only13);

    let one_suite = exporter(
        dir.path(),
        "  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n  prefer_server_cipher_suites: true\n",
        "",
    );
    let (ok, text) = handshake(one_suite.port, &["-tls1_3"]);
    assert!(!ok, "TLS 1.3 refused with max_version TLS12: {text}");
    let (ok, text) = handshake(one_suite.port, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]);
    assert!(!ok, "a suite not listed is refused: {text}");
    let (ok, text) = handshake(one_suite.port, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"]);
    assert!(ok && text.contains("ECDHE-ECDSA-AES256-GCM-SHA384"), "{text}");
    drop(one_suite);

    let p384 = exporter(dir.path(), "  curve_preferences: [CurveP384]\n", "");
    let (ok, text) = handshake(p384.port, &["-groups", "X25519"]);
    assert!(!ok, "X25519 refused with curve_preferences [CurveP384]: {text}");
    let (ok, text) = handshake(p384.port, &["-groups", "P-384"]);
    assert!(ok, "{text}");
}

#[test]
fn names_rustls_cannot_do_are_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path());
    let cfg = write(dir.path(), "c.yml", &config("http://127.0.0.1:1", ""));
    let tls = "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n";
    for (extra, want) in [
        ("  min_version: TLS11\n", "TLS11 is refused: rustls implements TLS12 and TLS13 only"),
        ("  max_version: SSL3\n", "\"SSL3\" is not a TLS version"),
        ("  min_version: TLS13\n  max_version: TLS12\n", "key `tls_server_config.min_version`: is above max_version"),
        ("  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n", "TLS_RSA_WITH_AES_128_CBC_SHA is refused"),
        ("  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", "TLS_AES_128_GCM_SHA256 is a TLS 1.3 suite"),
        ("  curve_preferences: [X25519, CurveP521]\n", "CurveP521 is refused: rustls has no P-521 key exchange"),
        ("rate_limit:\n  interval: 1s\n  burst: 0\n", "key `rate_limit.burst`: must be at least 1"),
        ("rate_limit:\n  interval: 0s\n  burst: 3\n", "key `rate_limit.interval`: must be above 0"),
        ("http_server_config:\n  http2: maybe\n", "http2"),
        (
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: cert.pem\n  client_allowed_sans: [mailto:a@b.example]\n",
            "\"mailto:a@b.example\" is refused: only DNS names and IP addresses",
        ),
        ("  client_allowed_sans: [prometheus.example]\n", "needs client_auth_type RequireAndVerifyClientCert"),
    ] {
        let web = write(dir.path(), "web.yml", &format!("{tls}{extra}"));
        let out = Command::new(env!("CARGO_BIN_EXE_polo-exporter"))
            .args(["--config.file", &cfg, "--web.config.file", &web, "--config.check"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra}");
        assert!(stderr.contains(want), "expected {want}, got {stderr}");
    }
}

#[test]
fn rate_limit_answers_429_beyond_the_burst() {
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path());
    // One token an hour: the burst of 3 is all this test gets.
    let exporter =
        exporter(dir.path(), "", "rate_limit:\n  interval: 1h\n  burst: 3\nhttp_server_config:\n  http2: true\n");
    let status = |path: &str| {
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--cacert"])
            .arg(dir.path().join("cert.pem"))
            .arg(format!("https://127.0.0.1:{}{path}", exporter.port))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Exporter::start_with's readiness probe only connects (no request), so the bucket is full.
    let codes: Vec<String> = ["/healthz", "/metrics", "/", "/healthz", "/metrics"].iter().map(|p| status(p)).collect();
    assert_eq!(codes, ["200", "200", "200", "429", "429"]);
}

#[test]
fn listen_address_repeats_and_both_addresses_answer() {
    let other = free_port();
    let exporter = Exporter::start_with(
        &config(&format!("http://127.0.0.1:{}", free_port()), ""),
        &[],
        &["--web.listen-address", &format!("127.0.0.1:{other}")],
    );
    for port in [exporter.port, other] {
        let resp = common::http(port, "GET", "/healthz", &[], "");
        assert_eq!((resp.status, resp.body.as_str()), (200, "OK\n"), "port {port}");
    }
    let log = exporter.log();
    assert!(log.contains(&format!("127.0.0.1:{},127.0.0.1:{other}", exporter.port)), "{log}");
}

#[test]
fn systemd_socket_activation_serves_the_passed_socket() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "c.yml", &config(&format!("http://127.0.0.1:{}", free_port()), ""));
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    // systemd's own tool: it listens, then starts the exporter with the socket as descriptor 3.
    let mut child = Command::new("systemd-socket-activate")
        .args(["-l", &format!("127.0.0.1:{port}"), env!("CARGO_BIN_EXE_polo-exporter")])
        .args(["--config.file", &cfg, "--web.systemd-socket"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("systemd-socket-activate runs");
    let mut answer = String::new();
    for _ in 0..100 {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "20", &format!("http://127.0.0.1:{port}/healthz")])
            .output();
        if let Some(out) = out.ok().filter(|o| o.status.success()) {
            answer = String::from_utf8_lossy(&out.stdout).into_owned();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert_eq!(answer, "OK\n", "{log}");
    assert!(log.contains("systemd_socket=true") && log.contains(&format!("address=127.0.0.1:{port}")), "{log}");
    // Without systemd's variables, the flag is an error that says so.
    let out = Command::new(env!("CARGO_BIN_EXE_polo-exporter"))
        .args(["--config.file", &cfg, "--web.systemd-socket"])
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--web.systemd-socket: LISTEN_PID is not set"));
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A client certificate `name`.pem/.key signed by ca.pem, with `san` as its one SAN.
fn client_certificate(dir: &Path, name: &str, san: &str) {
    let ext = write(dir, &format!("{name}.ext"), &format!("subjectAltName={san}\nextendedKeyUsage=clientAuth\n"));
    let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    openssl(
        dir,
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
            "-days",
            "1",
            "-out",
            &pem,
            "-extfile",
            &ext,
        ],
    );
}

#[test]
fn client_allowed_sans_admits_only_the_named_client() {
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path());
    openssl(
        dir.path(),
        &[
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
            "/CN=clients-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    client_certificate(dir.path(), "prometheus", "DNS:prometheus.example");
    client_certificate(dir.path(), "intruder", "DNS:intruder.example");
    let exporter = exporter(
        dir.path(),
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  client_allowed_sans: [prometheus.example, 10.0.0.7]\n",
        "",
    );
    let get = |client: &str| {
        let out = Command::new("curl")
            .current_dir(dir.path())
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--cacert", "cert.pem"])
            .args(["--cert", &format!("{client}.pem"), "--key", &format!("{client}.key")])
            .arg(format!("https://127.0.0.1:{}/healthz", exporter.port))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(get("prometheus"), "200");
    assert_eq!(get("intruder"), "000", "the handshake fails: no allowed SAN");
}
