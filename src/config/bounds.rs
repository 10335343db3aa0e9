//! Bounds on YAML input (the config file and the web config file), checked on the text before
//! the YAML parser sees it, so that a hostile or mistaken file is rejected fast and with its
//! line:
//!
//! - size: at most [`MAX_BYTES`];
//! - nesting: at most [`MAX_FLOW_DEPTH`] levels of `[`/`{` (the parser takes time quadratic in
//!   that depth: 200 KB of `{a: ` took half a minute); block nesting is bounded by the parser's
//!   own recursion limit (128).
//!
//! Values are bounded elsewhere: every duration at 10y by [`super::duration::parse`], and each
//! key by its validation (`Validator::duration`, e.g. every `timeout` at 10m).

/// Largest accepted file: configuration files are a few kilobytes.
pub const MAX_BYTES: usize = 1 << 20;
/// Deepest accepted flow nesting (`[[...]]`, `{a: {b: ...}}`).
pub const MAX_FLOW_DEPTH: usize = 32;

/// Reads a configuration file, at most one byte more than [`MAX_BYTES`] (so that
/// [`prescan`] refuses it by its size): a path to something endless cannot exhaust memory.
pub fn read(path: &std::path::Path) -> Result<String, super::ConfigError> {
    use std::io::Read;
    let error = |source| super::ConfigError::Read { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(error)?;
    // A regular file's real size, when it says so; anything else is read to the bound.
    if let Ok(meta) = file.metadata() {
        if meta.is_file() && meta.len() > MAX_BYTES as u64 {
            return Err(super::ConfigError::Input {
                path: path.to_path_buf(),
                line: 1,
                message: too_big(Some(meta.len())),
            });
        }
    }
    let mut text = String::new();
    file.take(MAX_BYTES as u64 + 1).read_to_string(&mut text).map_err(error)?;
    Ok(text)
}

/// The refusal of a file beyond [`MAX_BYTES`], with its size when known.
fn too_big(size: Option<u64>) -> String {
    match size {
        Some(size) => format!(
            "the file is {size} bytes ({:.1} MiB), more than the 1 MiB accepted",
            size as f64 / (1 << 20) as f64
        ),
        None => "the file is more than 1 MiB, the most accepted".to_string(),
    }
}

/// YAML's line breaks (CR LF, CR, LF, and NEL, LS, PS, which the YAML 1.1 parser also breaks
/// lines at) as LF, so that every line number, the parser's and the validation's, counts the
/// lines the parser sees. The document means the same: each was a line break already.
pub fn normalize_line_breaks(text: &str) -> std::borrow::Cow<'_, str> {
    const OTHERS: [char; 4] = ['\r', '\u{85}', '\u{2028}', '\u{2029}'];
    if !text.contains(OTHERS) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(text.replace("\r\n", "\n").replace(OTHERS, "\n"))
}

/// Checks the raw text: size and flow nesting. Returns the 1-based line and the message.
pub fn prescan(text: &str) -> Result<(), (usize, String)> {
    if text.len() > MAX_BYTES {
        // The text was read to one byte past the bound: its size is not known.
        return Err((1, too_big(None)));
    }
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut line = 1usize;
    // True where a node may begin: line start, after `: `, `- `, `? `, `[`, `{`, `,`.
    let mut node_start = true;
    let mut prev = b'\n';
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\n' => {
                line += 1;
                node_start = true;
            }
            b' ' | b'\t' | b'\r' => {}
            b'#' if matches!(prev, b' ' | b'\t' | b'\n' | b'\r') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' if node_start => {
                // A quoted scalar: skip to its end (`\"` escapes in double quotes, `''` in single).
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\n' => line += 1,
                        b'\\' if c == b'"' => i += 1,
                        b'\'' if c == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 1,
                        q if q == c => break,
                        _ => {}
                    }
                    i += 1;
                }
                node_start = false;
            }
            b'[' | b'{' if node_start || depth > 0 => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Err((line, format!("nested deeper than {MAX_FLOW_DEPTH} levels of [ ] or {{ }}")));
                }
                node_start = true;
            }
            b']' | b'}' if depth > 0 => {
                depth -= 1;
                node_start = false;
            }
            b',' if depth > 0 => node_start = true,
            b':' | b'-' | b'?' => {
                let next = bytes.get(i + 1).copied().unwrap_or(b'\n');
                node_start = matches!(next, b' ' | b'\t' | b'\n' | b'\r') || (c == b':' && depth > 0);
            }
            // Anchors, aliases and tags before a node leave the node still to come.
            b'&' | b'*' | b'!' if node_start => {
                // Names end at a space or a flow indicator.
                while i < bytes.len()
                    && !matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r' | b',' | b'[' | b']' | b'{' | b'}')
                {
                    i += 1;
                }
                continue;
            }
            _ => node_start = false,
        }
        prev = c;
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prescan_counts_flow_nesting_only() {
        assert!(prescan("a: [1, [2, {b: [3]}]]\n").is_ok());
        let deep = format!("a: {}{}\n", "[".repeat(MAX_FLOW_DEPTH), "]".repeat(MAX_FLOW_DEPTH));
        assert!(prescan(&deep).is_ok());
        let deeper = format!("a: {}{}\n", "[".repeat(MAX_FLOW_DEPTH + 1), "]".repeat(MAX_FLOW_DEPTH + 1));
        assert_eq!(prescan(&deeper).unwrap_err().0, 1);
        let maps = format!("x: 1\ny:\n  z: {}1{}\n", "{a: ".repeat(40), "}".repeat(40));
        let (line, message) = prescan(&maps).unwrap_err();
        assert_eq!(line, 3);
        assert!(message.contains("nested deeper than 32"), "{message}");
    }

    #[test]
    fn prescan_ignores_brackets_in_scalars_and_comments() {
        let text = format!(
            "a: '{}'\nb: \"{}\\\"[\"\nc: x{} # {}\nd: it's [fine]\n",
            "[".repeat(100),
            "{".repeat(100),
            "[".repeat(100),
            "[".repeat(100)
        );
        assert_eq!(prescan(&text), Ok(()));
    }

    #[test]
    fn line_breaks_are_counted_as_yaml_counts_them() {
        assert_eq!(
            normalize_line_breaks("a: 1\r\nb: 2\rc: 3\u{2028}d: 4\u{85}e: 5\u{2029}"),
            "a: 1\nb: 2\nc: 3\nd: 4\ne: 5\n"
        );
        assert!(matches!(normalize_line_breaks("a: 1\nb: 2\n"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn prescan_bounds_size() {
        let big = "#".repeat(MAX_BYTES + 1);
        assert_eq!(prescan(&big).unwrap_err().1, "the file is more than 1 MiB, the most accepted");
    }

    #[test]
    fn reading_an_endless_file_stops_at_the_bound() {
        let text = read(std::path::Path::new("/dev/zero")).unwrap();
        assert_eq!(text.len(), MAX_BYTES + 1);
        let e = crate::config_file::Config::load(std::path::Path::new("/dev/zero")).unwrap_err().to_string();
        assert_eq!(e, "/dev/zero:1: the file is more than 1 MiB, the most accepted");
    }

    #[test]
    fn a_large_file_is_refused_with_its_real_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yml");
        std::fs::write(&path, "#".repeat(5_300_000)).unwrap();
        let e = crate::config_file::Config::load(&path).unwrap_err().to_string();
        assert!(e.ends_with(":1: the file is 5300000 bytes (5.1 MiB), more than the 1 MiB accepted"), "{e}");
    }
}

/// `parse`, `line_of_key` and the bounds through `Config::from_yaml`, the way users meet them.
#[cfg(test)]
mod config_tests {
    use std::path::Path;

    use crate::config::{line_of_key, ConfigError};
    use crate::config_file::Config;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(text, Path::new("t.yml"), &|name| (name == "PW").then(|| "x".to_string()))
    }

    fn err(text: &str) -> String {
        load(text).expect_err("config should be rejected").to_string()
    }

    const CH: &str = "clickhouse:\n  url: http://x:8123\n";

    #[test]
    fn absurd_durations_are_rejected_naming_key_line_and_bound() {
        // Beyond 10y: refused by the parser, whatever the key.
        let e = err(&format!("{CH}sources:\n  collector_runs:\n    timeout: 99999999999d\n"));
        assert_eq!(
            e,
            "t.yml:5: key `sources.collector_runs.timeout`: invalid duration \"99999999999d\": longer than 10y, the longest accepted"
        );
        let e = err(&format!("{CH}sources:\n  collector_runs:\n    forget_after: 3651d\n"));
        assert!(e.starts_with("t.yml:5: key `sources.collector_runs.forget_after`: invalid duration"), "{e}");
        // Within 10y but beyond the key's own bound: refused by its validation.
        let e = err(&format!("{CH}sources:\n  accounts:\n    timeout: 11m\n"));
        assert!(e.starts_with("t.yml:5: key `sources.accounts.timeout`: must be between 100ms and 600000ms"), "{e}");
        let e = err("clickhouse: {url: 'http://x', timeout: 1h}\n");
        assert!(e.starts_with("t.yml:1: key `clickhouse.timeout`: must be between"), "{e}");
        // At the bound is fine.
        let ok = load(&format!("{CH}  timeout: 10m\nsources:\n  collector_runs:\n    forget_after: 10y\n")).unwrap();
        assert_eq!(ok.clickhouse.unwrap().timeout.as_secs(), 600);
    }

    #[test]
    fn nested_yaml_is_rejected_by_the_nesting_bound_with_its_line() {
        // ~200 KB, as in the issue; without the bound the YAML parser spends half a minute on it.
        let text = format!("{CH}x: {}1{}\n", "{a: ".repeat(40_000), "}".repeat(40_000));
        assert!(text.len() > 200_000);
        let e = err(&text);
        assert_eq!(e, "t.yml:3: nested deeper than 32 levels of [ ] or { }");
        let lists = format!("{CH}x: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(err(&lists), "t.yml:3: nested deeper than 32 levels of [ ] or { }");
    }

    #[test]
    fn block_nesting_and_alias_expansion_are_bounded_by_the_parser() {
        let mut text = String::from(CH);
        for i in 0..600 {
            text.push_str(&format!("{}k{i}:\n", " ".repeat(i + 2)));
        }
        let text = text.replacen("k0:", "sources:\n  k0:", 1);
        assert!(err(&text).contains("t.yml:"), "rejected with a line");
        // A billion-laughs document: each level doubles the previous one's expansion.
        let mut bomb = String::from(CH) + "sources:\n  accounts:\n    known_statuses: [&a0 [x, x]";
        for i in 1..40 {
            bomb.push_str(&format!(", &a{i} [*a{}, *a{}]", i - 1, i - 1));
        }
        bomb.push_str("]\n");
        assert!(
            err(&bomb).starts_with("t.yml:5: key `sources.accounts.known_statuses[0]`: invalid type: sequence"),
            "{}",
            err(&bomb)
        );
        // Aliases inside flow collections do not count as nesting.
        let aliases =
            format!("{CH}sources:\n  accounts:\n    known_statuses: [&s active, {}]\n", vec!["*s"; 100].join(", "));
        assert_eq!(load(&aliases).unwrap().sources.accounts.unwrap().config.known_statuses.len(), 101);
    }

    #[test]
    fn every_validation_error_names_a_real_line() {
        // Two password keys: the error names the second one, on its line.
        let e = err("clickhouse:\n  url: http://x:8123\n  password: a\n  password_env: PW\n");
        assert!(e.starts_with("t.yml:4: key `clickhouse.password_env`: set at most one"), "{e}");
        let text = "# comment\nclickhouse: {url: 'http://x', password: a, password_env: PW}\n";
        assert!(err(text).starts_with("t.yml:2: key `clickhouse.password_env`"), "{}", err(text));
        // Flow style: the key is found on its line.
        let text = "clickhouse: {url: 'http://x'}\nsources: {collector_runs: {late_arrival_window: 10s}}\n";
        assert!(err(text).starts_with("t.yml:2: key `sources.collector_runs.late_arrival_window`"), "{}", err(text));
        // A rule about a key left at its default: the line of its section.
        let text = "clickhouse: {url: 'http://x'}\nsources:\n  collector_runs:\n    late_arrival_window: 100d\n";
        assert!(err(text).starts_with("t.yml:4: key `sources.collector_runs.late_arrival_window`"), "{}", err(text));
    }

    #[test]
    fn lines_count_every_yaml_line_break() {
        // Found by fuzzing: the parser counted a lone CR as a line break, the rest did not.
        let e = err("clickhouse:\r  url: http://x\r  databse: polo\r");
        assert!(e.starts_with("t.yml:3: key `clickhouse.databse`"), "{e}");
        let e = err("clickhouse:\r\n  url: http://x\r\n  database: 'a b'\r\n");
        assert!(e.starts_with("t.yml:3: key `clickhouse.database`"), "{e}");
        let e = err("clickhouse:\r  url: http://x\r  database: 'a b'\r");
        assert!(e.starts_with("t.yml:3: key `clickhouse.database`"), "{e}");
    }

    #[test]
    fn line_of_key_walks_blocks_flows_and_lists() {
        let text = "a:\n  b: 1\n  c:\n    d: 2\ne: {f: 1, g: {h: 2}}\nq:\n  list:\n    - name: x\n    - name: y\n      url: z\nb: 3\n";
        assert_eq!(line_of_key(text, "a.b"), Some(2));
        assert_eq!(line_of_key(text, "a.c.d"), Some(4));
        assert_eq!(line_of_key(text, "e.g.h"), Some(5));
        assert_eq!(line_of_key(text, "b"), Some(11), "top-level b, not a.b");
        assert_eq!(line_of_key(text, "q.list[1]"), Some(9));
        assert_eq!(line_of_key(text, "q.list[1].url"), Some(10));
        assert_eq!(line_of_key(text, "a.missing"), Some(1), "deepest segment found");
        assert_eq!(line_of_key(text, "a.c.missing"), Some(3));
        assert_eq!(line_of_key(text, "nothing.at.all"), Some(1));
        assert_eq!(line_of_key("x:\n  a-b: 1\n  b: 2\n", "x.b"), Some(3), "a key is not a suffix of another");
    }
}
