//! The properties the fuzz targets check (`fuzz/`, cargo-fuzz with libFuzzer), kept here so
//! that the seed corpus and every crash found run as ordinary tests too (`tests/fuzz_seeds.rs`).
//! Each function takes arbitrary bytes and panics if a property does not hold.

use std::path::Path;
use std::time::Duration;

use crate::config::{duration, ConfigError};
use crate::config_file::Config;
use crate::http;
use crate::metrics::{self, Def};
use crate::web::WebSecurity;

/// A property check over arbitrary bytes.
pub type Check = fn(&[u8]);

/// The fuzz targets, by name: the directory names under `fuzz/seeds/`.
pub const TARGETS: [(&str, Check); 6] = [
    ("config", config),
    ("web_config", web_config),
    ("scrape_timeout", scrape_timeout),
    ("accept", accept),
    ("label_values", label_values),
    ("duration", duration_text),
];

/// The error names the file and a real line of it (never `?`, never past the end), lines
/// counted as YAML counts them.
fn check_located(err: &ConfigError, name: &str, text: &str) {
    let text = &crate::config::bounds::normalize_line_breaks(text);
    let shown = err.to_string();
    match err {
        ConfigError::Read { .. } => {}
        ConfigError::Invalid { line, .. } => {
            let line = line.unwrap_or_else(|| panic!("no line: {shown}"));
            assert!(
                line >= 1 && line <= text.lines().count() + 1,
                "line {line} of {} lines: {shown}",
                text.lines().count()
            );
            assert!(shown.starts_with(&format!("{name}:{line}: key `")), "{shown}");
        }
        ConfigError::Input { line, .. } => {
            assert!(*line >= 1 && *line <= text.lines().count() + 1, "{shown}");
        }
    }
}

/// Any text as the config file: a config or an error naming a line; never a panic.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(err) = Config::from_yaml(text, Path::new("fuzz.yml"), &|_| None) {
        check_located(&err, "fuzz.yml", text);
    }
}

/// Any text as the web config file (relative files under a directory that does not exist).
pub fn web_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(err) = WebSecurity::from_yaml(text, Path::new("/nonexistent/polo-fuzz/web.yml")) {
        check_located(&err, "/nonexistent/polo-fuzz/web.yml", text);
    }
}

/// Any bytes as `X-Prometheus-Scrape-Timeout-Seconds`: a budget within its bounds, which
/// can be added to the clock.
pub fn scrape_timeout(data: &[u8]) {
    if let Some(timeout) = http::parse_scrape_timeout(data) {
        assert!(timeout <= http::MAX_SCRAPE_TIMEOUT, "{timeout:?}");
    }
    let Ok(value) = hyper::header::HeaderValue::from_bytes(data) else { return };
    let req = hyper::Request::builder().header("X-Prometheus-Scrape-Timeout-Seconds", value).body(()).unwrap();
    for offset in [Duration::ZERO, Duration::from_millis(500), duration::MAX] {
        let budget = http::scrape_budget(&req, offset);
        assert!(budget >= http::MIN_SCRAPE_BUDGET || budget == http::DEFAULT_SCRAPE_TIMEOUT, "{budget:?}");
        assert!(budget <= http::MAX_SCRAPE_TIMEOUT.max(http::DEFAULT_SCRAPE_TIMEOUT), "{budget:?}");
        assert!(tokio::time::Instant::now().checked_add(budget).is_some());
    }
}

/// Any bytes as `Accept` values (split at NUL into several headers): an answer, no panic,
/// OpenMetrics when neither a text type nor protobuf is named, protobuf only when named.
pub fn accept(data: &[u8]) {
    let mut req = hyper::Request::builder();
    for part in data.split(|b| *b == 0) {
        if let Ok(value) = hyper::header::HeaderValue::from_bytes(part) {
            req = req.header(hyper::header::ACCEPT, value);
        }
    }
    let Ok(req) = req.body(()) else { return };
    let format = http::exposition_format(&req);
    let joined: String = req
        .headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase();
    if !joined.contains("text/") && !joined.contains("application/vnd.google.protobuf") {
        assert_eq!(format, crate::metrics::Format::OpenMetrics, "{joined:?}");
    }
    if format == crate::metrics::Format::Protobuf {
        assert!(joined.contains("application/vnd.google.protobuf"), "{joined:?}");
    }
}

static FUZZ: Def = Def::gauge("polo_fuzz", "Label values from the fuzzer.", &["a", "b", "c"]);

/// Any bytes as label values (lossy UTF-8, split at NUL): each exported value is clean
/// (no control or format character), at most 200 characters, stable when cleaned again, and
/// reads back from the encoded OpenMetrics text as exactly that value.
pub fn label_values(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0').map(String::from);
    let values: [String; 3] = std::array::from_fn(|_| parts.next().unwrap_or_default());
    let expected: Vec<String> = values.iter().map(|v| metrics::label_value(v).into_owned()).collect();
    for (raw, clean) in values.iter().zip(&expected) {
        assert!(clean.chars().count() <= metrics::MAX_LABEL_VALUE_CHARS, "{raw:?}");
        assert!(!clean.chars().any(|c| c.is_control() || metrics::is_format_char(c)), "{clean:?}");
        assert_eq!(metrics::label_value(clean), clean.as_str(), "cleaning twice changes nothing");
    }
    let encoded = metrics::encode_sets(vec![std::sync::Arc::new(vec![FUZZ.family().with(values, 1.0)])]);
    let line = encoded.lines().find(|l| l.starts_with("polo_fuzz{")).expect("a sample line");
    assert_eq!(
        read_labels(line),
        vec![("a", expected[0].clone()), ("b", expected[1].clone()), ("c", expected[2].clone())],
        "{line}"
    );
}

/// The labels of one OpenMetrics sample line (`name{k="v",...} value`), escapes undone.
fn read_labels(line: &str) -> Vec<(&str, String)> {
    let mut rest = &line[line.find('{').expect("labels") + 1..];
    let mut labels = Vec::new();
    while !rest.starts_with('}') {
        let (key, after) = rest.split_once("=\"").expect("key=\"");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("closing quote") {
                (i, '"') => break i,
                (_, '\\') => match chars.next().expect("escaped character").1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => panic!("unknown escape \\{c} in {line}"),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key, value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    labels
}

/// Any text as a duration: accepted ones are at most 10y and survive formatting and parsing again.
pub fn duration_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(d) = duration::parse(text) {
        assert!(d <= duration::MAX, "{text:?}");
        assert_eq!(duration::parse(&duration::format(d)), Ok(d), "{text:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_labels_back_with_escapes() {
        let line = r#"polo_fuzz{a="q\"uo\\te\nx",b="",c="…é"} 1.0"#;
        assert_eq!(
            read_labels(line),
            vec![("a", "q\"uo\\te\nx".to_string()), ("b", String::new()), ("c", "…é".to_string())]
        );
    }

    #[test]
    #[should_panic(expected = "reads back")]
    fn a_value_that_does_not_read_back_is_caught() {
        let line = r#"polo_fuzz{a="x"} 1.0"#;
        assert_eq!(read_labels(line), vec![("a", "y".to_string())], "reads back");
    }
}
