// Records the source revision for `polo_exporter_build_info{revision}` and `--version`.
fn main() {
    let revision = std::env::var("POLO_EXPORTER_REVISION").ok().or_else(|| {
        std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    });
    println!("cargo:rustc-env=POLO_EXPORTER_REVISION={}", revision.unwrap_or_else(|| "unknown".into()));
    println!("cargo:rerun-if-env-changed=POLO_EXPORTER_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
