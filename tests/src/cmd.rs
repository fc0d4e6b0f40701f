//! Hermetic commands: a workspace binary with a pinned environment (`LC_ALL=C`, `TZ=UTC`, no
//! inherited `PG*` or `STG_*`, a `HOME` with no `.pgpass`), so a developer's own settings
//! never change a test's outcome.

use std::path::PathBuf;
use std::process::Command;

/// Path of a binary built from this workspace (`stg-dump`, ...), next to the test binary's
/// `deps/` folder in the target directory.
#[must_use]
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let mut dir = exe.parent().expect("deps dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built; run `cargo build --workspace` (make test does) before the tests",
        path.display()
    );
    path
}

/// The environment every hermetic command starts from.
fn pinned(cmd: &mut Command) {
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .env("HOME", "/nonexistent-stg-test-home");
}

/// A hermetic command running one of the workspace's binaries.
#[must_use]
pub fn stg(name: &str) -> Command {
    let mut cmd = Command::new(bin_path(name));
    pinned(&mut cmd);
    cmd
}

/// A hermetic command running any program (`psql`, `xzcat`, `sh`).
#[must_use]
pub fn program(name: &str) -> Command {
    let mut cmd = Command::new(name);
    pinned(&mut cmd);
    cmd
}
