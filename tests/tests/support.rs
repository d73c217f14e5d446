//! Paths of build outputs the tests use, the wait for a daemon they start, and the
//! Python environments of the third-party clients.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::process::Command;

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

/// A port free on 127.0.0.1 for a daemon to bind.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until something accepts connections on 127.0.0.1:`port` (30 s at most).
pub async fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the daemon did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A virtual environment `target/<profile>/<name>` with `requirements` installed (made
/// once per target directory; pip reaches the package registry). Tests asking for the
/// same one at once take turns.
pub async fn python_venv(name: &str, requirements: &Path) -> PathBuf {
    static MAKING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = MAKING.lock().await;
    let venv = target_dir().join(name);
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .await
            .expect("python3 is needed (tests/kdniao/setup installs it)");
        assert!(made.success(), "python3 -m venv {} failed", venv.display());
    }
    let installed = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg("-r")
        .arg(requirements)
        .status()
        .await
        .expect("pip");
    assert!(
        installed.success(),
        "installing {} from PyPI failed",
        requirements.display()
    );
    python
}
