//! Configuration: parsed strictly from YAML, validated once into [`Config`].
//!
//! The file has the connections the sources share (`clickhouse`, `aws`) and one section per
//! source under `sources:`. A source's section is declared, documented and validated in the
//! source's own module (see `sources::SourceKind`); this module holds what they share: the
//! connections, the framework settings every section has, and the validation helpers.
//!
//! YAML crate: `serde_yaml_ng`, a maintained fork of the archived `serde_yaml` with the same
//! data model; its errors carry line and column, and `serde_path_to_error` adds the key path.

pub mod bounds;
pub mod doc;
pub mod duration;
pub(crate) mod raw;
mod words;

use std::fmt;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use raw::{RawCommon, RawSection};

/// Why a configuration could not be loaded. Every variant names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{}: key `{key}`: {message}", line.map(|l| l.to_string()).unwrap_or_else(|| "?".into()))]
    Invalid { path: PathBuf, key: String, line: Option<usize>, message: String },
    /// The file as a whole is beyond a bound (size, nesting), before any key is read.
    #[error("{path}:{line}: {message}")]
    Input { path: PathBuf, line: usize, message: String },
}

/// A password or other secret: never printed, not even by `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if FINGERPRINTING.get() {
            // Only inside `fingerprint`, whose text is hashed at once and never shown: a keyed
            // digest (key random per process), so a changed secret changes the fingerprint.
            return write!(f, "Secret({:016x})", fingerprint_key().hash_one(&self.0));
        }
        f.write_str("Secret(<redacted>)")
    }
}

thread_local! {
    static FINGERPRINTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn fingerprint_key() -> &'static std::collections::hash_map::RandomState {
    static KEY: std::sync::OnceLock<std::collections::hash_map::RandomState> = std::sync::OnceLock::new();
    KEY.get_or_init(Default::default)
}

/// A fingerprint of a validated section: a hash of its `Debug` text, in which every [`Secret`]
/// counts by a keyed digest of its value. Equal for equal sections within one process.
pub fn fingerprint(section: &dyn fmt::Debug) -> u64 {
    FINGERPRINTING.set(true);
    let text = format!("{section:?}");
    FINGERPRINTING.set(false);
    fingerprint_key().hash_one(&text)
}

/// Default `timeout` of a source that does not say otherwise.
pub const DEFAULT_SOURCE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `serve_stale_for` of every source.
pub const DEFAULT_SERVE_STALE_FOR: Duration = Duration::from_secs(3600);
/// Bounds of every source's `timeout`: a run must be able to finish, and must not outlive a scrape by hours.
pub const SOURCE_TIMEOUT_BOUNDS: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(600));
/// Upper bound of `min_interval` and `serve_stale_for`.
pub const SOURCE_CACHE_MAX: Duration = Duration::from_secs(7 * 86_400);

/// Framework settings of one enabled source, defaults applied.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub timeout: Duration,
    pub min_interval: Duration,
    pub serve_stale_for: Duration,
}

/// An enabled source's validated section: the framework's settings and the source's own config.
#[derive(Debug, Clone)]
pub struct Enabled<C> {
    pub settings: SourceSettings,
    pub config: C,
}

/// Parses strict YAML into `T`; errors name the file, the key path and the line. The input is
/// bounded first (size, nesting: [`bounds`]), so a hostile file is rejected fast.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    fn located<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
        let deserializer = serde_yaml_ng::Deserializer::from_str(text);
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let key = err.path().to_string();
            let inner = err.into_inner();
            // Errors without a location (e.g. from the end of the document) fall back on the key.
            let line = inner.location().map(|l| l.line()).or_else(|| line_of_key(text, &key));
            // serde_yaml_ng appends " at line L column C" to its text; the line is reported separately.
            let mut message = inner.to_string();
            if let Some(cut) = message.find(" at line ") {
                message.truncate(cut);
            }
            // It also prefixes custom errors with the key path, which is reported separately.
            if let Some(rest) = message.strip_prefix(&format!("{key}: ")) {
                message = rest.to_string();
            }
            let root = key == ".";
            let message = words::by_key(&message, root, words::struct_fields::<T>());
            if root {
                // The file as a whole: no key to name.
                return ConfigError::Input { path: path.to_path_buf(), line: line.unwrap_or(1), message };
            }
            ConfigError::Invalid { path: path.to_path_buf(), key, line, message }
        })
    }
    bounds::prescan(text).map_err(|(line, message)| ConfigError::Input { path: path.to_path_buf(), line, message })?;
    located::<T>(text, path)
}

/// What validation needs to name a key's line and read secrets.
pub struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Validator<'a> {
    /// A validator for the file at `path` (used in errors and to resolve relative paths), whose
    /// text is `text`; `env` looks up environment variables.
    pub fn new(path: &'a Path, text: &'a str, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Validator { path, text, env }
    }

    /// The directory relative paths of the file are resolved against.
    pub fn base_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// An environment variable, through the lookup the validator was given.
    pub fn env(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    /// An error at `key` (a dotted path, `queues[2]` for list items), with its line.
    pub fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            line: line_of_key(self.text, key),
            message: message.into(),
        }
    }

    /// A duration key with its default and bounds.
    pub fn duration(
        &self,
        key: &str,
        value: Option<duration::PromDuration>,
        default: Duration,
        (min, max): (Duration, Duration),
    ) -> Result<Duration, ConfigError> {
        let value = value.map(|d| d.0).unwrap_or(default);
        if value < min || value > max {
            let show = |d: Duration| format!("{}ms", d.as_millis());
            return Err(self.invalid(key, format!("must be between {} and {}", show(min), show(max))));
        }
        Ok(value)
    }

    /// The framework settings of the source section `sources.NAME`.
    pub fn settings(
        &self,
        name: &str,
        raw: &RawCommon,
        default_timeout: Duration,
        default_min_interval: Duration,
    ) -> Result<SourceSettings, ConfigError> {
        let key = |k: &str| format!("sources.{name}.{k}");
        Ok(SourceSettings {
            timeout: self.duration(&key("timeout"), raw.timeout, default_timeout, SOURCE_TIMEOUT_BOUNDS)?,
            min_interval: self.duration(
                &key("min_interval"),
                raw.min_interval,
                default_min_interval,
                (Duration::ZERO, SOURCE_CACHE_MAX),
            )?,
            serve_stale_for: self.duration(
                &key("serve_stale_for"),
                raw.serve_stale_for,
                DEFAULT_SERVE_STALE_FOR,
                (Duration::ZERO, SOURCE_CACHE_MAX),
            )?,
        })
    }
}

pub fn is_region(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Line (1-based) of a dotted key path (`a.b.c`, `a.list[2].b`) in YAML, block or flow style,
/// for validation errors that arise after parsing. Walks the path segment by segment, each
/// inside the block of the one before; when a segment is absent (a key left at its default, or
/// a rule about several keys), the line of the deepest segment found, else line 1: every error
/// names a real line.
pub(crate) fn line_of_key(text: &str, key_path: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |line: &str| line.len() - line.trim_start().len();
    let is_content = |line: &str| !line.trim().is_empty() && !line.trim_start().starts_with('#');
    let top_indent = lines.iter().find(|l| is_content(l)).map(|l| indent(l)).unwrap_or(0);
    // Position after the last segment found: (line index, byte column), and that line's indent.
    let mut at: Option<(usize, usize, usize)> = None;
    for segment in key_path.split('.').filter(|s| !s.is_empty()) {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let (start_line, start_col, parent_indent) = match at {
            Some((l, c, i)) => (l, c, Some(i)),
            None => (0, 0, None),
        };
        let mut hit = None;
        for (l, line) in lines.iter().enumerate().skip(start_line) {
            let from = if l == start_line { start_col } else { 0 };
            if l > start_line && is_content(line) && parent_indent.is_some_and(|p| indent(line) <= p) {
                break; // the parent's block ended
            }
            if parent_indent.is_none() && indent(line) != top_indent {
                continue; // the first segment is a top-level key
            }
            if let Some(col) = find_key(line, from, name) {
                hit = Some((l, col, indent(line)));
                break;
            }
        }
        let Some(found) = hit else { break };
        at = Some(found);
        if let Some(index) = index {
            // The index-th item of a block list under the key.
            let (l, _, key_indent) = found;
            let items: Vec<usize> = lines
                .iter()
                .enumerate()
                .skip(l + 1)
                .take_while(|(_, line)| {
                    !is_content(line) || indent(line) > key_indent || line.trim_start().starts_with("- ")
                })
                .filter(|(_, line)| line.trim_start().starts_with("- "))
                .map(|(i, _)| i)
                .collect();
            match items.get(index) {
                Some(&item) => at = Some((item, indent(lines[item]) + 2, indent(lines[item]))),
                None => break,
            }
        }
    }
    Some(at.map(|(l, _, _)| l + 1).unwrap_or(1))
}

/// Byte column just after `name:` (plain or quoted) at or after `from` where a key can start:
/// the line's first token, after `- `, `{` or `,`.
fn find_key(line: &str, from: usize, name: &str) -> Option<usize> {
    for needle in [format!("{name}:"), format!("\"{name}\":"), format!("'{name}':")] {
        let mut search = from;
        while let Some(pos) = line.get(search..).and_then(|rest| rest.find(&needle)) {
            let start = search + pos;
            let before = line[..start].trim_end();
            let after = line[start + needle.len()..].chars().next();
            let key_start = before.is_empty()
                || before.ends_with('{')
                || before.ends_with(',')
                || before.trim_start() == "-"
                || before.ends_with(" -");
            if key_start && after.is_none_or(|c| c == ' ' || c == '\t') {
                return Some(start + needle.len());
            }
            search = start + needle.len();
        }
    }
    None
}
