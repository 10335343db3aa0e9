//! Bounded answers (issue 19, item 3): a ClickHouse that answers with a 20 MiB error body, with
//! an exception announced by header on a 200 followed by 20 MiB of rows, or with an exception in
//! the middle of a good answer. The exporter reports the source down with the exception's kind,
//! logs one bounded line without row data, and its memory peak stays that of a small answer.
//!
//! The ClickHouse here is a fake on purpose: no real server sends these answers on demand.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::{config, proc_status, Exporter, Metrics};

const BIG: usize = 20 * 1024 * 1024;
/// What a row looks like in the fake's bodies; must never reach a log line.
const ROW: &str = "ROWDATA-acct-123456789012,secret-value;";
/// The longest log line allowed (the error text is bounded to 1 KiB, plus the line's fields).
const MAX_LINE: usize = 1536;

#[derive(Clone, Copy, Debug)]
enum Answer {
    /// 500 with the exception text, then `padding` bytes more.
    Status500 { padding: usize },
    /// 200 with X-ClickHouse-Exception-Code and `rows` bytes of rows.
    HeaderOn200 { rows: usize },
    /// 200, chunked: some rows, then the exception text in the same chunk.
    MidStream,
}

fn repeat_to(unit: &str, len: usize) -> Vec<u8> {
    unit.as_bytes().iter().copied().cycle().take(len).collect()
}

/// Reads one request (headers, then a Content-Length or chunked body).
fn read_request(conn: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut byte) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&byte[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).map(|v| v.trim().parse::<usize>().unwrap());
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let body = &buf[head_end..];
        let done = match length {
            Some(n) => body.len() >= n,
            None => !chunked || body.ends_with(b"0\r\n\r\n"),
        };
        if done {
            return true;
        }
        match conn.read(&mut byte) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&byte[..n]),
        }
    }
}

fn respond(conn: &mut TcpStream, answer: Answer) {
    let exception = |code: u32, name: &str, text: &str| {
        format!("Code: {code}. DB::Exception: {text}. ({name}) (version 24.8.1.1 (official build))\n")
    };
    let (head, body) = match answer {
        Answer::Status500 { padding } => {
            let mut body = exception(241, "MEMORY_LIMIT_EXCEEDED", "Memory limit (total) exceeded").into_bytes();
            body.extend(repeat_to("error page padding; ", padding));
            (
                format!(
                    "HTTP/1.1 500 Internal Server Error\r\nX-ClickHouse-Exception-Code: 241\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                ),
                body,
            )
        }
        Answer::HeaderOn200 { rows } => (
            format!("HTTP/1.1 200 OK\r\nX-ClickHouse-Exception-Code: 202\r\nContent-Length: {rows}\r\n\r\n"),
            repeat_to(ROW, rows),
        ),
        Answer::MidStream => {
            // Rows, then a long exception text: the chunk the crate finds it in is bounded,
            // the log line is cut to 1 KiB.
            let mut chunk = repeat_to(ROW, 1000);
            let long = format!("Timeout exceeded: elapsed 5.1 s, maximum: 5 s; {}", "detail ".repeat(400));
            chunk.extend(exception(159, "TIMEOUT_EXCEEDED", &long).into_bytes());
            let mut body = format!("{:x}\r\n", chunk.len()).into_bytes();
            body.extend(chunk);
            body.extend(b"\r\n0\r\n\r\n");
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_string(), body)
        }
    };
    let mut all = head.into_bytes();
    all.extend(body);
    // The exporter hangs up after the first KiBs of a large answer: the write then fails.
    let _ = conn.write_all(&all);
    let _ = conn.flush();
}

/// A fake ClickHouse giving `answer` to every request; its port.
fn fake_clickhouse(answer: Answer) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                while read_request(&mut conn) {
                    respond(&mut conn, answer);
                }
            });
        }
    });
    port
}

struct Run {
    kind_errors: f64,
    up: Option<f64>,
    failure_line: String,
    log: String,
    peak_kib: u64,
}

fn run(answer: Answer, kind: &str) -> Run {
    let port = fake_clickhouse(answer);
    let exporter = Exporter::start(&config(
        &format!("http://127.0.0.1:{port}"),
        "sources:\n  collector_runs:\n    enabled: false\n  clickhouse_system:\n    enabled: false\n",
    ));
    let m: Metrics = exporter.scrape();
    let log = exporter.log();
    let failure_line = log
        .lines()
        .find(|l| l.contains("source failed") && l.contains("source=accounts"))
        .unwrap_or_else(|| panic!("{answer:?}: no failure line in\n{log}"))
        .to_string();
    Run {
        kind_errors: m.value("polo_exporter_source_errors_total", &[("source", "accounts"), ("kind", kind)]).unwrap(),
        up: m.value("polo_exporter_source_up", &[("source", "accounts")]),
        failure_line,
        log,
        peak_kib: proc_status(exporter.pid(), "VmHWM"),
    }
}

fn check(answer: Answer, kind: &str, expect_in_line: &str) -> Run {
    let r = run(answer, kind);
    assert_eq!(r.up, Some(0.0), "{answer:?}");
    assert_eq!(r.kind_errors, 1.0, "{answer:?}: filed as kind={kind}: {}", r.failure_line);
    assert!(r.failure_line.contains(&format!("kind={kind}")), "{}", r.failure_line);
    assert!(r.failure_line.contains(expect_in_line), "{answer:?}: {}", r.failure_line);
    assert!(r.failure_line.len() <= MAX_LINE, "{answer:?}: a log line of {} bytes", r.failure_line.len());
    for line in r.log.lines() {
        assert!(line.len() <= MAX_LINE, "{answer:?}: a log line of {} bytes: {}…", line.len(), &line[..200]);
        assert!(!line.contains("ROWDATA"), "{answer:?}: row data in the log: {}", &line[..line.len().min(300)]);
    }
    r
}

fn report(what: &str, big: &Run, small: &Run) {
    eprintln!(
        "{what}: peak RSS {} KiB with a {} MiB body, {} KiB with a small one (difference {} KiB); failure line {} bytes",
        big.peak_kib,
        BIG >> 20,
        small.peak_kib,
        big.peak_kib as i64 - small.peak_kib as i64,
        big.failure_line.len()
    );
    assert!(
        big.peak_kib < small.peak_kib + 10 * 1024,
        "{what}: peak RSS {} KiB with the large body against {} KiB",
        big.peak_kib,
        small.peak_kib
    );
}

#[test]
fn a_20_mib_error_body_is_read_to_a_few_kib() {
    let big = check(Answer::Status500 { padding: BIG }, "query", "Code: 241");
    let small = check(Answer::Status500 { padding: 0 }, "query", "Code: 241");
    assert!(big.failure_line.contains("bytes)"), "the cut is marked: {}", big.failure_line);
    report("500", &big, &small);
}

#[test]
fn an_exception_header_on_a_200_reads_no_row() {
    let big = check(Answer::HeaderOn200 { rows: BIG }, "limit", "Code: 202");
    let small = check(Answer::HeaderOn200 { rows: 4096 }, "limit", "Code: 202");
    report("200 with X-ClickHouse-Exception-Code", &big, &small);
}

#[test]
fn an_exception_mid_stream_is_logged_bounded_without_rows() {
    let r = check(Answer::MidStream, "timeout", "Code: 159");
    assert!(r.failure_line.contains("bytes)"), "the long message is cut: {}", r.failure_line);
}
