//! Loading and reloading the configuration (SIGHUP, `POST /-/reload`): the config file and the
//! web config file are read and validated together; only a complete, valid pair replaces the
//! running one. Sources whose configuration did not change keep their runner, and with it
//! their state (no new first load, counters go on); the others start afresh.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config_file::Config;
use crate::framework::{error_chain, Exporter, SourceRunner};
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
        let prints = config.sources.fingerprints();
        let mut summary = Summary::default();
        let mut runners = Vec::new();
        for fresh in config.sources.build() {
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::sources;

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

    /// Every registered source, enabled, keeps its runner when the same file is loaded again:
    /// computed from the registry, so no source can be left out (aws_cost once was).
    #[test]
    fn reloading_an_unchanged_file_keeps_every_registered_source() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/local.yml")).unwrap();
        let text = text.replace("password_file:", "# password_file:");
        let cfg = Config::from_yaml(&text, Path::new("examples/local.yml"), &|_| Some("x".into())).unwrap();
        let (first, summary) = Loaded::assemble(&cfg, WebSecurity::open(), None);
        assert_eq!(summary.started, sources::NAMES, "every registered source is enabled in examples/local.yml");
        let again = Config::from_yaml(&text, Path::new("examples/local.yml"), &|_| Some("x".into())).unwrap();
        let (second, summary) = Loaded::assemble(&again, WebSecurity::open(), Some(&first));
        assert_eq!(summary.kept, sources::NAMES, "{summary:?}");
        assert!(summary.started.is_empty() && summary.stopped.is_empty(), "{summary:?}");
        for (runner, _) in &second.runners {
            let old = first.runners.iter().find(|(r, _)| r.name() == runner.name()).unwrap();
            assert!(Arc::ptr_eq(runner, &old.0), "{}", runner.name());
        }
    }
}
