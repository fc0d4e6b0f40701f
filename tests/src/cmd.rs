//! Hermetic commands: a workspace binary with a pinned environment (`LC_ALL=C`, `TZ=UTC`, no
//! inherited `PG*` or `STG_*`, a `HOME` with no `.pgpass`), so a developer's own settings
//! never change a test's outcome; and [`closed_pipe`], a stdout whose reader is gone.

use std::path::PathBuf;
use std::process::{Command, Stdio};

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

/// A stdout for a command whose reader has already gone: the write end of a pipe whose read
/// end is closed before the command starts, so its first write fails with `EPIPE`, every
/// time (what `tool | head -1` gives when the reader is quicker than the tool). Both ends are
/// close-on-exec, so no other child spawned meanwhile keeps the read end open.
#[must_use]
pub fn closed_pipe() -> Stdio {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("create a pipe");
    drop(read);
    Stdio::from(write)
}
