//! The generated references in docs/reference/ equal what the code's definitions give: a changed
//! help text, a new family or a new config key without `scripts/reference` fails here.
//! `POLO_WRITE_REFERENCE=1` (what scripts/reference sets) writes the files instead.

use std::path::Path;

use polo_exporter::reference;

fn check(rel: &str, generated: String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    if std::env::var_os("POLO_WRITE_REFERENCE").is_some() {
        std::fs::write(&path, generated).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    if on_disk != generated {
        let line = on_disk
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or(on_disk.lines().count().min(generated.lines().count()) + 1, |i| i + 1);
        panic!("{rel} drifted from the code at line {line}: run scripts/reference and commit the result");
    }
}

#[test]
fn metric_catalog_is_generated_from_the_definitions() {
    check(reference::METRICS_PATH, reference::metrics_markdown());
}

#[test]
fn configuration_reference_is_generated_from_the_definitions() {
    check(reference::CONFIGURATION_PATH, reference::configuration_markdown());
}
