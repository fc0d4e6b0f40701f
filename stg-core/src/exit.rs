//! The error type and the exit-code policy of every stg tool, in one place.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | all good |
//! | 1 | the check found something (drift, a threshold breached); for `stg-probe`, inconclusive |
//! | 2 | usage or input error (bad flag, bad file, not a staging host); for `stg-probe`, a breach |
//! | 3 | runtime failure (database unreachable, I/O, a child process failed) |
//!
//! `stg-probe` follows Nagios (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN), so it reports usage
//! errors as 3: see [`Codes::NAGIOS`].
//!
//! Only [`run_main`] picks the exit code: a tool's `run` returns `Ok(code)` for a completed
//! check (0 or 1, or the probe's 2) and `Err` for anything that stopped it. Errors carry an
//! [`ErrorClass`] through [`Error`]; anything unclassified (I/O, database) is a runtime
//! failure.
//!
//! A closed stdout (`stg-probe | head -1`) is not an error, and it does not decide the exit
//! status either: reports go through [`crate::output::stdout`], which discards output once
//! the reader has gone, so the check runs to its end and its verdict is the exit status
//! (a breach is still 2, drift still 1), with nothing on stderr. A broken pipe that still
//! reaches [`run_main`] as an error (a write that bypassed [`crate::output`], or a child's
//! pipe) means the run stopped before its verdict: it is a runtime failure like any other
//! I/O error, never a success.

use std::io::{self, Write};

/// Exit status: all good.
pub const OK: u8 = 0;
/// Exit status: the check found something (drift, a breach of a threshold).
pub const FOUND: u8 = 1;
/// Exit status: usage or input error.
pub const USAGE: u8 = 2;
/// Exit status: runtime failure.
pub const RUNTIME: u8 = 3;

/// What kind of failure an [`Error`] is; decides the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The user asked for something invalid: a bad flag, a malformed file, a refused action.
    Usage,
    /// Something failed while working: a database, a child process, the file system.
    Runtime,
}

/// An error with a class. Wrap it in `anyhow` context freely: the class is found anywhere
/// in the chain.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    class: ErrorClass,
    message: String,
}

impl Error {
    /// A usage or input error (exit 2; 3 for the probe).
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Usage,
            message: message.into(),
        }
    }

    /// A runtime failure (exit 3).
    pub fn runtime(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Runtime,
            message: message.into(),
        }
    }

    /// The class of this error.
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        self.class
    }
}

/// Returns early with a usage error built from a format string.
#[macro_export]
macro_rules! bail_usage {
    ($($arg:tt)*) => {
        return ::core::result::Result::Err($crate::exit::Error::usage(format!($($arg)*)).into())
    };
}

/// The exit statuses a tool uses for errors.
#[derive(Clone, Copy, Debug)]
pub struct Codes {
    /// Status for [`ErrorClass::Usage`].
    pub usage: u8,
    /// Status for [`ErrorClass::Runtime`].
    pub runtime: u8,
}

impl Codes {
    /// The house codes (docs/architecture.md): usage 2, runtime 3.
    pub const STANDARD: Codes = Codes {
        usage: USAGE,
        runtime: RUNTIME,
    };
    /// Nagios codes for `stg-probe`: every error is UNKNOWN (3), since 2 means a breach.
    pub const NAGIOS: Codes = Codes {
        usage: RUNTIME,
        runtime: RUNTIME,
    };
}

/// The class of an error: the first [`Error`] in its chain decides; otherwise runtime.
#[must_use]
pub fn classify(err: &anyhow::Error) -> ErrorClass {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<Error>().map(Error::class))
        .unwrap_or(ErrorClass::Runtime)
}

/// True when the error is (caused by) writing to a closed pipe.
#[must_use]
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// The exit status for the outcome of a tool's `run`: its verdict, or the code of its
/// error's class. A broken pipe is no exception: a run that stopped on one has no verdict.
#[must_use]
pub fn status_for(result: &anyhow::Result<u8>, codes: Codes) -> u8 {
    match result {
        Ok(code) => *code,
        Err(err) => match classify(err) {
            ErrorClass::Usage => codes.usage,
            ErrorClass::Runtime => codes.runtime,
        },
    }
}

/// The `main` of every tool: parse arguments with clap, run, flush stdout (a closed stdout
/// is no error: see [`crate::output`]), print the error (as `tool: message: cause: cause`)
/// and pick the exit status ([`status_for`]).
///
/// Clap's own usage errors exit with `codes.usage`; `--help` and `--version` exit 0.
pub fn run_main<P: clap::Parser>(
    tool: &str,
    codes: Codes,
    run: impl FnOnce(P) -> anyhow::Result<u8>,
) -> std::process::ExitCode {
    crate::format::set_tool(tool);
    let parsed = match P::try_parse() {
        Ok(parsed) => parsed,
        Err(err) => {
            let code = if err.use_stderr() { codes.usage } else { OK };
            // A failed print of --help into a closed pipe is not worth reporting.
            let _ = err.print();
            return std::process::ExitCode::from(code);
        }
    };
    let result = run(parsed).and_then(|code| {
        crate::output::stdout().flush()?;
        Ok(code)
    });
    if let Err(err) = &result {
        // Not eprintln!, which panics when stderr is a closed pipe too (`2>&1 | head`).
        let _ = writeln!(io::stderr(), "{tool}: {err:#}");
    }
    std::process::ExitCode::from(status_for(&result, codes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn class_survives_context() {
        let err = anyhow::Error::from(Error::usage("bad flag")).context("while parsing");
        assert_eq!(classify(&err), ErrorClass::Usage);
        assert_eq!(status_for(&Err(err), Codes::STANDARD), USAGE);
    }

    #[test]
    fn unclassified_errors_are_runtime() {
        let err: anyhow::Result<u8> = Err(anyhow::anyhow!("connection refused"));
        assert_eq!(status_for(&err, Codes::STANDARD), RUNTIME);
    }

    #[test]
    fn nagios_codes_make_usage_unknown() {
        let err: anyhow::Result<u8> = Err(Error::usage("bad").into());
        assert_eq!(status_for(&err, Codes::NAGIOS), RUNTIME);
    }

    #[test]
    fn a_run_stopped_by_a_broken_pipe_has_no_verdict() {
        // Reports absorb a closed stdout (crate::output); a broken pipe that still stops a
        // run must not read as "all good" (issue 20, item 4).
        let io_err = io::Error::new(io::ErrorKind::BrokenPipe, "closed");
        let err: anyhow::Result<u8> = Err(anyhow::Error::from(io_err)).context("writing report");
        assert!(is_broken_pipe(err.as_ref().unwrap_err()));
        assert_eq!(status_for(&err, Codes::STANDARD), RUNTIME);
        assert_eq!(status_for(&err, Codes::NAGIOS), RUNTIME);
    }

    #[test]
    fn ok_code_passes_through() {
        assert_eq!(status_for(&Ok(FOUND), Codes::STANDARD), FOUND);
    }
}
