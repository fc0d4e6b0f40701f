//! `--pre-hook` and `--post-hook`: shell commands run around the swap (the SOP's "stop
//! httpd on the app host" and "start httpd").
//!
//! Each runs as `sh -c COMMAND` with stdin from /dev/null and its stdout sent to
//! stg-restore's stderr (stdout carries the JSON report). Its environment names the
//! databases: `STG_RESTORE_DATABASE`, `STG_RESTORE_INCOMING`, `STG_RESTORE_PREVIOUS` (empty
//! before the swap), `STG_RESTORE_HOOK` (`pre` or `post`). A hook is not interrupted by
//! signals; stg-restore acts on them when it returns.

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
