//! `--pre-hook` and `--post-hook`: shell commands run around the swap (the SOP's "stop
//! httpd on the app host" and "start httpd").
//!
//! Each runs as `sh -c COMMAND` with stdin from /dev/null and its stdout sent to
//! stg-restore's stderr (stdout carries the JSON report). Its environment names the
//! databases: `STG_RESTORE_DATABASE`, `STG_RESTORE_INCOMING`, `STG_RESTORE_PREVIOUS` (empty
//! before the swap), `STG_RESTORE_HOOK` (`pre` or `post`). A hook is not interrupted by
//! signals; stg-restore acts on them when it returns.
//!
//! `--notify` ([`notify`]) runs the same way but is told the pending summary on its stdin,
//! is bounded by a timeout, and its failure is only reported.

use std::os::fd::AsFd;
use std::process::Stdio;

use anyhow::Context;

/// Which hook.
#[derive(Clone, Copy, Debug)]
pub enum Hook {
    /// Before the swap.
    Pre,
    /// After the swap.
    Post,
}

impl Hook {
    /// `pre` or `post`.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Pre => "pre",
            Hook::Post => "post",
        }
    }
}

/// Runs a hook; an error when it cannot start or exits non-zero.
pub async fn run(
    hook: Hook,
    command: &str,
    database: &str,
    incoming: &str,
    previous: Option<&str>,
) -> anyhow::Result<()> {
    let stdout = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("while preparing the hook's output")?;
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .env("STG_RESTORE_DATABASE", database)
        .env("STG_RESTORE_INCOMING", incoming)
        .env("STG_RESTORE_PREVIOUS", previous.unwrap_or(""))
        .env("STG_RESTORE_HOOK", hook.name())
        .status()
        .await
        .with_context(|| format!("could not run the {}-hook `{command}`", hook.name()))?;
    if !status.success() {
        anyhow::bail!("the {}-hook `{command}` failed ({status})", hook.name());
    }
    Ok(())
}

/// How `--notify` went, when it did not go well: the warning for the report.
///
/// `--notify COMMAND` runs as `sh -c COMMAND` in a process group of its own, with the
/// pending summary (JSON, one object and a newline) on its stdin, its stdout sent to
/// stderr, and the same environment as the hooks (`STG_RESTORE_HOOK=notify`). It fails
/// when it cannot start, exits non-zero, is killed by a signal, leaves part of its input
/// unread (a command that ignores stdin would not have told anyone), or runs longer than
/// `timeout` (then its process group gets SIGTERM and, 2 s later, SIGKILL). A failure is
/// returned as the warning's text; it never stops the restore.
pub async fn notify(
    command: &str,
    input: &[u8],
    timeout: std::time::Duration,
    database: &str,
    incoming: &str,
) -> Result<(), String> {
    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;
    use std::os::unix::process::ExitStatusExt;

    let described = format!("the notify command `{command}`");
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("could not run {described}: pipe: {e}"))?;
    // A second descriptor of the read end stays here: after the command has exited,
    // whatever is left in the pipe is the input it did not read. It also keeps the write
    // below from failing with EPIPE when the command exits early.
    let kept = read_end
        .try_clone()
        .map_err(|e| format!("could not run {described}: {e}"))?;
    let stdout = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| format!("could not run {described}: {e}"))?;
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::from(read_end))
        .stdout(Stdio::from(stdout))
        .env("STG_RESTORE_DATABASE", database)
        .env("STG_RESTORE_INCOMING", incoming)
        .env("STG_RESTORE_PREVIOUS", "")
        .env("STG_RESTORE_HOOK", "notify")
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("could not run {described}: {e}"))?;
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let data = input.to_vec();
    let writer = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut pipe = std::fs::File::from(write_end);
        pipe.write_all(&data)
        // Dropping the file closes the write end: the command sees the end of its input.
    });
    let Ok(waited) = tokio::time::timeout(timeout, child.wait()).await else {
        if let Some(pgid) = pgid {
            let _ = killpg(pgid, Signal::SIGTERM);
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), child.wait()).await;
        // Whatever of the group is left (the shell may be gone, a child ignoring SIGTERM
        // not), SIGKILL ends it.
        if let Some(pgid) = pgid {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        let _ = child.wait().await;
        drop(kept);
        return Err(format!(
            "{described} did not finish within {} s; its process group was killed",
            timeout.as_secs_f64()
        ));
    };
    let status = waited.map_err(|e| format!("{described}: {e}"))?;
    // Whatever the writer could put into the pipe is there by now (or it waits on a full
    // pipe, which the check below sees as unread input).
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), writer).await;
    let unread = unread_bytes(&kept);
    drop(kept);
    if let Some(signal) = status.signal() {
        return Err(format!("{described} was killed by signal {signal}"));
    }
    if !status.success() {
        return Err(format!("{described} failed ({status})"));
    }
    if unread > 0 {
        return Err(format!(
            "{described} exited without reading its input ({unread} of {} bytes left unread)",
            input.len()
        ));
    }
    Ok(())
}

/// Bytes left in a pipe, read through `fd` without blocking (the command that shared it
/// has exited, so changing the descriptor's flags affects nobody else).
fn unread_bytes(fd: &std::os::fd::OwnedFd) -> usize {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let _ = fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
    let mut total = 0;
    let mut buf = [0u8; 8192];
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(n) if n > 0 => total += n,
            _ => return total,
        }
    }
}
