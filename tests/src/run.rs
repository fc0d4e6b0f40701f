//! The test vocabulary every crate's tests share, on `assert_cmd`: run a tool with its
//! arguments, environment and stdin ([`Tool`], [`run`]), then read what it said ([`Run`]):
//! its exit code (asserted with stdout and stderr in the message), its JSON Lines records and
//! their closing summary.
//!
//! ```no_run
//! use stg_tests::run::Tool;
//! let run = Tool::new("stg-hosts").args(["emit", "-i", "inv.json"]).run().ok();
//! assert_eq!(run.summary()["overrides"], 3);
//! ```

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

/// A workspace binary about to run, hermetic as [`crate::cmd::stg`] makes it.
pub struct Tool {
    cmd: assert_cmd::Command,
}

impl Tool {
    /// The workspace binary `name` (`stg-dump`, ...), with the pinned environment.
    #[must_use]
    pub fn new(name: &str) -> Tool {
        Tool::from(crate::cmd::stg(name))
    }

    /// Adds an argument.
    #[must_use]
    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Tool {
        self.cmd.arg(arg);
        self
    }

    /// Adds arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Tool
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Sets an environment variable.
    #[must_use]
    pub fn env(
        mut self,
        key: impl AsRef<std::ffi::OsStr>,
        value: impl AsRef<std::ffi::OsStr>,
    ) -> Tool {
        self.cmd.env(key, value);
        self
    }

    /// Gives the tool `input` on stdin (written from another thread, so a tool that stops
    /// reading early cannot deadlock the test). Without it, stdin is empty.
    #[must_use]
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Tool {
        self.cmd.write_stdin(input);
        self
    }

    /// Kills the tool after `limit` (the test then fails on its exit code).
    #[must_use]
    pub fn timeout(mut self, limit: Duration) -> Tool {
        self.cmd.timeout(limit);
        self
    }

    /// Runs the tool to its end.
    #[must_use]
    pub fn run(mut self) -> Run {
        Run::from(self.cmd.output().expect("start the tool"))
    }
}

impl From<Command> for Tool {
    fn from(cmd: Command) -> Tool {
        Tool {
            cmd: assert_cmd::Command::from_std(cmd),
        }
    }
}

/// Running a `std::process::Command` prepared elsewhere (with pipes or a closed stdout set
/// by the test) straight into a [`Run`].
pub trait RunExt {
    /// Runs the command to its end (stdin empty unless the command says otherwise).
    fn run(&mut self) -> Run;
}

impl RunExt for Command {
    #[track_caller]
    fn run(&mut self) -> Run {
        Run::from(self.output().expect("start the command"))
    }
}

/// Runs a prepared command (any program, e.g. from [`crate::cmd::program`]) with `input`
/// on stdin.
#[must_use]
pub fn run(cmd: Command, input: impl Into<Vec<u8>>) -> Run {
    Tool::from(cmd).stdin(input).run()
}

/// A finished run: how the tool exited and what it printed.
#[derive(Debug)]
pub struct Run {
    /// The exit code (a run ended by a signal fails the test when it becomes a `Run`).
    pub code: i32,
    /// Stdout as text (invalid UTF-8 shown as U+FFFD; the bytes are in [`Run::bytes`]).
    pub stdout: String,
    /// Stderr as text.
    pub stderr: String,
    /// Stdout as bytes (a dump stream).
    pub bytes: Vec<u8>,
}

impl From<Output> for Run {
    #[track_caller]
    fn from(output: Output) -> Run {
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let code = output.status.code().unwrap_or_else(|| {
            panic!("killed by a signal ({:?}); stderr: {stderr}", output.status)
        });
        Run {
            code,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr,
            bytes: output.stdout,
        }
    }
}

// The asserting methods return the run for chaining (`.ok().summary()`) and are just as
// often statements (`apply(...).ok();`): not `must_use`.
#[allow(clippy::return_self_not_must_use)]
impl Run {
    /// Asserts the exit code, showing stdout and stderr when it differs.
    #[track_caller]
    pub fn code_is(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "exit code\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn ok(self) -> Run {
        self.code_is(0)
    }

    /// Every JSON Lines record of stdout, blank lines skipped; a line that is not a JSON
    /// object with a string `"type"` fails the test, naming it.
    #[must_use]
    #[track_caller]
    pub fn records(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                let record: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!(
                        "stdout line {}: not JSON ({e}): {line}\nstderr: {}",
                        i + 1,
                        self.stderr
                    )
                });
                assert!(
                    record["type"].is_string(),
                    "stdout line {}: a record without a \"type\": {line}",
                    i + 1
                );
                record
            })
            .collect()
    }

    /// The records of one `"type"`.
    #[must_use]
    #[track_caller]
    pub fn of_type(&self, kind: &str) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["type"] == kind)
            .collect()
    }

    /// The closing `summary` record, which must be the last line.
    #[must_use]
    #[track_caller]
    pub fn summary(&self) -> Value {
        let record = self.records().pop().unwrap_or_else(|| {
            panic!(
                "no JSON Lines on stdout (exit {}); stderr: {}",
                self.code, self.stderr
            )
        });
        assert_eq!(
            record["type"], "summary",
            "the last record is the summary: {record}"
        );
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_summary_and_stdin_through_a_real_program() {
        let mut sh = crate::cmd::program("sh");
        sh.args(["-c", "cat; echo '{\"type\":\"summary\",\"n\":1}'"]);
        let run = run(sh, "{\"type\":\"check\",\"x\":2}\n\n").ok();
        assert_eq!(run.of_type("check")[0]["x"], 2);
        assert_eq!(run.summary()["n"], 1);
        assert_eq!(run.records().len(), 2);
    }

    #[test]
    #[should_panic(expected = "exit code")]
    fn a_wrong_exit_code_fails_with_the_output() {
        let mut sh = crate::cmd::program("sh");
        sh.args(["-c", "echo out; echo err >&2; exit 3"]);
        let _ = run(sh, "").code_is(0);
    }

    #[test]
    #[should_panic(expected = "not JSON")]
    fn a_line_that_is_not_json_is_named() {
        let mut sh = crate::cmd::program("sh");
        sh.args(["-c", "echo '{\"type\":\"a\"}'; echo oops"]);
        let _ = run(sh, "").records();
    }
}
