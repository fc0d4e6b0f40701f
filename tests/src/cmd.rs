//! Hermetic commands: a workspace binary with a pinned environment (`LC_ALL=C`, `TZ=UTC`, no
//! inherited `PG*` or `STG_*`, a `HOME` with no `.pgpass`), so a developer's own settings
//! never change a test's outcome; [`closed_pipe`], a stdout whose reader is gone; and
//! [`output_bounded`], a run that may neither hang the test nor fill the machine's memory.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// Runs `cmd` with `stdin`, at most `max_memory` bytes of address space (prlimit(1)
/// `--as`) and `timeout` of wall time, and returns its output. For inputs that once hung a
/// tool (a FIFO) or filled memory (`/dev/zero`): a tool that still waits is killed and the
/// test fails saying so, instead of hanging; one that still reads without bound fails to
/// allocate (and aborts) instead of taking the machine's memory.
#[must_use]
pub fn output_bounded(cmd: &Command, stdin: Stdio, timeout: Duration, max_memory: u64) -> Output {
    let mut limited = Command::new("prlimit");
    limited.env_clear();
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => limited.env(key, value),
            None => limited.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        limited.current_dir(dir);
    }
    limited
        .arg(format!("--as={max_memory}"))
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = limited
        .spawn()
        .unwrap_or_else(|_| crate::require("prlimit", "util-linux"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} {:?} was still running after {timeout:?}: it hangs",
                cmd.get_program().to_string_lossy(),
                cmd.get_args().collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}
