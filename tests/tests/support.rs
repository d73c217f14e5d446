//! Paths of build outputs the tests use.

use std::path::PathBuf;

/// `target/<profile>`: the directory of this test binary's parent (`deps`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .expect("test binary lives in target/<profile>/deps")
}

/// The `waybill` binary next to the test binary. `cargo build --workspace` (the first
/// step of `.ci/run`) builds it.
pub fn waybill_bin() -> PathBuf {
    let bin = target_dir().join("waybill");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --workspace` before the end-to-end tests",
        bin.display()
    );
    bin
}
