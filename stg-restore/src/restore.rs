//! The restore: stream -> `<db>__stg_incoming` -> verified -> swapped in for `<db>`.
//!
//! Steps, in order, each named in the report when it fails:
//! `read` (the manifest), `connect`, `prepare` (target name, advisory lock, roles, leftover
//! incoming database, `CREATE DATABASE`), `load` (the stream's SQL through the load's connections), `verify` (trailer against what was
//! read), `analyze`, `pre-hook`, `swap`, `post-hook`, `prune`.
//! Until `swap` commits, any failure (or SIGINT/SIGTERM/SIGHUP) closes the load's connections, drops the
//! incoming database and leaves the live one untouched; after it, the new database stays
//! and the failure is reported. If the swap fails after the pre-hook succeeded, the
//! post-hook still runs so that what the pre-hook stopped is started again.

use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use stg_core::provenance::{self, Activity, Baseline, ChangeStatus, LocalChanges, Provenance};
use stg_core::stream::Manifest;
use stg_core::{timestamp, Error};
use tokio::sync::mpsc;

use crate::db::{Kind, Maintenance};
use crate::hooks::{self, Hook};
use crate::load::{self, Event, Loader, Progress};
use crate::reader::{Options, Outcome};
use crate::report::{self, NotifyOutcome, ProgressLine, RestoreSummary, Source, Verification};
use crate::signals::{interrupted, Cancel};
use crate::sql::{self, DbSettings};
use crate::RestoreConfig;

/// A step of the restore, as named in reports.
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
    /// `--if-unchanged`: the live database's local changes.
    Check,
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
            Step::PreHook => "pre-hook",
            Step::Swap => "swap",
            Step::PostHook => "post-hook",
            Step::Prune => "prune",
        }
    }
}

/// Runs a restore; prints the summary; `Err` (with the step named) when it failed.
pub fn run(config: &RestoreConfig) -> anyhow::Result<u8> {
    let rt = crate::runtime()?;
    let summary = rt.block_on(async {
        let cancel = Cancel::install().context("while installing signal handlers")?;
        let mut restore = Restore::new(config, cancel);
        restore.run().await;
        anyhow::Ok(restore.summary)
    })?;
    // The reader thread may still wait on stdin; it ends with the process.
    rt.shutdown_background();
    let printed = report::print_restore(&summary, config.format);
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

struct Restore<'a> {
    config: &'a RestoreConfig,
    cancel: Cancel,
    summary: RestoreSummary,
    step: Step,
    maintenance: Option<Maintenance>,
    loader: Option<Loader>,
    incoming: String,
    incoming_created: bool,
    pre_hook_ok: bool,
    swapped: bool,
    progress: Arc<Progress>,
    line: ProgressLine,
    /// The live database's provenance, read by the check (for `--notify`).
    current: Option<Provenance>,
}

/// `--if-unchanged` refused: the live database has local changes, or they are unknown.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// What `--notify` reads on its stdin.
#[derive(serde::Serialize)]
struct Pending<'s> {
    r#type: &'static str,
    database: &'s str,
    incoming: &'s str,
    server: String,
    /// Where the incoming copy comes from.
    source: Option<&'s Source>,
    /// The copy about to be replaced, from its provenance (`None`: no live database, or
    /// not restored by stg-restore).
    current: Option<CurrentCopy<'s>>,
    /// Whether a live database exists (and will be kept as a previous copy).
    replaces: bool,
    local_changes: Option<&'s LocalChanges>,
    if_unchanged: bool,
    now: String,
}

#[derive(serde::Serialize)]
struct CurrentCopy<'s> {
    source_host: &'s str,
    source_database: &'s str,
    dumped_at: Option<&'s str>,
    restored_at: &'s str,
    /// Seconds since `restored_at`.
    age_seconds: Option<u64>,
}

impl<'a> Restore<'a> {
    fn new(config: &'a RestoreConfig, cancel: Cancel) -> Self {
        Restore {
            config,
            cancel,
            summary: RestoreSummary {
                r#type: "summary",
                command: "restore",
                ..RestoreSummary::default()
            },
            step: Step::Read,
            maintenance: None,
            loader: None,
            incoming: String::new(),
            incoming_created: false,
            pre_hook_ok: false,
            swapped: false,
            progress: Arc::new(Progress::default()),
            line: ProgressLine::new(),
            current: None,
        }
    }

    fn time(&mut self, phase: &'static str, started: Instant) {
        self.summary
            .timings_ms
            .insert(phase, started.elapsed().as_millis() as u64);
    }

    async fn run(&mut self) {
        let started = Instant::now();
        let result = self.steps().await;
        if let Err(err) = result {
            self.line.done("");
            self.summary.failed_step = Some(self.step.name());
            self.summary.failed_class_usage =
                stg_core::exit::classify(&err) == stg_core::ErrorClass::Usage;
            self.summary.refused = err.downcast_ref::<Refused>().is_some();
            self.summary.error = Some(format!("{err:#}"));
            self.clean_up().await;
        } else {
            self.summary.ok = true;
        }
        if let Some(name) = self.cancel.fired() {
            if self.summary.ok {
                self.summary.warnings.push(format!(
                    "{name} arrived during the swap; the swap was finished first"
                ));
            }
        }
        self.time("total", started);
    }

    /// After a failure: close the load's connections (their jobs are aborted), drop the
    /// incoming database, restart what the pre-hook stopped.
    async fn clean_up(&mut self) {
        self.loader = None;
        if self.incoming_created && !self.swapped {
            if let Some(m) = &self.maintenance {
                match m.drop_database(&self.incoming).await {
                    Ok(()) => self.summary.incoming_dropped = true,
                    Err(err) => self.summary.warnings.push(format!(
                        "could not drop {}: {err:#}; the next restore of {} drops it",
                        self.incoming,
                        self.summary.database.as_deref().unwrap_or("")
                    )),
                }
            }
        }
        if self.pre_hook_ok && !self.swapped {
            if let Some(command) = &self.config.post_hook {
                let db = self.summary.database.clone().unwrap_or_default();
                if let Err(err) = hooks::run(Hook::Post, command, &db, &self.incoming, None).await {
                    self.summary
                        .warnings
                        .push(format!("after the failed swap, {err:#}"));
                }
            }
        }
    }

    async fn steps(&mut self) -> anyhow::Result<()> {
        if self.config.psql_ignored {
            self.summary.warnings.push(
                "--psql is ignored: stg-restore loads through its own connections and never \
                 runs psql"
                    .into(),
            );
        }
        // read: the manifest decides the target and how the database is created.
        self.step = Step::Read;
        let t = Instant::now();
        let options = Options {
            accept_unverified: self.config.accept_unverified,
            rename_database_to: self.config.db.as_deref().map(sql::incoming_name),
        };
        let mut rx = load::spawn_reader(options, Arc::clone(&self.progress));
        let opened = self.cancel.run(async { Ok(rx.recv().await) }).await?;
        let manifest = match opened {
            Some(Event::Opened(Ok(manifest))) => manifest,
            Some(Event::Opened(Err(err))) => return Err(Error::usage(err.0).into()),
            _ => anyhow::bail!("internal error: the stream reader stopped unexpectedly"),
        };
        let db = match (&self.config.db, &manifest) {
            (Some(db), _) => db.clone(),
            (None, Some(m)) => {
                sql::check_target(&m.database, self.config.conn.dbname.as_str()).map_err(|e| {
                    Error::usage(format!(
                        "{e} (from the stream's manifest; use --db to choose another name)"
                    ))
                })?;
                m.database.clone()
            }
            (None, None) => unreachable!("--accept-unverified requires --db"),
        };
        self.incoming = sql::incoming_name(&db);
        self.summary.database = Some(db.clone());
        self.summary.incoming = Some(self.incoming.clone());
        if let Some(m) = &manifest {
            self.summary.source = Some(Source {
                database: m.database.clone(),
                host: m.source_host.clone(),
                dumped_at: m.dumped_at.clone(),
                tool: m.tool.clone(),
            });
        }
        self.time("read_manifest", t);

        // connect
        self.step = Step::Connect;
        let t = Instant::now();
        let conn = self.config.conn.clone();
        let maintenance = self.cancel.run(Maintenance::connect(&conn)).await?;
        maintenance
            .require_staging_server(&conn, &format!("restore into database {db}"))
            .await?;
        self.maintenance = Some(maintenance);
        self.time("connect", t);

        // prepare
        self.step = Step::Prepare;
        let t = Instant::now();
        self.prepare(&db, manifest.as_ref()).await?;
        self.time("prepare", t);

        // load + verify
        self.step = Step::Load;
        let t = Instant::now();
        let outcome = self.load(&mut rx).await?;
        self.time("load", t);

        // analyze
        if self.config.analyze {
            self.step = Step::Analyze;
            let t = Instant::now();
            let conn = self.config.conn.with_dbname(&self.incoming);
            self.cancel
                .run(async {
                    let client = conn.connect().await?;
                    client
                        .batch_execute("VACUUM ANALYZE")
                        .await
                        .context("while running VACUUM ANALYZE")?;
                    Ok(())
                })
                .await?;
            self.time("analyze", t);
        }

        // provenance, on the incoming database so it moves with the rename
        self.step = Step::Provenance;
        let t = Instant::now();
        let baseline = self.baseline().await?;
        let provenance = Provenance {
            stg_provenance: provenance::VERSION,
            source_host: manifest
                .as_ref()
                .map_or_else(String::new, |m| m.source_host.clone()),
            source_database: manifest
                .as_ref()
                .map_or_else(String::new, |m| m.database.clone()),
            dumped_at: manifest.as_ref().map(|m| m.dumped_at.clone()),
            restored_at: timestamp::format(timestamp::now()),
            stream_sha256: outcome.verified().then(|| outcome.counted.sha256.clone()),
            verified: outcome.verified(),
            masking: manifest
                .as_ref()
                .map(|m| m.masking.clone())
                .unwrap_or_default(),
            restored_by: format!("stg-restore {}", env!("CARGO_PKG_VERSION")),
        };
        let m = self.maintenance.as_ref().expect("connected");
        self.cancel
            .run(m.set_comment(
                &self.incoming,
                &provenance.to_comment_with(baseline.as_ref()),
            ))
            .await?;
        self.time("provenance", t);
        if let Some(name) = self.cancel.fired() {
            return Err(interrupted(name));
        }

        // check: what the swap would replace
        self.step = Step::Check;
        let t = Instant::now();
        let changes = self.check(&db).await?;
        if let Some(changes) = &changes {
            report::print_local_changes(&db, changes);
        }
        self.time("check", t);
        if let Some(name) = self.cancel.fired() {
            return Err(interrupted(name));
        }

        // notify
        if let Some(command) = &self.config.notify {
            let t = Instant::now();
            let input = self.pending(&db);
            let result = hooks::notify(
                command,
                &input,
                self.config.notify_timeout,
                &db,
                &self.incoming,
            )
            .await;
            if let Err(err) = &result {
                self.summary.warnings.push(err.clone());
                let _ = writeln!(std::io::stderr(), "stg-restore: warning: {err}");
            }
            self.summary.notify = Some(NotifyOutcome {
                ok: result.is_ok(),
                error: result.err(),
                elapsed_ms: t.elapsed().as_millis() as u64,
            });
            self.time("notify", t);
            if let Some(name) = self.cancel.fired() {
                return Err(interrupted(name));
            }
        }

        // pre-hook
        if let Some(command) = &self.config.pre_hook {
            self.step = Step::PreHook;
            let t = Instant::now();
            hooks::run(Hook::Pre, command, &db, &self.incoming, None).await?;
            self.pre_hook_ok = true;
            self.time("pre_hook", t);
            if let Some(name) = self.cancel.fired() {
                return Err(interrupted(name));
            }
        }

        // check again: writes may have happened during the notify and the pre-hook (which
        // stops the application)
        if self.config.if_unchanged {
            self.step = Step::Check;
            let before = changes;
            let again = self.check_settled(&db).await?;
            if again != before {
                if let Some(again) = &again {
                    report::print_local_changes(&db, again);
                }
            }
            if let Some(name) = self.cancel.fired() {
                return Err(interrupted(name));
            }
        }

        // swap: not interruptible once begun
        self.step = Step::Swap;
        let t = Instant::now();
        let m = self.maintenance.as_mut().expect("connected");
        let retired = free_previous_name(m, &db).await?;
        let live_existed = m.exists(&db).await?;
        let terminated = m.swap(&db, &self.incoming, &retired).await?;
        self.swapped = true;
        self.summary.sessions_terminated = terminated;
        if live_existed {
            self.summary.previous = Some(retired.clone());
        }
        self.time("swap", t);
        self.line.done(&format!("swapped in {db}"));

        // post-hook
        if let Some(command) = &self.config.post_hook {
            self.step = Step::PostHook;
            let t = Instant::now();
            let previous = self.summary.previous.clone();
            hooks::run(
                Hook::Post,
                command,
                &db,
                &self.incoming,
                previous.as_deref(),
            )
            .await
            .context("the new database is in place; kept copies were not pruned")?;
            self.time("post_hook", t);
        }

        // prune
        self.step = Step::Prune;
        let t = Instant::now();
        self.prune(&db).await?;
        self.time("prune", t);
        Ok(())
    }

    async fn prepare(&mut self, db: &str, manifest: Option<&Manifest>) -> anyhow::Result<()> {
        let m = self.maintenance.as_ref().expect("connected");
        if !self.cancel.run(m.try_lock(db)).await? {
            let holder = m
                .lock_holder(db)
                .await
                .map(|pid| format!(" (server process {pid})"))
                .unwrap_or_default();
            return Err(Error::runtime(format!(
                "another stg-restore of {db} is running{holder}; try again when it has finished"
            ))
            .into());
        }
        if self.cancel.run(m.reopen(db)).await? {
            self.summary.warnings.push(reopened_warning(db));
        }
        if self.config.if_unchanged {
            // Before the load, to save it when the answer is no; again before the swap.
            let step = self.step;
            self.step = Step::Check;
            self.check(db).await?;
            self.step = step;
        }
        let m = self.maintenance.as_ref().expect("connected");
        let settings = if let Some(manifest) = manifest {
            let mut roles = vec![manifest.owner.clone()];
            for role in &manifest.roles {
                if !role.eq_ignore_ascii_case("public") && !roles.contains(role) {
                    roles.push(role.clone());
                }
            }
            let missing = self.cancel.run(m.missing_roles(&roles)).await?;
            if !missing.is_empty() {
                return Err(Error::usage(format!(
                    "the dump needs role(s) that do not exist on this server: {}; create them \
                     (e.g. CREATE ROLE {} NOLOGIN) and restore again",
                    missing.join(", "),
                    sql::ident(&missing[0])
                ))
                .into());
            }
            DbSettings::from_manifest(manifest)
        } else {
            // A plain dump: the live database's settings, else template1's.
            let live = self.cancel.run(m.settings_of(db)).await?;
            if let Some(s) = live {
                s
            } else {
                let mut s = self
                    .cancel
                    .run(m.settings_of("template1"))
                    .await?
                    .context("template1 is missing")?;
                s.owner = m.current_user().await?;
                s
            }
        };
        if self.cancel.run(m.exists(&self.incoming)).await? {
            self.cancel.run(m.drop_database(&self.incoming)).await?;
            self.summary.warnings.push(format!(
                "dropped {} left over by an earlier restore that did not finish",
                self.incoming
            ));
        }
        let create = sql::create_database(&self.incoming, &settings, m.server_version_num)
            .map_err(Error::usage)?;
        // From here on, a failure drops the incoming database (an interrupted CREATE
        // DATABASE still finishes on the server first: the DROP is queued behind it).
        self.incoming_created = true;
        self.cancel
            .run(m.execute(&create))
            .await
            .with_context(|| format!("while creating {}", self.incoming))?;
        Ok(())
    }

    /// Runs the stream's items on the load's connections, then checks the trailer and the
    /// rows the server stored.
    async fn load(&mut self, rx: &mut mpsc::Receiver<Event>) -> anyhow::Result<Outcome> {
        let conn = self.config.conn.with_dbname(&self.incoming);
        let loader = self
            .cancel
            .run(Loader::connect(conn, self.config.jobs))
            .await?;
        self.loader = Some(loader);
        let cancel = self.cancel.clone();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let result = loop {
            let event = tokio::select! {
                event = rx.recv() => event,
                name = cancel.wait() => return Err(interrupted(name)),
                _ = tick.tick() => {
                    self.line.show(&format!(
                        "loading {}: {} MiB, {} rows",
                        self.incoming,
                        self.progress.bytes.load(Ordering::Relaxed) >> 20,
                        self.progress.rows.load(Ordering::Relaxed)
                    ));
                    continue;
                }
            };
            let loader = self.loader.as_mut().expect("connected");
            match event {
                Some(Event::Items(items)) => {
                    let ran = cancel
                        .run(async {
                            for item in items {
                                loader.item(item).await?;
                            }
                            Ok(())
                        })
                        .await;
                    if let Err(err) = ran {
                        break Err(err);
                    }
                }
                Some(Event::End(Ok(outcome))) => {
                    break cancel.run(loader.finish()).await.map(|()| outcome);
                }
                Some(Event::End(Err(err))) => {
                    // The stream broke or a statement was refused: an input problem.
                    return Err(Error::usage(err.0).into());
                }
                Some(Event::Opened(_)) | None => {
                    anyhow::bail!("internal error: the stream reader stopped unexpectedly")
                }
            }
        };
        let loader = self.loader.take().expect("connected");
        self.summary.jobs = loader.peak_jobs.max(1);
        self.summary.connections = loader.connections();
        self.summary.tables.clone_from(&loader.tables);
        drop(loader);
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(err) if cancel.fired().is_some() => return Err(err),
            Err(err) => return Err(explain_failure(err, rx).await),
        };
        self.summary.format = Some(outcome.format);
        self.summary.bytes = outcome.counted.bytes;
        self.summary.compressed_bytes = outcome.compressed_bytes;
        self.summary.rows.clone_from(&outcome.counted.tables);
        self.summary
            .warnings
            .extend(outcome.warnings.iter().cloned());
        self.summary.verification = Verification {
            verified: outcome.verified(),
            sha256: Some(outcome.counted.sha256.clone()),
            trailer_sha256: outcome.stated.as_ref().map(|t| t.sha256.clone()),
            problems: outcome.mismatches.clone(),
        };
        // Every table the stream counted was stored with as many rows (a COPY checks its own
        // count as it ends; this catches a table counted but never loaded).
        for (table, rows) in &outcome.counted.tables {
            let stored = self.summary.tables.get(table).map_or(0, |t| t.rows_stored);
            if stored != *rows {
                self.summary.verification.problems.push(format!(
                    "table {table}: the stream has {rows} rows, the server stored {stored}"
                ));
            }
        }
        if outcome.stated.is_some() {
            self.step = Step::Verify;
            if !self.summary.verification.problems.is_empty() {
                self.summary.verification.verified = false;
                return Err(Error::usage(format!(
                    "the stream does not match its trailer: {}",
                    self.summary.verification.problems.join("; ")
                ))
                .into());
            }
            self.step = Step::Load;
        } else {
            if !self.summary.verification.problems.is_empty() {
                return Err(Error::usage(self.summary.verification.problems.join("; ")).into());
            }
            self.summary
                .verification
                .problems
                .push("unverified: the stream has no stg-dump manifest or trailer".into());
        }
        self.line.done(&format!(
            "loaded {}: {} bytes, {} rows",
            self.incoming,
            outcome.counted.bytes,
            outcome.counted.tables.values().sum::<u64>()
        ));
        Ok(outcome)
    }

    /// The new database's write counters, read once the load's own writes are counted: the
    /// server counts a session's writes for certain when the session has ended, so this
    /// waits for the load's (and `--analyze`'s) sessions to be gone first. `None`, with a
    /// warning, when the server does not count (`track_counts` off) or the counters cannot
    /// be read: the next restore then says its local changes are unknown.
    async fn baseline(&mut self) -> anyhow::Result<Option<Baseline>> {
        let m = self.maintenance.as_ref().expect("connected");
        let gone = self
            .cancel
            .run(m.wait_for_sessions_to_end(&self.incoming, Duration::from_secs(30)))
            .await?;
        if !gone {
            self.summary.warnings.push(format!(
                "the load's sessions on {} did not end within 30 s; no baseline of its write \
                 counters was recorded (the next restore will say its local changes are \
                 unknown)",
                self.incoming
            ));
            return Ok(None);
        }
        let conn = self.config.conn.with_dbname(&self.incoming);
        let read = self
            .cancel
            .run(async {
                let client = conn.connect().await?;
                Activity::read(&client).await
            })
            .await;
        let baseline = match read {
            Ok(activity) => Baseline::from_activity(&activity),
            Err(err) => {
                if let Some(name) = self.cancel.fired() {
                    return Err(interrupted(name));
                }
                self.summary.warnings.push(format!(
                    "could not read the write counters of {}: {err:#}; no baseline was \
                     recorded (the next restore will say its local changes are unknown)",
                    self.incoming
                ));
                return Ok(None);
            }
        };
        match &baseline {
            Some(b) => {
                self.summary.baseline_recorded = true;
                self.summary.baseline_tables = b.tables.len();
            }
            None => self.summary.warnings.push(
                "the server does not count writes (track_counts is off): no baseline was \
                 recorded, and local changes will be unknown"
                    .into(),
            ),
        }
        Ok(baseline)
    }

    /// [`Restore::check`] right before the swap: first waits (15 s at most) until the
    /// sessions on the live database have been idle long enough for the server to have
    /// counted their writes; sessions still busy make "none" "unknown".
    async fn check_settled(&mut self, db: &str) -> anyhow::Result<Option<LocalChanges>> {
        let m = self.maintenance.as_ref().expect("connected");
        let busy = self
            .cancel
            .run(m.wait_for_quiet(db, Duration::from_secs(15)))
            .await?;
        self.check_with(db, busy).await
    }

    /// The live database's local changes since its sync, into the summary; with
    /// `--if-unchanged`, refuses (the [`Refused`] error) unless they are "none".
    async fn check(&mut self, db: &str) -> anyhow::Result<Option<LocalChanges>> {
        self.check_with(db, 0).await
    }

    /// [`Restore::check`], knowing that `busy` sessions may have writes not counted yet.
    async fn check_with(&mut self, db: &str, busy: i64) -> anyhow::Result<Option<LocalChanges>> {
        let mut changes = self.local_changes(db).await?;
        if let Some(c) = changes.as_mut() {
            if busy > 0 && c.status == ChangeStatus::None {
                *c = LocalChanges::unknown(
                    format!(
                        "{busy} session(s) on {db} were busy within the last 10 s, and the \
                         server may not have counted their writes yet (stop the application \
                         in --pre-hook)"
                    ),
                    c.since.clone(),
                );
            }
        }
        self.summary.local_changes.clone_from(&changes);
        if !self.config.if_unchanged {
            return Ok(changes);
        }
        let Some(found) = &changes else {
            return Ok(changes);
        };
        if found.status == ChangeStatus::None {
            return Ok(changes);
        }
        let what = match found.status {
            ChangeStatus::Unknown => format!(
                "whether {db} has local changes since its last sync is unknown: {}",
                found.reason.as_deref().unwrap_or("")
            ),
            _ => format!(
                "{db} has local changes since its last sync{}: {}",
                found
                    .since
                    .as_deref()
                    .map(|s| format!(" at {s}"))
                    .unwrap_or_default(),
                found.describe()
            ),
        };
        let incoming = if self.incoming_created {
            format!("; {} is dropped", self.incoming)
        } else {
            String::new()
        };
        let kept = if self.config.keep == 0 {
            " (but not with --keep 0 / --no-keep, which drops it after the swap)"
        } else {
            ""
        };
        Err(Refused(format!(
            "refusing to replace {db} (--if-unchanged): {what}. {db} is untouched{incoming}. \
             To keep the changes, save them first (e.g. pg_dump -t TABLE {db}), or sync \
             without --if-unchanged: the replaced copy is kept as {db}__stg_prev_<stamp>{kept} \
             (`stg-restore list {db}` shows it, `stg-restore rollback {db}` swaps it back)"
        ))
        .into())
    }

    /// Reads the live database's counters and compares them with its baseline; `None`
    /// when there is no live database. Anything that keeps it from telling is "unknown".
    async fn local_changes(&mut self, db: &str) -> anyhow::Result<Option<LocalChanges>> {
        let m = self.maintenance.as_ref().expect("connected");
        let related = self.cancel.run(m.related(db)).await?;
        let Some(live) = related.into_iter().find(|d| d.kind == Kind::Current) else {
            return Ok(None);
        };
        self.current = live.comment.as_deref().and_then(Provenance::from_comment);
        let conn = self.config.conn.clone();
        let comment = live.comment;
        let changes = self
            .cancel
            .run(async {
                Ok(provenance::local_changes_of(
                    &conn,
                    db,
                    comment.as_deref(),
                    "stg-restore",
                    Some(10_000),
                )
                .await)
            })
            .await?;
        Ok(Some(changes))
    }

    /// The JSON `--notify` reads.
    fn pending(&self, db: &str) -> Vec<u8> {
        let now = timestamp::now();
        let current = self.current.as_ref().map(|p| CurrentCopy {
            source_host: &p.source_host,
            source_database: &p.source_database,
            dumped_at: p.dumped_at.as_deref(),
            restored_at: &p.restored_at,
            age_seconds: timestamp::parse(&p.restored_at)
                .ok()
                .map(|at| (now - at).whole_seconds().max(0).unsigned_abs()),
        });
        let pending = Pending {
            r#type: "pending_swap",
            database: db,
            incoming: &self.incoming,
            server: self.config.conn.describe(),
            source: self.summary.source.as_ref(),
            current,
            replaces: self.summary.local_changes.is_some(),
            local_changes: self.summary.local_changes.as_ref(),
            if_unchanged: self.config.if_unchanged,
            now: timestamp::format(now),
        };
        let mut out = serde_json::to_vec(&pending).expect("the pending summary serializes");
        out.push(b'\n');
        out
    }

    /// Drops kept copies beyond `--keep`; a copy in use is left, with a warning. Never
    /// fails: the new database is in place by now.
    async fn prune(&mut self, db: &str) -> anyhow::Result<()> {
        let m = self.maintenance.as_ref().expect("connected");
        let related = match m.related(db).await {
            Ok(related) => related,
            Err(err) => {
                self.summary
                    .warnings
                    .push(format!("could not list kept copies to prune: {err:#}"));
                return Ok(());
            }
        };
        let previous: Vec<String> = related
            .into_iter()
            .filter(|d| d.kind == Kind::Previous)
            .map(|d| d.name)
            .collect();
        for name in previous.iter().skip(self.config.keep) {
            match m.drop_if_unused(name).await {
                Ok(()) => self.summary.dropped.push(name.clone()),
                Err(err) => self.summary.warnings.push(format!(
                    "kept {name} beyond --keep {}: {err:#}",
                    self.config.keep
                )),
            }
        }
        Ok(())
    }
}

/// The load failed on the server. A damaged stream (corrupt data decodes to garbage before
/// the decoder notices; a changed byte can be bad SQL) is the likelier cause then, so the
/// rest of the stream is read for a few seconds: if it is bad, that is the error reported
/// (exit 2), with the server's message as the consequence.
async fn explain_failure(
    load_error: anyhow::Error,
    rx: &mut mpsc::Receiver<Event>,
) -> anyhow::Error {
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match rx.recv().await {
                Some(Event::Items(_)) => {}
                Some(Event::End(Err(err))) => return Some(err.0),
                Some(Event::End(Ok(outcome))) if !outcome.mismatches.is_empty() => {
                    return Some(format!(
                        "the stream does not match its trailer: {}",
                        outcome.mismatches.join("; ")
                    ))
                }
                _ => return None,
            }
        }
    })
    .await;
    match rest {
        Ok(Some(stream_error)) => Error::usage(format!(
            "{stream_error} (the load had stopped on the damaged data: {load_error:#})"
        ))
        .into(),
        _ => load_error,
    }
}

/// The warning when [`Maintenance::reopen`] had to allow connections again.
pub fn reopened_warning(db: &str) -> String {
    format!(
        "{db} did not accept connections (left so by a run killed during its swap); \
         connections are allowed again"
    )
}

/// `<db>__stg_prev_<now>`, waiting a second when a copy of this second exists already.
pub async fn free_previous_name(m: &Maintenance, db: &str) -> anyhow::Result<String> {
    for _ in 0..5 {
        let name = sql::previous_name(db, &timestamp::compact(timestamp::now()));
        if !m.exists(&name).await? {
            return Ok(name);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    anyhow::bail!("could not find a free name for the kept copy of {db}")
}
