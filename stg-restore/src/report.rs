//! What stg-restore prints on stdout: one JSON Lines summary per command (`--format json`)
//! or a few lines for people (`--format text`), and progress on stderr when it is a
//! terminal.
//!
//! A failed restore still prints its summary (`"ok": false`, `"failed_step"`, `"error"`)
//! before the error line on stderr, so a program reading stdout always gets one.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

use serde::Serialize;
use stg_core::format::{Format, Record};
use stg_core::provenance::LocalChanges;

/// The verification part of a restore or verify report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verification {
    /// True when the stream had a manifest and its trailer matched what was read.
    pub verified: bool,
    /// SHA-256 the stream hashed to (of every byte before the trailer).
    pub sha256: Option<String>,
    /// SHA-256 the trailer states.
    pub trailer_sha256: Option<String>,
    /// Every disagreement, or why nothing could be verified.
    pub problems: Vec<String>,
}

/// Where the data came from, from the manifest.
#[derive(Clone, Debug, Serialize)]
pub struct Source {
    /// Production database.
    pub database: String,
    /// Production host as stg-dump connected to it.
    pub host: String,
    /// When the snapshot was taken.
    pub dumped_at: String,
    /// The tool that wrote the stream.
    pub tool: String,
}

/// The summary of a restore.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RestoreSummary {
    /// Always `restore`.
    pub command: &'static str,
    /// True when the new database is in place.
    pub ok: bool,
    /// The step that failed: read, connect, prepare, load, verify, analyze, pre-hook, swap,
    /// post-hook.
    pub failed_step: Option<&'static str>,
    /// The error, when one happened.
    pub error: Option<String>,
    /// True when the failure was an input problem (exit 2 rather than 3).
    #[serde(skip)]
    pub failed_class_usage: bool,
    /// The live database.
    pub database: Option<String>,
    /// The incoming database's name.
    pub incoming: Option<String>,
    /// True when the incoming database was dropped after a failure.
    pub incoming_dropped: bool,
    /// The kept copy of the database that was live before (after the swap).
    pub previous: Option<String>,
    /// Kept copies dropped after the swap (beyond `--keep`).
    pub dropped: Vec<String>,
    /// Sessions on the live database terminated for the swap.
    pub sessions_terminated: u64,
    /// The stream's compression (`zstd` or `xz`), as recognised by its magic bytes.
    pub format: Option<crate::decode::Codec>,
    /// Decoded bytes before the trailer.
    pub bytes: u64,
    /// Compressed bytes read.
    pub compressed_bytes: u64,
    /// Rows per table, as counted in the stream.
    pub rows: BTreeMap<String, u64>,
    /// Per table: rows the stream's COPY blocks carried and rows the server stored.
    pub tables: BTreeMap<String, crate::load::TableRows>,
    /// Most load jobs that ran at once (`--jobs` is the limit).
    pub jobs: usize,
    /// Connections the load opened to the incoming database.
    pub connections: usize,
    /// Who signed the stream (`principals (SHA256:...)`), when it was signed.
    pub signed_by: Option<String>,
    /// True when every part's signature was checked against the allowed signers.
    pub signature_checked: bool,
    /// The role the stream's SQL ran as (not a superuser: `--load-role`).
    pub load_role: Option<String>,
    /// Roles the load role was made a member of by this run (owners the stream names).
    pub load_role_memberships: Vec<String>,
    /// Objects, default privileges and the database itself that the stream gave to a
    /// superuser (or a role that can act as one), given to `--owner` or the load role
    /// instead.
    pub owners_reassigned: u64,
    /// Statements run on stg-restore's privileged connection (`CREATE EXTENSION` and
    /// `COMMENT ON EXTENSION` of allowed extensions).
    pub privileged_statements: u64,
    /// The checksum and row-count check.
    pub verification: Verification,
    /// The manifest's source, when there is one.
    pub source: Option<Source>,
    /// The live database's local changes since its last sync (rows inserted, updated,
    /// deleted per table, from the server's statistics), as checked just before the swap
    /// (or before the load, when `--if-unchanged` refused there); `None` when there was no
    /// live database or the restore failed before the check.
    pub local_changes: Option<LocalChanges>,
    /// True when `--if-unchanged` refused to replace the live database (exit 1).
    pub refused: bool,
    /// True when the new database's write counters were recorded as its baseline (in its
    /// provenance), so that the next restore can tell its local changes.
    pub baseline_recorded: bool,
    /// Tables whose counters the baseline holds one by one (the rest are summed).
    pub baseline_tables: usize,
    /// How `--notify` went, when it was given and reached.
    pub notify: Option<NotifyOutcome>,
    /// Milliseconds per phase.
    pub timings_ms: BTreeMap<&'static str, u64>,
    /// Things worth knowing that did not stop the restore.
    pub warnings: Vec<String>,
}

impl Record for RestoreSummary {
    const TYPE: &'static str = "summary";
}

/// The outcome of `--notify`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NotifyOutcome {
    /// True when the command read its input and exited 0 in time.
    pub ok: bool,
    /// What went wrong (also among the warnings).
    pub error: Option<String>,
    /// How long it ran.
    pub elapsed_ms: u64,
}

/// Prints the local changes on stderr (always: people reading a cron mail or a terminal
/// should see whose work is being replaced).
pub fn print_local_changes(db: &str, changes: &LocalChanges) {
    let since = changes
        .since
        .as_deref()
        .map(|s| format!(" since the sync at {s}"))
        .unwrap_or_default();
    let text = stg_core::terminal::escape(&changes.describe()).into_owned();
    let _ = writeln!(
        std::io::stderr(),
        "stg-restore: local changes in {}{since}: {text}",
        stg_core::terminal::escape(db)
    );
}

/// Writes one record as JSON Lines to stdout. A closed stdout is no error and does not
/// change the exit status (see [`stg_core::output`]).
pub fn write_json<R: Record>(record: &R) -> anyhow::Result<()> {
    let mut out = stg_core::jsonl::Writer::new(stg_core::output::stdout());
    out.record(record)?;
    out.flush()
}

/// Prints a restore summary.
pub fn print_restore(summary: &RestoreSummary, format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        return write_json(summary);
    }
    let mut out = stg_core::output::stdout();
    let db = summary.database.as_deref().unwrap_or("(unknown)");
    if summary.ok {
        writeln!(out, "restored {db}")?;
    } else if summary.refused {
        writeln!(
            out,
            "restore of {db} REFUSED (--if-unchanged): {db} untouched"
        )?;
    } else {
        writeln!(
            out,
            "restore of {db} FAILED at step {}",
            summary.failed_step.unwrap_or("?")
        )?;
        if let Some(error) = &summary.error {
            writeln!(out, "  error:        {error}")?;
        }
        if summary.incoming_dropped {
            writeln!(
                out,
                "  incoming:     {} dropped; {db} untouched",
                summary.incoming.as_deref().unwrap_or("")
            )?;
        }
    }
    let v = &summary.verification;
    writeln!(
        out,
        "  verified:     {}{}",
        if v.verified {
            "yes"
        } else if summary.refused && v.sha256.is_none() {
            "not checked (refused before the load)"
        } else {
            "NO"
        },
        v.sha256
            .as_deref()
            .map(|s| format!(" (sha256 {s})"))
            .unwrap_or_default()
    )?;
    for problem in &v.problems {
        writeln!(out, "  problem:      {problem}")?;
    }
    if let Some(source) = &summary.source {
        writeln!(
            out,
            "  source:       {} on {}, dumped {}",
            source.database, source.host, source.dumped_at
        )?;
    }
    if let Some(signer) = &summary.signed_by {
        writeln!(
            out,
            "  signed by:    {}",
            stg_core::terminal::escape(signer)
        )?;
    }
    if let Some(role) = &summary.load_role {
        writeln!(
            out,
            "  load role:    {role}{}",
            if summary.owners_reassigned > 0 {
                format!(
                    " ({} owner(s) that were superusers given to others)",
                    summary.owners_reassigned
                )
            } else {
                String::new()
            }
        )?;
    }
    if let Some(changes) = &summary.local_changes {
        writeln!(
            out,
            "  local changes: {}{}",
            stg_core::terminal::escape(&changes.describe()),
            if summary.refused {
                " (refused: --if-unchanged)"
            } else {
                ""
            }
        )?;
    }
    if let Some(previous) = &summary.previous {
        writeln!(out, "  previous:     {previous}")?;
    }
    for dropped in &summary.dropped {
        writeln!(out, "  dropped:      {dropped}")?;
    }
    let rows: u64 = summary.rows.values().sum();
    writeln!(
        out,
        "  data:         {} bytes ({} compressed), {} tables, {rows} rows",
        summary.bytes,
        summary.compressed_bytes,
        summary.rows.len()
    )?;
    let timings: Vec<String> = summary
        .timings_ms
        .iter()
        .map(|(k, v)| format!("{k} {v} ms"))
        .collect();
    writeln!(out, "  timings:      {}", timings.join(", "))?;
    if let Some(notify) = &summary.notify {
        writeln!(
            out,
            "  notify:       {}",
            if notify.ok {
                "ok"
            } else {
                "FAILED (see warnings)"
            }
        )?;
    }
    for warning in &summary.warnings {
        writeln!(out, "  warning:      {warning}")?;
    }
    Ok(())
}

/// Progress lines on stderr, only when stderr is a terminal.
pub struct ProgressLine {
    enabled: bool,
}

impl ProgressLine {
    /// Progress for this process.
    pub fn new() -> Self {
        Self {
            enabled: std::io::stderr().is_terminal(),
        }
    }

    /// Overwrites the progress line.
    pub fn show(&self, text: &str) {
        if self.enabled {
            eprint!("\r\x1b[2K{text}");
        }
    }

    /// Ends the progress line with a message.
    pub fn done(&self, text: &str) {
        if self.enabled {
            eprintln!("\r\x1b[2K{text}");
        }
    }
}

impl Default for ProgressLine {
    fn default() -> Self {
        Self::new()
    }
}
