//! Staging work before a sync: the baseline of the new database's write counters (recorded
//! in its provenance), the live database's local changes since its own baseline (`check`,
//! refused with `--if-unchanged`), and the pending summary `--notify` reads.

use std::time::{Duration, Instant};

use stg_core::format::Record;
use stg_core::provenance::{self, Activity, Baseline, ChangeStatus, LocalChanges, Provenance};
use stg_core::timestamp;

use super::incoming::Incoming;
use super::Session;
use crate::db::Kind;
use crate::hooks;
use crate::report::{self, NotifyOutcome, Source};
use crate::signals::interrupted;

/// `--if-unchanged` refused: the live database has local changes, or they are unknown.
#[derive(Debug)]
pub(super) struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl Refused {
    /// A refusal with this message (exit 1): `--if-unchanged`, or a stream's signature.
    pub(super) fn new(message: String) -> Refused {
        Refused(message)
    }
}

/// The error for a stream that the reader refused: a refusal (exit 1) when it was for its
/// signature, else a bad stream (exit 2).
pub(super) fn stream_refused(err: crate::reader::StreamError) -> anyhow::Error {
    if err.1 {
        Refused(err.0).into()
    } else {
        stg_core::Error::usage(err.0).into()
    }
}

/// What the check found: the live database's local changes and provenance (both `None`
/// when there is no live database).
pub(super) struct Checked {
    changes: Option<LocalChanges>,
    current: Option<Provenance>,
}

/// What `--notify` reads on its stdin.
#[derive(serde::Serialize)]
struct Pending<'s> {
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

impl Record for Pending<'_> {
    const TYPE: &'static str = "pending_swap";
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

/// The new database's write counters, read once the load's own writes are counted: the
/// server counts a session's writes for certain when the session has ended, so this waits
/// for the load's (and `--analyze`'s) sessions to be gone first. `None`, with a warning,
/// when the server does not count (`track_counts` off) or the counters cannot be read: the
/// next restore then says its local changes are unknown.
pub(super) async fn baseline(
    s: &mut Session<'_>,
    incoming: &Incoming,
) -> anyhow::Result<Option<Baseline>> {
    let name = &incoming.name;
    let gone = s
        .cancel
        .run(
            incoming
                .m
                .wait_for_sessions_to_end(name, Duration::from_secs(30)),
        )
        .await?;
    if !gone {
        s.summary.warnings.push(format!(
            "the load's sessions on {name} did not end within 30 s; no baseline of its write \
             counters was recorded (the next restore will say its local changes are unknown)"
        ));
        return Ok(None);
    }
    let conn = s.config.conn.with_dbname(name);
    let read = s
        .cancel
        .run(async {
            let client = conn.connect().await?;
            Activity::read(&client).await
        })
        .await;
    let baseline = match read {
        Ok(activity) => Baseline::from_activity(&activity),
        Err(err) => {
            if let Some(signal) = s.cancel.fired() {
                return Err(interrupted(signal));
            }
            s.summary.warnings.push(format!(
                "could not read the write counters of {name}: {err:#}; no baseline was \
                 recorded (the next restore will say its local changes are unknown)"
            ));
            return Ok(None);
        }
    };
    match &baseline {
        Some(b) => {
            s.summary.baseline_recorded = true;
            s.summary.baseline_tables = b.tables.len();
        }
        None => s.summary.warnings.push(
            "the server does not count writes (track_counts is off): no baseline was \
             recorded, and local changes will be unknown"
                .into(),
        ),
    }
    Ok(baseline)
}

/// The live database's local changes since its sync, into the summary; with
/// `--if-unchanged`, refuses (the [`Refused`] error) unless they are "none". After the
/// load (`loaded`), the changes are also printed on stderr.
pub(super) async fn check(
    s: &mut Session<'_>,
    incoming: &Incoming,
    loaded: bool,
) -> anyhow::Result<Checked> {
    let checked = check_with(s, incoming, 0, loaded).await?;
    if loaded {
        if let Some(changes) = &checked.changes {
            report::print_local_changes(&incoming.db, changes);
        }
    }
    Ok(checked)
}

/// [`check`] again right before the swap: first waits (15 s at most) until the sessions on
/// the live database have been idle long enough for the server to have counted their
/// writes; sessions still busy make "none" "unknown". Prints the changes when they differ
/// from `before`.
pub(super) async fn check_again(
    s: &mut Session<'_>,
    incoming: &Incoming,
    before: Checked,
) -> anyhow::Result<()> {
    let busy = s
        .cancel
        .run(
            incoming
                .m
                .wait_for_quiet(&incoming.db, Duration::from_secs(15)),
        )
        .await?;
    let again = check_with(s, incoming, busy, true).await?;
    if again.changes != before.changes {
        if let Some(changes) = &again.changes {
            report::print_local_changes(&incoming.db, changes);
        }
    }
    Ok(())
}

/// [`check`], knowing that `busy` sessions may have writes not counted yet.
async fn check_with(
    s: &mut Session<'_>,
    incoming: &Incoming,
    busy: i64,
    created: bool,
) -> anyhow::Result<Checked> {
    let db = incoming.db.as_str();
    let mut checked = local_changes(s, incoming).await?;
    if let Some(c) = checked.changes.as_mut() {
        if busy > 0 && c.status == ChangeStatus::None {
            *c = LocalChanges::unknown(
                format!(
                    "{busy} session(s) on {db} were busy within the last 10 s, and the server \
                     may not have counted their writes yet (stop the application in \
                     --pre-hook)"
                ),
                c.since.clone(),
            );
        }
    }
    s.summary.local_changes.clone_from(&checked.changes);
    if !s.config.if_unchanged {
        return Ok(checked);
    }
    let Some(found) = &checked.changes else {
        return Ok(checked);
    };
    if found.status == ChangeStatus::None {
        return Ok(checked);
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
    let dropped = if created {
        format!("; {} is dropped", incoming.name)
    } else {
        String::new()
    };
    let kept = if s.config.keep == 0 {
        " (but not with --keep 0 / --no-keep, which drops it after the swap)"
    } else {
        ""
    };
    Err(Refused(format!(
        "refusing to replace {db} (--if-unchanged): {what}. {db} is untouched{dropped}. \
         To keep the changes, save them first (e.g. pg_dump -t TABLE {db}), or sync \
         without --if-unchanged: the replaced copy is kept as {db}__stg_prev_<stamp>{kept} \
         (`stg-restore list {db}` shows it, `stg-restore rollback {db}` swaps it back)"
    ))
    .into())
}

/// Reads the live database's counters and compares them with its baseline. Anything that
/// keeps it from telling is "unknown".
async fn local_changes(s: &mut Session<'_>, incoming: &Incoming) -> anyhow::Result<Checked> {
    let db = incoming.db.as_str();
    let related = s.cancel.run(incoming.m.related(db)).await?;
    let Some(live) = related.into_iter().find(|d| d.kind == Kind::Current) else {
        return Ok(Checked {
            changes: None,
            current: None,
        });
    };
    let current = live.comment.as_deref().and_then(Provenance::from_comment);
    let conn = s.config.conn.clone();
    let comment = live.comment;
    let changes = s
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
    Ok(Checked {
        changes: Some(changes),
        current,
    })
}

/// `--notify`: runs the command with the pending summary on its stdin. Its failure is a
/// warning (in the report and on stderr); it stops nothing.
pub(super) async fn notify(
    s: &mut Session<'_>,
    incoming: &Incoming,
    checked: &Checked,
) -> anyhow::Result<()> {
    let Some(command) = &s.config.notify else {
        return Ok(());
    };
    let started = Instant::now();
    let input = pending(s, incoming, checked);
    let result = hooks::notify(
        command,
        &input,
        s.config.notify_timeout,
        &incoming.db,
        &incoming.name,
    )
    .await;
    if let Err(err) = &result {
        s.summary.warnings.push(err.clone());
        stg_core::format::warn(err);
    }
    s.summary.notify = Some(NotifyOutcome {
        ok: result.is_ok(),
        error: result.err(),
        elapsed_ms: started.elapsed().as_millis() as u64,
    });
    Ok(())
}

/// The JSON `--notify` reads.
fn pending(s: &Session<'_>, incoming: &Incoming, checked: &Checked) -> Vec<u8> {
    let now = timestamp::now();
    let current = checked.current.as_ref().map(|p| CurrentCopy {
        source_host: &p.source_host,
        source_database: &p.source_database,
        dumped_at: p.dumped_at.as_deref(),
        restored_at: &p.restored_at,
        age_seconds: timestamp::parse(&p.restored_at)
            .ok()
            .map(|at| (now - at).whole_seconds().max(0).unsigned_abs()),
    });
    let pending = Pending {
        database: &incoming.db,
        incoming: &incoming.name,
        server: s.config.conn.describe(),
        source: s.summary.source.as_ref(),
        current,
        replaces: s.summary.local_changes.is_some(),
        local_changes: s.summary.local_changes.as_ref(),
        if_unchanged: s.config.if_unchanged,
        now: timestamp::format(now),
    };
    let mut out = stg_core::jsonl::Writer::new(Vec::new());
    out.record(&pending)
        .expect("the pending summary serializes");
    out.into_inner()
}
