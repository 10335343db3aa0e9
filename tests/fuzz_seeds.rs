//! The fuzz targets' properties (`polo_exporter::fuzzing`) on every committed input: the seed
//! corpus (`fuzz/seeds/<target>/`) and the crashes fuzzing found (`fuzz/regressions/<target>/`),
//! so they run in every `cargo nextest run`, without cargo-fuzz.

use std::path::PathBuf;

use polo_exporter::fuzzing::TARGETS;

fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut files: Vec<(PathBuf, Vec<u8>)> =
        entries.map(|e| e.unwrap().path()).map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect();
    files.sort();
    files
}

#[test]
fn seeds_and_regressions_hold_every_property() {
    let mut total = 0;
    for (target, check) in TARGETS {
        let seeds = inputs("seeds", target);
        assert!(!seeds.is_empty(), "fuzz/seeds/{target} has inputs");
        for (path, data) in seeds.iter().chain(inputs("regressions", target).iter()) {
            let outcome = std::panic::catch_unwind(|| check(data));
            assert!(outcome.is_ok(), "{target}: {} breaks a property", path.display());
            total += 1;
        }
    }
    assert!(total >= 30, "{total} inputs");
}
