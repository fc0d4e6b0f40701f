//! The restore: stream -> `<db>__stg_incoming` -> verified -> swapped in for `<db>`.
//!
//! The procedure is a chain of stages, each a type holding what exists at that point
//! (`prepare::Opened` has the manifest and the names, `prepare::Connected` the
//! maintenance connection, `incoming::Incoming` a database on the server that a failure
//! must drop, `incoming::Loaded` and `incoming::Verified` the stream's outcome,
//! `swap::Swapped` the new database in place); each step consumes one stage and returns
//! the next. Steps, in order, each named in the report when it fails and timed under the
//! same name (see [`Step`]): `read` (the manifest), `connect`, `prepare` (target name,
//! advisory lock, roles, leftover incoming database, `CREATE DATABASE`), `load` (the
//! stream's SQL through the load's connections), `verify` (trailer against what was read),
//! `analyze`, `provenance`, `check`, `notify`, `pre-hook`, `swap`, `post-hook`, `prune`.
//!
//! Until `swap` commits, any failure (or SIGINT/SIGTERM/SIGHUP) closes the load's
//! connections, drops the incoming database and leaves the live one untouched; after it,
//! the new database stays and the failure is reported. If the swap fails after the
//! pre-hook succeeded, the post-hook still runs so that what the pre-hook stopped is
//! started again.

mod changes;
mod incoming;
mod prepare;
mod swap;

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use stg_core::{timestamp, Error};

use crate::db::Maintenance;
use crate::hooks::{self, Hook};
use crate::load::Progress;
use crate::report::{self, ProgressLine, RestoreSummary};
use crate::signals::{interrupted, Cancel};
use crate::sql;
use crate::RestoreConfig;

use incoming::Incoming;

/// A step of the restore: the name of its failure (`failed_step`) and of its timing
/// (`timings_ms`) in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Reading the stream's first line.
    Read,
    /// Connecting to the server.
    Connect,
    /// Lock, roles, leftover, create.
    Prepare,
    /// Loading the stream.
    Load,
    /// Checking the trailer.
    Verify,
    /// VACUUM ANALYZE.
    Analyze,
    /// Recording the baseline and the provenance.
    Provenance,
    /// The live database's local changes (refused here with `--if-unchanged`).
    Check,
    /// `--notify`.
    Notify,
    /// `--pre-hook`.
    PreHook,
    /// The renames.
    Swap,
    /// `--post-hook`.
    PostHook,
    /// Dropping old copies.
    Prune,
}

impl Step {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Step::Read => "read",
            Step::Connect => "connect",
            Step::Prepare => "prepare",
            Step::Load => "load",
            Step::Verify => "verify",
            Step::Analyze => "analyze",
            Step::Provenance => "provenance",
            Step::Check => "check",
            Step::Notify => "notify",
            Step::PreHook => "pre-hook",
            Step::Swap => "swap",
            Step::PostHook => "post-hook",
            Step::Prune => "prune",
        }
    }
}

/// Runs a restore; prints the summary; `Err` (with the step named) when it failed.
pub fn run(config: &RestoreConfig, format: stg_core::format::Format) -> anyhow::Result<u8> {
    let rt = crate::runtime()?;
    let summary = rt.block_on(async {
        let cancel = Cancel::install().context("while installing signal handlers")?;
        let mut session = Session::new(config, cancel);
        Box::pin(session.run()).await;
        anyhow::Ok(session.summary)
    })?;
    // The reader thread may still wait on stdin; it ends with the process.
    rt.shutdown_background();
    let printed = report::print_restore(&summary, format);
    if summary.ok {
        // A closed stdout after a good restore is still a good restore (exit 0 by policy).
        return printed.map(|()| stg_core::exit::OK);
    }
    if summary.refused {
        // Not an error: the check found something (exit 1), and said what on stderr.
        let _ = writeln!(
            std::io::stderr(),
            "stg-restore: {}",
            summary.error.as_deref().unwrap_or("refused")
        );
        return Ok(stg_core::exit::FOUND);
    }
    // A failed restore fails even when its report could not be printed.
    let step = summary.failed_step.unwrap_or("?");
    let error = summary.error.clone().unwrap_or_default();
    let db = summary
        .database
        .clone()
        .unwrap_or_else(|| "the database".into());
    let after = if summary.incoming_dropped {
        format!(
            "; {} was dropped and {db} is untouched",
            summary.incoming.clone().unwrap_or_default()
        )
    } else {
        String::new()
    };
    let message = format!("step {step} failed: {error}{after}");
    Err(match summary_class(&summary) {
        stg_core::ErrorClass::Usage => Error::usage(message).into(),
        stg_core::ErrorClass::Runtime => Error::runtime(message).into(),
    })
}

/// Input problems (a bad stream, missing roles, bad names) are exit 2; the rest 3.
fn summary_class(summary: &RestoreSummary) -> stg_core::ErrorClass {
    if summary.failed_step.is_some() && summary.failed_class_usage {
        stg_core::ErrorClass::Usage
    } else {
        stg_core::ErrorClass::Runtime
    }
}

/// What every step shares: the flags, the signal watch, the report being written, and the
/// step under way (named when something fails).
pub(crate) struct Session<'a> {
    config: &'a RestoreConfig,
    cancel: Cancel,
    summary: RestoreSummary,
    step: Step,
    progress: Arc<Progress>,
    line: ProgressLine,
}

/// A failed restore and what is left to undo.
struct Failed {
    error: anyhow::Error,
    undo: Undo,
}

/// What a failure leaves behind.
enum Undo {
    /// Nothing was created (or the new database is in place already).
    Nothing,
    /// The incoming database may exist: drop it; run the post-hook when the pre-hook ran.
    Incoming {
        incoming: Box<Incoming>,
        post_hook: bool,
    },
}

impl From<anyhow::Error> for Failed {
    fn from(error: anyhow::Error) -> Self {
        Failed {
            error,
            undo: Undo::Nothing,
        }
    }
}

impl<'a> Session<'a> {
    fn new(config: &'a RestoreConfig, cancel: Cancel) -> Self {
        Session {
            config,
            cancel,
            summary: RestoreSummary {
                command: "restore",
                ..RestoreSummary::default()
            },
            step: Step::Read,
            progress: Arc::new(Progress::default()),
            line: ProgressLine::new(),
        }
    }

    /// Runs one step: names it (for a failure), and times it under the same name when it
    /// succeeds (a step run twice adds up).
    async fn timed<T>(
        &mut self,
        step: Step,
        f: impl AsyncFnOnce(&mut Self) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.step = step;
        let started = Instant::now();
        let value = f(self).await?;
        *self.summary.timings_ms.entry(step.name()).or_default() +=
            started.elapsed().as_millis() as u64;
        Ok(value)
    }

    /// An error when a signal arrived (between steps that do not watch for one).
    fn go_on(&self) -> anyhow::Result<()> {
        match self.cancel.fired() {
            Some(name) => Err(interrupted(name)),
            None => Ok(()),
        }
    }

    async fn run(&mut self) {
        let started = Instant::now();
        match Box::pin(self.procedure()).await {
            Ok(()) => self.summary.ok = true,
            Err(Failed { error, undo }) => {
                self.line.done("");
                self.summary.failed_step = Some(self.step.name());
                self.summary.failed_class_usage =
                    stg_core::exit::classify(&error) == stg_core::ErrorClass::Usage;
                self.summary.refused = error.downcast_ref::<changes::Refused>().is_some();
                self.summary.error = Some(format!("{error:#}"));
                if let Undo::Incoming {
                    incoming,
                    post_hook,
                } = undo
                {
                    self.undo(*incoming, post_hook).await;
                }
            }
        }
        if let Some(name) = self.cancel.fired() {
            if self.summary.ok {
                self.summary.warnings.push(format!(
                    "{name} arrived during the swap; the swap was finished first"
                ));
            }
        }
        *self.summary.timings_ms.entry("total").or_default() +=
            started.elapsed().as_millis() as u64;
    }

    /// The steps in order.
    async fn procedure(&mut self) -> Result<(), Failed> {
        if self.config.psql_ignored {
            self.summary.warnings.push(
                "--psql is ignored: stg-restore loads through its own connections and never \
                 runs psql"
                    .into(),
            );
        }
        let opened = self
            .timed(Step::Read, async |s| prepare::Opened::read(s).await)
            .await?;
        let connected = self
            .timed(Step::Connect, async |s| opened.connect(s).await)
            .await?;
        let prepared = self
            .timed(Step::Prepare, async |s| connected.prepare(s).await)
            .await?;
        // From here on, a failure drops the incoming database (an interrupted CREATE
        // DATABASE still finishes on the server first: the DROP is queued behind it).
        let prepare::Prepared {
            mut incoming,
            create,
            events,
            manifest,
        } = prepared;
        let ready = async {
            self.timed(Step::Prepare, async |s| incoming.create(s, &create).await)
                .await?;
            let loaded = self
                .timed(Step::Load, async |s| {
                    Box::pin(incoming.load(s, events)).await
                })
                .await?;
            let verified = self
                .timed(Step::Verify, async |s| loaded.verify(s, &incoming))
                .await?;
            if self.config.analyze {
                self.timed(Step::Analyze, async |s| incoming.analyze(s).await)
                    .await?;
            }
            self.timed(Step::Provenance, async |s| {
                incoming.record(s, manifest.as_ref(), &verified).await
            })
            .await?;
            self.go_on()?;
            let checked = self
                .timed(Step::Check, async |s| {
                    changes::check(s, &incoming, true).await
                })
                .await?;
            self.go_on()?;
            if self.config.notify.is_some() {
                self.timed(Step::Notify, async |s| {
                    changes::notify(s, &incoming, &checked).await
                })
                .await?;
                self.go_on()?;
            }
            if let Some(command) = &self.config.pre_hook {
                self.timed(Step::PreHook, async |_| {
                    hooks::run(Hook::Pre, command, &incoming.db, &incoming.name, None).await
                })
                .await?;
                self.go_on()?;
            }
            anyhow::Ok(checked)
        }
        .await;
        let checked = match ready {
            Ok(checked) => checked,
            Err(error) => {
                return Err(Failed {
                    error,
                    undo: Undo::Incoming {
                        incoming: Box::new(incoming),
                        post_hook: false,
                    },
                })
            }
        };
        // After the pre-hook: a failure restarts what it stopped.
        let swapped = async {
            if self.config.if_unchanged {
                // Again: writes may have happened during the notify and the pre-hook
                // (which stops the application).
                self.timed(Step::Check, async |s| {
                    changes::check_again(s, &incoming, checked).await
                })
                .await?;
                self.go_on()?;
            }
            // Not interruptible once begun.
            self.timed(Step::Swap, async |s| incoming.swap(s).await)
                .await
        }
        .await;
        let swapped = match swapped {
            Ok(previous) => incoming.swapped(previous),
            Err(error) => {
                return Err(Failed {
                    error,
                    undo: Undo::Incoming {
                        incoming: Box::new(incoming),
                        post_hook: self.config.pre_hook.is_some(),
                    },
                })
            }
        };
        self.line.done(&format!("swapped in {}", swapped.db));
        if let Some(command) = &self.config.post_hook {
            self.timed(Step::PostHook, async |_| swapped.post_hook(command).await)
                .await?;
        }
        self.timed(Step::Prune, async |s| {
            swapped.prune(s).await;
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// After a failure: drop the incoming database (the load's connections are closed by
    /// now), restart what the pre-hook stopped.
    async fn undo(&mut self, incoming: Incoming, post_hook: bool) {
        match incoming.m.drop_database(&incoming.name).await {
            Ok(()) => self.summary.incoming_dropped = true,
            Err(err) => self.summary.warnings.push(format!(
                "could not drop {}: {err:#}; the next restore of {} drops it",
                incoming.name, incoming.db
            )),
        }
        if post_hook {
            if let Some(command) = &self.config.post_hook {
                if let Err(err) =
                    hooks::run(Hook::Post, command, &incoming.db, &incoming.name, None).await
                {
                    self.summary
                        .warnings
                        .push(format!("after the failed swap, {err:#}"));
                }
            }
        }
    }
}

/// The warning when [`Maintenance::reopen`] had to allow connections again.
pub fn reopened_warning(db: &str) -> String {
    format!(
        "{db} did not accept connections (left so by a run killed during its swap); \
         connections are allowed again"
    )
}

/// `<db>__stg_prev_<now>` and now (RFC 3339, the retire time the swap records), waiting a
/// second when a copy of this second exists already.
pub async fn free_previous_name(m: &Maintenance, db: &str) -> anyhow::Result<(String, String)> {
    for _ in 0..5 {
        let now = timestamp::now();
        let name = sql::previous_name(db, &timestamp::compact(now));
        if !m.exists(&name).await? {
            return Ok((name, timestamp::format(now)));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    anyhow::bail!("could not find a free name for the kept copy of {db}")
}
