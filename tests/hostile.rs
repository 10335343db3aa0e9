//! Hostile or unlucky clients and inputs (issue 12), against the real binary: logs on stderr,
//! absurd headers, bounded config input, reload on SIGHUP, graceful stop on SIGTERM.

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{config, free_port};

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
