//! Loading and reloading the configuration (SIGHUP, `POST /-/reload`): the config file and the
//! web config file are read and validated together; only a complete, valid pair replaces the
//! running one. Sources whose configuration did not change keep their runner, and with it
//! their state (no new first load, counters go on); the others start afresh.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Config;
use crate::framework::{error_chain, Exporter, SourceRunner};
use crate::sources;
use crate::web::WebSecurity;

/// Everything the configuration files produced; replaced as a whole on reload.
pub struct Loaded {
    pub exporter: Exporter,
    pub security: WebSecurity,
    runners: Vec<(Arc<SourceRunner>, Option<u64>)>,
}

/// Which files to read again on reload.
#[derive(Debug, Clone)]
pub struct Files {
    pub config: PathBuf,
    pub web_config: Option<PathBuf>,
}

/// What a (re)load did with each source.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Sources whose configuration did not change: same runner, same state.
    pub kept: Vec<&'static str>,
    /// Sources started afresh (new, or changed configuration).
    pub started: Vec<&'static str>,
    /// Sources no longer configured.
    pub stopped: Vec<&'static str>,
}

/// Reads and validates both files; nothing is built yet.
pub fn read(files: &Files) -> Result<(Config, WebSecurity), String> {
    let config = Config::load(&files.config).map_err(|e| error_chain(&e))?;
    let security = match &files.web_config {
        Some(path) => WebSecurity::load(path).map_err(|e| error_chain(&e))?,
        None => WebSecurity::open(),
    };
    Ok((config, security))
}

impl Loaded {
    /// Builds the sources of `config`, keeping the runners of `previous` whose configuration
    /// is unchanged.
    pub fn assemble(config: &Config, security: WebSecurity, previous: Option<&Loaded>) -> (Loaded, Summary) {
        let prints = fingerprints(config);
        let mut summary = Summary::default();
        let mut runners = Vec::new();
        for fresh in sources::build(config) {
            let name = fresh.name();
            let print = prints.get(name).copied();
            let old = previous
                .and_then(|p| p.runners.iter().find(|(r, _)| r.name() == name))
                .filter(|(_, old_print)| print.is_some() && *old_print == print);
            match old {
                Some((runner, _)) => {
                    summary.kept.push(name);
                    runners.push((Arc::clone(runner), print));
                }
                None => {
                    summary.started.push(name);
                    runners.push((fresh, print));
                }
            }
        }
        if let Some(previous) = previous {
            summary.stopped = previous
                .runners
                .iter()
                .map(|(r, _)| r.name())
                .filter(|name| !runners.iter().any(|(r, _)| r.name() == *name))
                .collect();
        }
        let exporter = Exporter::new(runners.iter().map(|(r, _)| Arc::clone(r)).collect());
        (Loaded { exporter, security, runners }, summary)
    }
}

/// Per source, a fingerprint of its validated section, which holds everything its runner
/// depends on (settings, its own keys, the connection it uses). A source missing here is
/// always replaced.
fn fingerprints(cfg: &Config) -> BTreeMap<&'static str, u64> {
    let print = |section: &dyn std::fmt::Debug, secret: &str| {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        format!("{section:?}").hash(&mut hasher);
        // `Secret` hides itself from Debug; a changed password must still count as a change.
        secret.hash(&mut hasher);
        hasher.finish()
    };
    let s = &cfg.sources;
    let pw = cfg.clickhouse.as_ref().map(|c| c.password.expose()).unwrap_or_default();
    BTreeMap::from([
        ("collector_runs", print(&s.collector_runs, pw)),
        ("accounts", print(&s.accounts, pw)),
        ("clickhouse_system", print(&s.clickhouse_system, pw)),
        ("sqs", print(&s.sqs, "")),
        ("cloudwatch", print(&s.cloudwatch, "")),
    ])
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(text: &str) -> Config {
        Config::from_yaml(text, Path::new("t.yml"), &|_| None).unwrap()
    }

    fn names(loaded: &Loaded) -> Vec<&'static str> {
        loaded.runners.iter().map(|(r, _)| r.name()).collect()
    }

    #[test]
    fn unchanged_sources_keep_their_runner() {
        let base = "clickhouse:\n  url: http://127.0.0.1:1\n";
        let (first, summary) = Loaded::assemble(&config(base), WebSecurity::open(), None);
        assert_eq!(summary.started, vec!["collector_runs", "accounts", "clickhouse_system"]);
        assert!(summary.kept.is_empty());

        // Only the clickhouse_system section changes.
        let changed = format!("{base}sources:\n  clickhouse_system:\n    max_rows: 5\n");
        let (second, summary) = Loaded::assemble(&config(&changed), WebSecurity::open(), Some(&first));
        assert_eq!(summary.kept, vec!["collector_runs", "accounts"]);
        assert_eq!(summary.started, vec!["clickhouse_system"]);
        for (runner, _) in &second.runners {
            let old = first.runners.iter().find(|(r, _)| r.name() == runner.name()).unwrap();
            assert_eq!(Arc::ptr_eq(runner, &old.0), runner.name() != "clickhouse_system", "{}", runner.name());
        }

        // A password is part of the configuration even though Debug hides it.
        let (third, summary) = Loaded::assemble(
            &config("clickhouse:\n  url: http://127.0.0.1:1\n  password: other\nsources:\n  clickhouse_system:\n    max_rows: 5\n"),
            WebSecurity::open(),
            Some(&second),
        );
        assert!(summary.kept.is_empty(), "{summary:?}");
        assert_eq!(names(&third), vec!["collector_runs", "accounts", "clickhouse_system"]);

        // A disabled source stops; the others are untouched.
        let (_, summary) = Loaded::assemble(
            &config(&format!("{base}sources:\n  accounts:\n    enabled: false\n")),
            WebSecurity::open(),
            Some(&first),
        );
        assert_eq!(summary.stopped, vec!["accounts"]);
        assert!(summary.started.is_empty(), "{summary:?}");
        assert_eq!(summary.kept, vec!["collector_runs", "clickhouse_system"]);
    }
}
